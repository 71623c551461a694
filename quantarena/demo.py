"""``make demo``: the main job on embedded defaults.

1. Ingests the bundled real FTX BTC-PERP 1-minute bars (``data/sample``) into a Parquet store
   and shows what the store holds.
2. Runs the tournament of ``configs/demo.yaml`` on a local Ray: five agents (momentum, mean
   reversion, breakout, volatility-targeted trend, buy-and-hold), weekly walk-forward rounds,
   each agent an actor on a fraction of a (logical) GPU, the director ranking, gating and
   allocating capital by half Kelly; everything logged to MLflow in a local SQLite file.
3. Prints the leaderboard and where the MLflow runs and plots are.

``python -m quantarena.demo [--config configs/demo.yaml] [--no-ray] [--verbose]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "demo.yaml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--no-ray", action="store_true", help="run agents in this process")
    ap.add_argument("--verbose", action="store_true", help="show library warnings and logs")
    args = ap.parse_args(argv)
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
        cfg = TournamentConfig.from_yaml(args.config, check_paths=True)
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
    from quantarena.actors import driver

    with compiling_status(), round_progress(console, cfg.name) as progress:
        run = driver.run_in_process if args.no_ray else driver.run_on_ray
        summary = run(cfg, progress=progress)
    console.rule("[bold]3. results")
    show_summary(console, summary, cfg.allocation.method)
    return 0


if __name__ == "__main__":
    sys.exit(main())
