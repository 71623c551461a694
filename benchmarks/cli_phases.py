"""Where the time of a whole ``quantarena backtest`` process goes, phase by phase.

The engine benchmark's grid (long-only SMA crossover, 625 sets × 200,000 one-minute bars of
a seeded random walk, 10 bps fees), in the order the command runs it: imports, CSV load,
Numba's first dispatch (loading the cached kernels), indicators, replay. CPU and wall
seconds per phase (CPU is the steadier figure on a shared machine). Run it in a fresh
interpreter, with Numba's cache warm (run it twice):

``python -m benchmarks.cli_phases``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

_T = [time.process_time(), time.perf_counter()]


def _mark(rows: list, label: str) -> None:
    c, w = time.process_time(), time.perf_counter()
    rows.append((label, c - _T[0], w - _T[1]))
    _T[0], _T[1] = c, w


def main() -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    import rich.console  # noqa: F401
    import typer  # noqa: F401

    _mark(rows, "import typer + rich (the CLI)")
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    _mark(rows, "import numpy + pandas")
    import numba  # noqa: F401

    _mark(rows, "import numba")
    from quantarena.engine import Costs, Fees
    from quantarena.engine.api import load_bars_any
    from quantarena.strategies import get_agent
    from quantarena.strategies.runner import run_population

    _mark(rows, "import quantarena (engine, agents)")
    from benchmarks.bench_engine import FAST, SLOW, synthetic_frame

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "SYN-1m.csv"
        synthetic_frame().reset_index().assign(
            timestamp=lambda d: d["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
        ).to_csv(csv, index=False)
        _T[0], _T[1] = time.process_time(), time.perf_counter()  # writing it is not counted
        bars = load_bars_any(csv)
        _mark(rows, "load the CSV (200,000 rows)")
    agent = get_agent("momentum", max_position=1.0, long_only=True)
    params = agent.grid(fast=FAST, slow=SLOW)
    costs = Costs(fees=Fees(taker_bps=10.0))
    run_population(agent, bars.select(slice(0, 300)), params, costs=costs, backend="cpu")
    _mark(rows, "Numba first dispatch (cached kernels)")
    src = agent.source(bars, params)
    _mark(rows, "indicators (50 moving averages)")
    run_population(agent, bars, params, source=src, costs=costs, backend="cpu")
    _mark(rows, "replay 625 sets (fused)")
    run_population(agent, bars, params, source=src, costs=costs, backend="cpu", fuse=False)
    _mark(rows, "(for comparison: the same replay, blocks)")
    return rows


if __name__ == "__main__":
    rows = main()
    for label, c, w in rows:
        print(f"{label:40s} cpu {c:6.3f} s   wall {w:6.3f} s")
    print(
        f"{'total':40s} cpu {sum(r[1] for r in rows):6.3f} s   wall {sum(r[2] for r in rows):6.3f} s"
    )
