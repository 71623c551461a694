"""``quantarena tune``: batched Optuna tuning of one agent on one market.

Only typer and rich are imported at module level; Optuna, the engine and MLflow load inside
the command.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from quantarena.cli import options as opt
from quantarena.cli.errors import user_errors
from quantarena.cli.quiet import compiling_status
from quantarena.redis_keys import DEFAULT_PREFIX, PREFIX_ENV

console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


def _num(v: Any, fmt: str = ".3f") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "—" if not math.isfinite(f) else format(f, fmt)


def tune_cmd(
    agent: str = opt.AGENT,
    store: Path = opt.STORE,
    symbol: str = opt.SYMBOL,
    file: Path = opt.FILE,
    format: str = opt.FORMAT,
    map_: list[str] = opt.MAP,
    start: str = opt.START,
    end: str = opt.END,
    interval: str = opt.INTERVAL,
    trials: int = typer.Option(1024, "--trials", "-n", help="Trials to ask in all."),
    batch: int = typer.Option(256, "--batch", "-b", help="Trials per engine call."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe | cmaes | random | nsga2."),
    objective: str = typer.Option(
        "sharpe", "--objective", help="Metric, or two for NSGA-II: sharpe,max_drawdown."
    ),
    param: list[str] = typer.Option(
        None, "--param", "-p", help="Restrict a parameter: fast=5:200, slow=50:400:10, ma=sma."
    ),
    seed: int = typer.Option(0, "--seed", help="Sampler seed."),
    fee_bps: float = opt.FEE_BPS,
    slippage_bps: float = opt.SLIPPAGE_BPS,
    max_position: float = typer.Option(None, "--max-position", help="Weight cap (0.1 = 10%)."),
    backend: str = typer.Option("auto", "--backend", help="auto | cpu | gpu."),
    storage: str = typer.Option(
        None, "--storage", help="Shared study: redis://host:6379/0 or sqlite:///study.db."
    ),
    study: str = typer.Option(None, "--study", help="Study name (joins it if it exists)."),
    redis_prefix: str = typer.Option(
        DEFAULT_PREFIX,
        "--redis-prefix",
        envvar=PREFIX_ENV,
        help="Prefix of the Redis keys a redis:// --storage writes.",
    ),
    mlflow_uri: str = typer.Option(None, "--mlflow-uri", help="Log the study to MLflow."),
    experiment: str = typer.Option("quantarena-tuning", "--experiment", help="MLflow experiment."),
    top: int = typer.Option(10, "--top", help="Best trials to show."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON (top trials; NSGA-II: the Pareto front) instead."
    ),
) -> None:
    """Tune an agent's parameters with Optuna, a whole batch of trials per engine call."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from quantarena.cli.backtest import _bars_source, _check_backend, _load_bars, _parse_params

    with user_errors():
        if top < 1:
            raise ValueError(f"--top must be at least 1, got {top}")
        if trials < 1:
            raise ValueError(f"--trials must be at least 1, got {trials}")
        if batch < 1:
            raise ValueError(f"--batch must be at least 1, got {batch}")
        objs = tuple(o.strip() for o in objective.split(",") if o.strip())
        if not objs:
            raise ValueError("--objective is empty: give a metric such as sharpe")
        if storage is not None and study is None:
            raise ValueError("--storage needs --study NAME so other workers can join it")
        specs = _parse_params(param)
        src = _bars_source(store, file, default_sample=False)
        _check_backend(backend)
        shared = _open_storage(storage, redis_prefix) if storage is not None else None

        import optuna

        from quantarena.strategies.registry import get_agent
        from quantarena.training.samplers import SAMPLERS
        from quantarena.training.tuning import tune

        if sampler not in SAMPLERS:
            raise ValueError(f"--sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        bars = _load_bars(src, symbol, start, end, interval, format, map_)
        ag = (
            get_agent(agent)
            if max_position is None
            else get_agent(agent, max_position=max_position)
        )
        costs = opt.costs_from_options(fee_bps, slippage_bps)
        t0 = time.perf_counter()
        with (
            compiling_status(),
            Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
                disable=as_json,
            ) as progress,
        ):
            task = progress.add_task(f"tuning {ag.name} ({sampler})", total=trials)
            res = tune(
                bars,
                ag,
                n_trials=trials,
                batch=batch,
                sampler=sampler,
                objective=objs if len(objs) > 1 else objs[0],
                costs=costs,
                backend=backend,
                seed=seed,
                storage=shared,
                study_name=study,
                space=specs,
                on_batch=lambda done, total: progress.update(task, completed=done),
            )
        elapsed = time.perf_counter() - t0
        if res.best_params is None:
            raise ValueError(
                "no trial finished (every set was invalid or gave NaN): widen the --param ranges"
            )
        run_id = None
        if mlflow_uri:
            from quantarena.tracking.study import log_study

            run_id = log_study(
                res.study,
                uri=mlflow_uri,
                experiment=experiment,
                objectives=objs,
                context={
                    "agent": ag.name,
                    "symbols": ",".join(bars.symbols),
                    "n_bars": bars.n_bars,
                    "sampler": sampler,
                    "batch": batch,
                    "trials": trials,
                    "seed": seed,
                    "fee_bps": costs.as_dict()["fee_bps"],
                    "slippage_bps": costs.as_dict()["slippage_bps"],
                },
            )

    ev = res.evaluated
    names = _param_names(res)
    sort_cols = list(objs)
    asc = [not _higher_is_better(o) for o in objs]
    best = ev.dropna(subset=sort_cols).sort_values(sort_cols, ascending=asc)
    best = best.drop_duplicates(subset=names).head(top)
    n_study = len(res.trials)
    # a shared study holds other workers' trials too: the table ranks the trials this
    # command ran (the metrics it computed), the best line is the whole study's
    if as_json:
        metric_cols = [c for c in ev.columns if c not in ("number", *names)]
        doc = {
            "agent": ag.name,
            "symbols": bars.symbols,
            "n_bars": bars.n_bars,
            "sampler": sampler,
            "objective": list(objs),
            "trials": res.stats.asked,
            "evaluated": res.n_evaluated,
            "pruned": res.stats.pruned,
            "failed": res.stats.failed,
            "simulations": res.stats.simulations,
            "elapsed_s": round(elapsed, 4),
            "costs": costs.describe(),
            **{k: costs.as_dict()[k] for k in ("fee_bps", "slippage_bps")},
            "study": res.study.study_name,
            "study_trials": n_study,
            "shared": storage is not None,
            "best_params": res.best_params,
            "best_value": list(res.best_value)
            if isinstance(res.best_value, tuple)
            else res.best_value,
            "top": [
                {
                    "rank": rank,
                    "trial": int(row["number"]),
                    "params": {k: _plain(row[k]) for k in names},
                    "metrics": {k: _plain(row[k]) for k in metric_cols},
                }
                for rank, (_, row) in enumerate(best.iterrows(), start=1)
            ],
            "pareto_front": [
                {
                    "trial": t.number,
                    "params": dict(t.params),
                    "values": dict(zip(objs, map(_plain, t.values), strict=True)),
                }
                for t in sorted(res.best_trials, key=lambda t: t.number)
            ]
            if len(objs) > 1
            else None,
            "mlflow_run_id": run_id,
        }
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    scope = (
        f"top {len(best)} of this worker's {res.stats.asked} trials ({n_study} in the study)"
        if storage is not None
        else f"top {len(best)}"
    )
    title = (
        f"{ag.name} on {','.join(bars.symbols)}: {res.stats.asked} trials "
        f"({res.n_evaluated} replayed, {res.stats.pruned} invalid) in {res.stats.simulations} "
        f"engine calls, {elapsed:.2f} s — {scope} by {', '.join(objs)}; costs: {costs.describe()}"
    )
    table = Table(title=title, title_justify="left")
    for col in ("rank", "trial", "params", *objs, "total return", "max DD", "trades"):
        table.add_column(col, justify="left" if col == "params" else "right")
    for rank, (_, row) in enumerate(best.iterrows(), start=1):
        table.add_row(
            str(rank),
            str(int(row["number"])),
            " ".join(f"{k}={row[k]}" for k in names),
            *[_num(row[o]) for o in objs],
            _num(100 * row["total_return"], ".2f") + "%",
            _num(100 * row["max_drawdown"], ".2f") + "%",
            _num(row.get("n_trades", float("nan")), ".0f"),
        )
    console.print(table)
    best_txt = " ".join(f"{k}={v}" for k, v in res.best_params.items())
    value = res.best_value if isinstance(res.best_value, tuple) else (res.best_value,)
    value_txt = ", ".join(f"{o}={_num(v)}" for o, v in zip(objs, value, strict=False))
    if storage is not None:
        console.print(
            f"best of the whole study {res.study.study_name} ({n_study} trials, every worker): "
            f"{best_txt}  ({value_txt})"
        )
    else:
        console.print(f"best: {best_txt}  ({value_txt}; study {res.study.study_name})")
    if len(objs) > 1:
        console.print(
            f"Pareto front of the study: {len(res.best_trials)} trials (--json lists them); "
            f"'best' is the front's trial with the best {objs[0]}"
        )
    if run_id:
        from quantarena.cli.tournament_run import absolute_uri

        uri = absolute_uri(mlflow_uri)
        console.print(f"mlflow run: {run_id}  (mlflow ui --backend-store-uri {uri})")


def _plain(v: Any) -> Any:
    """A JSON-ready scalar: numpy numbers to Python, NaN/inf to None."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _open_storage(url: str, prefix: str) -> Any:
    """The Optuna storage of ``--storage`` (errors name the option)."""
    from quantarena.redis_keys import normalize_prefix
    from quantarena.training.storage import make_storage

    try:
        prefix = normalize_prefix(prefix)
    except ValueError as exc:
        raise ValueError(f"--redis-prefix: {exc}") from None
    try:
        return make_storage(url, prefix=prefix)
    except ValueError as exc:
        raise ValueError(f"--storage: {exc}") from None


def _param_names(res: Any) -> list[str]:
    """Parameter names of a tune result (the columns before the metrics)."""
    return list(res.best_params or {})


def _higher_is_better(metric: str) -> bool:
    from quantarena.engine.metrics import higher_is_better

    return higher_is_better(metric)


def register(app: typer.Typer) -> None:
    """Add the ``tune`` command to ``app``."""
    app.command("tune")(tune_cmd)
