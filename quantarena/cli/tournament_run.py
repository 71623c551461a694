"""``quantarena tournament run|report``: run a tournament and read its results.

Only typer and rich load at import; Ray, MLflow and the engine load inside the commands.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from quantarena.cli.errors import user_errors

app = typer.Typer(help="Run walk-forward tournaments and read their results.", no_args_is_help=True)


def _console(quiet: bool = False) -> Console:
    """A console wide enough for the leaderboard when output is not a terminal (pipes, CI)."""
    probe = Console()
    width = None if probe.is_terminal else max(probe.width, 150)
    return Console(highlight=False, soft_wrap=True, quiet=quiet, width=width)


def _pct(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "" if f != f else f"{100 * f:.1f}%"


def _num(v: Any, fmt: str = "{:.2f}") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "" if f != f else fmt.format(f)


@contextlib.contextmanager
def round_progress(console: Console, label: str) -> Iterator[Any]:
    """A rich progress bar over a tournament's rounds; yields ``progress(done, total, stage)``,
    the callback the drivers take."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"{label}: starting", total=None)

        def progress(done: int, total: int, stage: str) -> None:
            bar.update(task, completed=done, total=total or None, description=f"{label}: {stage}")

        yield progress


def leaderboard_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The final leaderboard as a rich table."""
    t = Table(title=title, header_style="bold")
    for col, just in [
        ("#", "right"),
        ("agent", "left"),
        ("OOS Sharpe", "right"),
        ("return", "right"),
        ("max DD", "right"),
        ("win rate", "right"),
        ("trades", "right"),
        ("DSR", "right"),
        ("PBO", "right"),
        ("weight", "right"),
        ("next", "right"),
        ("gates", "left"),
    ]:
        t.add_column(col, justify=just)
    for r in rows:
        passed = r.get("gates_passed")
        failed = r.get("gates_failed") or ""
        gates = "[green]pass[/]" if passed else f"[red]fail[/] {failed}"
        t.add_row(
            str(r.get("rank", "")),
            str(r.get("agent", "")),
            _num(r.get("sharpe")),
            _pct(r.get("total_return")),
            _pct(r.get("max_drawdown")),
            _pct(r.get("win_rate")),
            _num(r.get("n_trades"), "{:.0f}"),
            _num(r.get("dsr"), "{:.3f}"),
            _num(r.get("pbo"), "{:.2f}"),
            _pct(r.get("weight")),
            _pct(r.get("next_weight")),
            gates,
        )
    return t


def portfolio_table(port: dict[str, dict[str, float]], method: str) -> Table:
    t = Table(title="Portfolio (OOS) vs baselines", header_style="bold")
    for c in ("allocation", "total return", "Sharpe", "max DD"):
        t.add_column(c, justify="left" if c == "allocation" else "right")
    for m, d in port.items():
        name = f"{m} (portfolio)" if m == method else m
        t.add_row(
            name, _pct(d.get("total_return")), _num(d.get("sharpe")), _pct(d.get("max_drawdown"))
        )
    return t


def show_summary(console: Console, summary: dict[str, Any], method: str) -> None:
    console.print(
        leaderboard_table(summary["leaderboard"], f"{summary['name']} — {summary['rounds']} rounds")
    )
    console.print(portfolio_table(summary["portfolio"], method))
    console.print(f"plots and tables: [bold]{summary['output_dir']}[/]")
    if summary.get("run_id"):
        console.print(
            f"MLflow: {summary['mlflow_uri']}  run [bold]{summary['run_id']}[/]  "
            f"(mlflow ui --backend-store-uri {summary['mlflow_uri']})"
        )


@app.command("run")
def run_command(
    config: Path = typer.Argument(..., help="Tournament config (YAML)."),
    ray: bool = typer.Option(
        True, "--ray/--no-ray", help="Run agents as Ray actors (default) or in this process."
    ),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="Log to MLflow."),
    backend: str = typer.Option("auto", "--backend", help="auto | cpu | gpu"),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    mlflow_uri: str = typer.Option(
        None, "--mlflow-uri", help="Override tracking.mlflow_uri (e.g. http://host:5000)."
    ),
    output_dir: Path = typer.Option(
        None, "--output-dir", help="Override tracking.output_dir (plots, tables, store)."
    ),
) -> None:
    """Run the tournament in CONFIG: walk-forward rounds, leaderboard, capital, MLflow."""
    from quantarena.config import TournamentConfig

    console = _console(quiet=json_out)
    with user_errors():
        cfg = TournamentConfig.from_yaml(config, check_paths=True)
        cfg = with_tracking(cfg, mlflow_uri=mlflow_uri, output_dir=output_dir)
        if not ray:  # in this process: fail before the rounds when --backend cannot run here
            from quantarena.engine.backend import get_backend

            get_backend(backend)
    from quantarena.actors import driver

    with round_progress(console, cfg.name) as progress:
        with user_errors():
            run = driver.run_on_ray if ray else driver.run_in_process
            summary = run(cfg, progress=progress, log_mlflow=mlflow, backend=backend)
    if json_out:
        typer.echo(json.dumps(summary, default=str, indent=2))
        return
    show_summary(console, summary, cfg.allocation.method)


def with_tracking(
    cfg: Any, *, mlflow_uri: str | None = None, output_dir: Path | None = None
) -> Any:
    """``cfg`` with its tracking section overridden (the MLflow URI default follows a new
    output dir when no URI is given)."""
    if mlflow_uri is None and output_dir is None:
        return cfg
    from quantarena.config import TournamentConfig

    data = cfg.model_dump(mode="json")
    t = data["tracking"]
    if output_dir is not None:
        if mlflow_uri is None and t["mlflow_uri"] == f"sqlite:///{t['output_dir']}/mlflow.db":
            t["mlflow_uri"] = None
        t["output_dir"] = str(output_dir)
    if mlflow_uri is not None:
        t["mlflow_uri"] = mlflow_uri
    return TournamentConfig.from_dict(data)


@app.command("report")
def report_command(
    source: str = typer.Argument(..., help="An output directory (runs/NAME) or an MLflow run id."),
    mlflow_uri: str = typer.Option(
        None, "--mlflow-uri", help="Tracking URI for a run id (default: search runs/*/)."
    ),
) -> None:
    """Re-render a tournament's report from what it logged (files or MLflow)."""
    console = _console()
    with user_errors():
        summary = _load_summary(source, mlflow_uri)
    show_summary(console, summary, summary.get("method", "kelly"))


