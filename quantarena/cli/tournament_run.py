"""``quantarena tournament run|report``: run a tournament and read its results.

Only typer and rich load at import; Ray, MLflow and the engine load inside the commands.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from quantarena.cli.errors import user_errors
from quantarena.cli.quiet import compiling_status
from quantarena.numfmt import fmt_cell

app = typer.Typer(help="Run walk-forward tournaments and read their results.", no_args_is_help=True)


def _console(quiet: bool = False) -> Console:
    """A console wide enough for the leaderboard when output is not a terminal (pipes, CI)."""
    probe = Console()
    width = None if probe.is_terminal else max(probe.width, 150)
    return Console(highlight=False, soft_wrap=True, quiet=quiet, width=width)


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
        gates = "[green]pass[/]" if passed else f"[red]fail[/] {_marked_gates(r)}"
        t.add_row(
            str(r.get("rank", "")),
            str(r.get("agent", "")),
            fmt_cell("sharpe", r.get("sharpe")),
            fmt_cell("total_return", r.get("total_return")),
            fmt_cell("max_drawdown", r.get("max_drawdown")),
            fmt_cell("win_rate", r.get("win_rate")),
            fmt_cell("n_trades", r.get("n_trades")),
            fmt_cell("dsr", r.get("dsr")),
            fmt_cell("pbo", r.get("pbo")),
            fmt_cell("weight", r.get("weight")),
            fmt_cell("next_weight", r.get("next_weight")),
            gates,
        )
    failed = [r for r in rows if (_count(r.get("failed_rounds")) or 0) > 0]
    notes = []
    if any("held_back_by" in r for r in rows):
        notes.append("gate* = binding: an agent failing it gets no capital (gates.binding)")
    if failed:
        notes.append(
            "failed rounds (scored flat; tracebacks in MLflow): "
            + ", ".join(f"{r.get('agent')} {_count(r.get('failed_rounds'))}" for r in failed)
        )
    if notes:
        t.caption = "\n".join(notes)
    return t


def _count(v: Any) -> int | None:
    """A count cell (None for missing / NaN)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if f == f else None


def _text(v: Any) -> str:
    """A leaderboard text cell ('' for None / NaN, as a CSV round trip gives)."""
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def _marked_gates(row: dict[str, Any]) -> str:
    """The failed gates, those that hold back capital marked ``*``: ``sharpe*, history``."""
    binding = {g.strip() for g in _text(row.get("held_back_by")).split(",") if g.strip()}
    failed = [g.strip() for g in _text(row.get("gates_failed")).split(",") if g.strip()]
    return ", ".join(f"{g}*" if g in binding else g for g in failed)


def portfolio_table(port: dict[str, dict[str, float]], method: str) -> Table:
    t = Table(title="Portfolio (OOS) vs baselines", header_style="bold")
    for c in ("allocation", "total return", "Sharpe", "max DD"):
        t.add_column(c, justify="left" if c == "allocation" else "right")
    for m, d in port.items():
        name = f"{m} (portfolio)" if m == method else m
        t.add_row(
            name,
            *(fmt_cell(k, d.get(k)) for k in ("total_return", "sharpe", "max_drawdown")),
        )
    return t


def show_summary(console: Console, summary: dict[str, Any], method: str) -> None:
    """The leaderboard, the portfolio table, then where the files and the MLflow run are
    (absolute paths: the lines work from any folder)."""
    console.print(
        leaderboard_table(summary["leaderboard"], f"{summary['name']} — {summary['rounds']} rounds")
    )
    console.print(portfolio_table(summary["portfolio"], method))
    if summary.get("costs"):
        console.print(f"costs applied: {summary['costs']}")
    out = Path(summary["output_dir"]).resolve()
    console.print(f"plots and tables: [bold]{out}[/]")
    html = out / "leaderboard.html"
    if html.is_file():
        console.print(f"report: {html}", markup=False)
    if summary.get("run_id"):
        uri = absolute_uri(summary["mlflow_uri"], out)
        console.print(
            f"MLflow: {uri}  run [bold]{summary['run_id']}[/]  "
            f"(mlflow ui --backend-store-uri {uri})"
        )


