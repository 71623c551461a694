"""``make demo``: a two-year walk-forward tournament on real Bitcoin hourly bars.

1. Ingests the bundled Coinbase BTC/USD hourly bars (2017-07 → 2019-10, ``data/sample``) into a
   Parquet store and shows what the store holds.
2. Runs the tournament of ``configs/demo.yaml`` on a local Ray: grid-scanned agents
   (momentum, mean reversion, breakout), a momentum agent that tunes itself with Optuna in
   every in-sample window, a torch agent retrained on a rolling window, and buy-and-hold; about
   115 weekly rounds, each agent an actor on a fraction of a (logical) GPU, the director
   ranking, gating and moving capital by half Kelly; everything logged to MLflow in a local
   SQLite file. Without torch (the ``ml`` extra) the ML agent is left out, and the demo says so.
3. Prints the leaderboard (gates, deflated Sharpe, PBO), the portfolio against its baselines,
   how the Kelly weights moved, and where the plots and MLflow runs are.

``python -m quantarena.demo [--config configs/demo.yaml] [--no-ray] [--max-rounds N]
[--output-dir DIR] [--verbose]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "demo.yaml"

#: the files a user looks at first, with what each shows
PLOT_GUIDE = (
    ("weights.png", "capital by round: the Kelly weights moving between agents"),
    ("equity_portfolio.png", "the Kelly portfolio against the equal and inverse-vol baselines"),
    ("equity_agents.png", "each agent's out-of-sample equity"),
    ("drawdowns.png", "drawdowns of the agents and portfolios"),
    ("leaderboard.html", "the leaderboard with every plot, on one page"),
)


def torch_available() -> bool:
    """True when torch can be imported (the ``ml`` extra is installed)."""
    return importlib.util.find_spec("torch") is not None


def adjust_config(
    cfg: Any,
    *,
    max_rounds: int | None = None,
    output_dir: Path | None = None,
    with_torch: bool = True,
) -> tuple[Any, list[str]]:
    """``cfg`` with the demo's overrides: the first ``max_rounds`` rounds only, outputs (plots,
    store, MLflow database) under ``output_dir``, and without agents of kind ``ml`` when
    ``with_torch`` is False. Returns the new config and the names of the agents left out."""
    from quantarena.cli.tournament_run import with_tracking
    from quantarena.config import TournamentConfig

    data = cfg.model_dump(mode="json")
    skipped = [] if with_torch else [a["name"] for a in data["agents"] if a["kind"] == "ml"]
    data["agents"] = [a for a in data["agents"] if a["name"] not in skipped]
    if max_rounds is not None:
        data["schedule"]["max_rounds"] = int(max_rounds)
    new = TournamentConfig.from_dict(data)
    if output_dir is not None:
        new = with_tracking(new, mlflow_uri=None, output_dir=Path(output_dir).resolve())
    return new, skipped


def gates_line(gates: Any) -> str:
    """The enabled gates as ``name op threshold``, binding ones (they hold back capital)
    marked ``*``, e.g. ``sharpe > 1.5*, max_drawdown < 0.2*, history >= 365``."""
    from quantarena.tournaments.gates import GATES

    parts = []
    for name, (_, attr, op) in GATES.items():
        threshold = getattr(gates, attr)
        if threshold is not None:
            star = "*" if name in gates.binding else ""
            parts.append(f"{name} {op} {threshold:g}{star}")
    return ", ".join(parts) + " (* binding: an agent failing it gets no capital)"


def weights_story(weights_csv: Path) -> str:
    """One line on how the portfolio's capital moved: rounds in which the weights changed and
    how many rounds each agent held capital (weights above 0.5 %)."""
    import pandas as pd

    w = pd.read_csv(weights_csv, index_col=0)
    if w.empty:
        return "no rounds played"
    held = (w > 0.005).sum()
    changed = int((w.diff().abs().iloc[1:] > 0.005).any(axis=1).sum())
    who = ", ".join(f"{a} {int(n)}" for a, n in held.sort_values(ascending=False).items() if n)
    cash = int((w.sum(axis=1) < 0.005).sum())
    return (
        f"the weights changed in {changed} of {len(w) - 1} round transitions; rounds with "
        f"capital: {who or 'none'}; all in cash: {cash} rounds"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--no-ray", action="store_true", help="run agents in this process")
    ap.add_argument(
        "--max-rounds", type=int, default=None, help="play the first N rounds only (a quick look)"
    )
    ap.add_argument(
        "--output-dir", type=Path, default=None, help="plots, tables, store and MLflow database"
    )
    ap.add_argument("--verbose", action="store_true", help="show library warnings and logs")
    args = ap.parse_args(argv)
    if args.max_rounds is not None and args.max_rounds < 1:
        ap.error(f"--max-rounds must be at least 1, got {args.max_rounds}")
    if args.output_dir is not None:
        args.output_dir = args.output_dir.resolve()
    config = Path(args.config).resolve()
    os.chdir(ROOT)  # config paths are relative to the repository

    from rich.console import Console

    from quantarena.cli.quiet import compiling_status, quiet_library_noise

    if not args.verbose:
        quiet_library_noise()

    from quantarena.cli.data import info as show_store
    from quantarena.cli.tournament_run import round_progress, show_summary
    from quantarena.config import ConfigError, TournamentConfig
    from quantarena.data.errors import DataError
    from quantarena.data.store import Store

    console = Console(highlight=False, soft_wrap=True, width=max(Console().width, 150))
    try:
        cfg = TournamentConfig.from_yaml(config, check_paths=True)
        cfg, skipped = adjust_config(
            cfg,
            max_rounds=args.max_rounds,
            output_dir=args.output_dir,
            with_torch=torch_available(),
        )
        store = Store(Path(cfg.tracking.output_dir) / "store")
        console.rule("[bold]1. market data")
        for spec in cfg.data.files or []:
            rep = store.ingest(spec.path, symbol=spec.symbol)
            for f in rep.files:
                what = (
                    "already in the store"
                    if f.skipped_same_hash or not f.rows_added
                    else f"{f.rows_added:,} rows added"
                )
                console.print(f"ingested {spec.path}: {what}")
        show_store(store=store.root, as_json=False)
    except (ConfigError, DataError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2

    console.rule(f"[bold]2. tournament {cfg.name!r}")
    for name in skipped:
        console.print(
            f"[yellow]torch is not installed: the ML agent {name!r} is skipped[/] "
            "(pip install -e '.[ml]' adds it)"
        )
    console.print(
        f"{len(cfg.agents)} agents, rounds of {cfg.schedule.model_dump(mode='json')['round']}; "
        f"gates: {gates_line(cfg.gates)}"
    )
    from quantarena.actors import driver

    with compiling_status(), round_progress(console, cfg.name) as progress:
        run = driver.run_in_process if args.no_ray else driver.run_on_ray
        summary = run(cfg, progress=progress)
    console.rule("[bold]3. results")
    show_summary(console, summary, cfg.allocation.method)
    out = Path(summary["output_dir"])
    weights = out / f"weights_{cfg.allocation.method}.csv"
    console.rule("[bold]4. what to look at")
    if weights.is_file():
        console.print(f"{cfg.allocation.method} capital: {weights_story(weights)}")
    for name, what in PLOT_GUIDE:
        if (out / name).is_file():
            console.print(f"{out / name}  {what}", markup=False)
    t = summary.get("timings") or {}
    if "total" in t:
        parts = []
        if "replay" in t:
            slots = f" on {t['slots']:.0f} slots" if t.get("slots") else ""
            parts.append(f"agents computing {t['replay']:.0f} s{slots}")
        if "tracking" in t:
            parts.append(f"MLflow and report files {t['tracking']:.0f} s")
        console.print(f"time: {t['total']:.0f} s" + (f" ({', '.join(parts)})" if parts else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