def _load_summary(source: str, mlflow_uri: str | None) -> dict[str, Any]:
    import pandas as pd

    p = Path(source)
    if p.is_dir():
        folder = p
    else:
        folder = _download_run(source, mlflow_uri)
    s_path = folder / "summary.json"
    if not s_path.exists():
        raise FileNotFoundError(f"{folder}: no summary.json — is this a tournament output dir?")
    summary = json.loads(s_path.read_text())
    board = pd.read_csv(folder / "leaderboard.csv")
    summary["leaderboard"] = board.to_dict("records")
    cfg_path = folder / "config.yaml"
    if cfg_path.exists():
        import yaml

        summary["method"] = (yaml.safe_load(cfg_path.read_text()).get("allocation") or {}).get(
            "method", "kelly"
        )
    summary["output_dir"] = str(folder)
    return summary


def _download_run(run_id: str, mlflow_uri: str | None) -> Path:
    import tempfile

    from mlflow import MlflowClient

    uris = (
        [mlflow_uri]
        if mlflow_uri
        else [f"sqlite:///{db.as_posix()}" for db in sorted(Path("runs").glob("*/mlflow.db"))]
    )
    for uri in uris:
        client = MlflowClient(tracking_uri=uri)
        try:
            client.get_run(run_id)
        except Exception:
            continue
        dest = Path(tempfile.mkdtemp(prefix="quantarena-report-"))
        # the recorder logs the leaderboard as tables/leaderboard.csv (log_table), the summary
        # and the config at the run's root; lay them out as in an output dir
        wanted = {
            "summary.json": ("summary.json",),
            "leaderboard.csv": ("leaderboard.csv", "tables/leaderboard.csv"),
            "config.yaml": ("config.yaml",),
        }
        for target, candidates in wanted.items():
            for name in candidates:
                try:
                    got = Path(client.download_artifacts(run_id, name, str(dest)))
                except Exception:
                    continue
                if got != dest / target:
                    got.replace(dest / target)
                break
            else:
                if target != "config.yaml":  # optional: only names the allocation method
                    raise ValueError(
                        f"run {run_id!r} in {uri} has no {target} artifact — is it a "
                        "finished tournament run? Use the output dir instead"
                    )
        return dest
    raise ValueError(
        f"run {run_id!r} not found in {', '.join(uris) or 'runs/*/mlflow.db'} — pass --mlflow-uri"
    )


def register(root: typer.Typer) -> None:
    """Add the ``tournament`` sub-app to the root app."""
    root.add_typer(app, name="tournament", help="Run walk-forward tournaments; read reports.")