def absolute_uri(uri: str | None, folder: Path | None = None) -> str | None:
    """A tracking URI usable from any folder: a relative ``sqlite:///runs/x/mlflow.db``
    becomes absolute (the database beside ``folder``'s outputs when it is there, else
    resolved from the current folder); other URIs pass through."""
    if not uri or not uri.startswith("sqlite:///") or uri.startswith("sqlite:////"):
        return uri
    rel = Path(uri[len("sqlite:///") :])
    candidates = [Path.cwd() / rel]
    if folder is not None:
        candidates.insert(0, folder / rel.name)
    for c in candidates:
        if c.is_file():
            return f"sqlite:///{c.resolve().as_posix()}"
    return f"sqlite:///{(Path.cwd() / rel).resolve().as_posix()}"


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
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue from the last checkpoint (tracking.checkpoint) into the same MLflow "
        "runs; the config may differ only in tracking, ray and agents[].gpu_fraction.",
    ),
) -> None:
    """Run the tournament in CONFIG: walk-forward rounds, leaderboard, capital, MLflow.
    A checkpoint is saved after every round; --resume continues an interrupted run."""
    from quantarena.config import TournamentConfig

    console = _console(quiet=json_out)
    with user_errors():
        cfg = TournamentConfig.from_yaml(config, check_paths=True)
        cfg = with_tracking(cfg, mlflow_uri=mlflow_uri, output_dir=output_dir)
        _confine_in_job(config, cfg)
        if resume and (not ray or cfg.ray.address is None):  # refused before anything starts
            from quantarena.tournaments.checkpoint import open_resume

            open_resume(cfg, resume)
        if not ray:  # in this process: fail before the rounds when --backend cannot run here
            from quantarena.engine.backend import get_backend

            get_backend(backend)
    from quantarena.actors import driver

    with compiling_status(not json_out), round_progress(console, cfg.name) as progress:
        with user_errors():
            run = driver.run_on_ray if ray else driver.run_in_process
            summary = run(cfg, progress=progress, log_mlflow=mlflow, backend=backend, resume=resume)
    if json_out:
        typer.echo(json.dumps(summary, default=str, indent=2))
        return
    show_summary(console, summary, cfg.allocation.method)


def _confine_in_job(config: Path, cfg: Any) -> None:
    """In a job submitted without --allow-absolute-paths: the config and its data must lie
    inside the job's working dir (the current folder)."""
    import os

    from quantarena.cluster.jobs import CONFINE_ENV, confined_paths
    from quantarena.config import ConfigError

    if os.environ.get(CONFINE_ENV) != "1":
        return
    root = Path.cwd().resolve()
    try:
        config.resolve().relative_to(root)
    except ValueError:
        raise ConfigError(
            f"{config}: the config is outside the job's working dir {root} — submit it "
            "from inside the repository"
        ) from None
    confined_paths(cfg, str(config), root)


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
    source: str = typer.Argument(
        ..., help="A tournament's output folder (runs/NAME) or its MLflow run id."
    ),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for the re-rendered plots and tables (default: the run's output folder).",
    ),
    mlflow_uri: str = typer.Option(
        None, "--mlflow-uri", help="Tracking URI for a run id (default: search runs/*/mlflow.db)."
    ),
) -> None:
    """Re-render a tournament's report (leaderboard, plots, HTML) from its output folder or
    its MLflow run, and print it."""
    console = _console()
    with user_errors():
        summary = load_report(source, mlflow_uri, out)
    show_summary(console, summary, summary.get("method", "kelly"))


_RUN_ID = re.compile(r"[0-9a-f]{32}")


def load_report(source: str, mlflow_uri: str | None, out: Path | None) -> dict[str, Any]:
    """Read a tournament's results from a folder or an MLflow run, re-render its report into
    ``out`` (default: the run's output folder) and return its summary (with the
    leaderboard rows and ``output_dir`` = where the report now is)."""
    import tempfile

    p = Path(source)
    if p.is_dir():
        return _render_from(p, out or p)
    if _RUN_ID.fullmatch(source) is None:
        raise FileNotFoundError(
            f"{source}: no such folder, and not an MLflow run id (32 hex characters) — "
            "give a tournament's output folder (runs/NAME) or its run id"
        )
    with tempfile.TemporaryDirectory(prefix="quantarena-report-") as tmp:
        uri, db_folder = _download_run(source, mlflow_uri, Path(tmp))
        summary = json.loads((Path(tmp) / "summary.json").read_text())
        if out is None:
            recorded = Path(str(summary.get("output_dir") or ""))
            if summary.get("output_dir") and recorded.is_dir():
                out = recorded
            elif db_folder is not None:
                out = db_folder
            else:
                out = Path.cwd() / f"report-{source[:8]}"
        summary = _render_from(Path(tmp), out)
    summary["mlflow_uri"] = uri
    return summary


def _render_from(folder: Path, out: Path) -> dict[str, Any]:
    """Re-render the report files of the results in ``folder`` into ``out``."""
    import shutil

    import pandas as pd

    from quantarena.tracking.tournament import (
        PLOTS,
        read_equity,
        render_report,
        write_leaderboard,
    )

    s_path = folder / "summary.json"
    if not s_path.exists():
        raise FileNotFoundError(
            f"{folder}: no summary.json — not a tournament output folder (runs/NAME)"
        )
    summary = json.loads(s_path.read_text())
    board = pd.read_csv(folder / "leaderboard.csv")
    summary["leaderboard"] = board.to_dict("records")
    method = "kelly"
    cfg_path = folder / "config.yaml"
    if cfg_path.exists():
        import yaml

        method = (yaml.safe_load(cfg_path.read_text()).get("allocation") or {}).get(
            "method", "kelly"
        )
    summary["method"] = method
    out = out.resolve()
    eq_a, eq_p, w = (
        folder / "equity_agents.csv",
        folder / "equity_portfolio.csv",
        folder / f"weights_{method}.csv",
    )
    if eq_a.is_file() and eq_p.is_file() and w.is_file():
        render_report(
            out,
            name=summary["name"],
            method=method,
            board=board,
            agents_eq=read_equity(eq_a),
            port_eq=read_equity(eq_p),
            weights=pd.read_csv(w, index_col=0),
        )
    else:  # a run from before the curves were kept: its plots as they are
        out.mkdir(parents=True, exist_ok=True)
        plots = [n for n in PLOTS if (folder / n).is_file()]
        if folder.resolve() != out:
            for name in plots:
                shutil.copyfile(folder / name, out / name)
        write_leaderboard(out, name=summary["name"], board=board, images=plots)
    if folder.resolve() != out:
        for name in ("summary.json", "config.yaml", "portfolio.csv", f"weights_{method}.csv"):
            if (folder / name).is_file():
                shutil.copyfile(folder / name, out / name)
    summary["output_dir"] = str(out)
    summary["mlflow_uri"] = absolute_uri(summary.get("mlflow_uri"), folder.resolve())
    return summary


def _download_run(run_id: str, mlflow_uri: str | None, dest: Path) -> tuple[str, Path | None]:
    """Download the report files of MLflow run ``run_id`` into ``dest``, laid out as in an
    output folder. Returns the tracking URI that holds the run (absolute) and the folder of
    its SQLite database (None for a server)."""
    from mlflow import MlflowClient

    uris = (
        [absolute_uri(mlflow_uri)]
        if mlflow_uri
        else [
            f"sqlite:///{db.resolve().as_posix()}"
            for db in sorted(Path("runs").glob("*/mlflow.db"))
        ]
    )
    for uri in uris:
        client = MlflowClient(tracking_uri=uri)
        try:
            client.get_run(run_id)
        except Exception:
            continue
        # the recorder logs the leaderboard as tables/leaderboard.csv (log_table), the rest
        # at the run's root; lay them out as in an output dir
        wanted = {
            "summary.json": ("summary.json",),
            "leaderboard.csv": ("leaderboard.csv", "tables/leaderboard.csv"),
            "config.yaml": ("config.yaml",),
            "equity_agents.csv": ("equity_agents.csv",),
            "equity_portfolio.csv": ("equity_portfolio.csv",),
            "portfolio.csv": ("portfolio.csv",),
        }
        names = {a.path for a in client.list_artifacts(run_id)}
        for name in names:
            if name.startswith("weights_") or name.endswith(".png"):
                wanted[name] = (name,)
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
                if target in ("summary.json", "leaderboard.csv"):
                    raise ValueError(
                        f"run {run_id} in {uri} has no {target} artifact — is it a finished "
                        "tournament run? Give its output folder instead"
                    )
        db = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else None
        return uri, (Path(db).parent if db else None)
    raise ValueError(
        f"run {run_id} not found in {', '.join(uris) or 'runs/*/mlflow.db (none here)'}"
        " — pass --mlflow-uri"
    )


def register(root: typer.Typer) -> None:
    """Add the ``tournament`` sub-app to the root app."""
    root.add_typer(app, name="tournament", help="Run walk-forward tournaments; read reports.")
