"""The tick simulator: agent-events per second for a population of market makers on the
bundled real Binance USD-M BTCUSDT capture, side by side with hftbacktest running one
strategy on the same events.

* quantarena: 256 GLFT parameter sets (sampled), ``replay_mm`` over (a) trades + quotes and
  (b) trades + quotes + L2 depth changes; figure = events × parameter sets / second of the
  replay (features and the kernel; the store read and the JIT compile are not timed). The
  events are processed in cache blocks (``core.EVENT_BLOCK``) and the Python driver streams
  them in blocks of ``block`` events, so memory is O(events + population).
* hftbacktest: one strategy (post-only quotes at the touch every second, the plan of
  :mod:`benchmarks.tick_peer`) over its feed of the same capture (depth + trades);
  figure = feed events / second of its ``elapse`` loop. Skipped when it is not installed.

Best of 3 runs each. ``python -m benchmarks.bench_tick_sim`` or
``python -m benchmarks.run --only ticksim``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CAPTURE = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "sample"
    / "ticks"
    / "binance-usdm-BTCUSDT-20240808-capture.gz"
)
SYMBOL = "BINANCE-USDM:BTCUSDT"
N_SETS = 256


def _best(fn: Any, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return float(best)


def run(console: Any) -> list[dict]:
    from quantarena.data.store import Store
    from quantarena.engine.tick import load_events
    from quantarena.strategies.market_making import GLFT
    from quantarena.strategies.tick_base import default_venue

    work = Path(tempfile.mkdtemp(prefix="qa-bench-ticksim-"))
    rows: list[dict] = []

    def add(case: str, sec: float, n: float, unit: str) -> None:
        rows.append({"case": case, "seconds": sec, unit: n / sec})
        console.print(rows[-1])

    try:
        store = work / "store"
        Store(store).ingest(CAPTURE)
        agent = GLFT()
        pop = agent.sample(N_SETS, seed=0)
        for depth in (False, True):
            ev = load_events(store, SYMBOL, depth=depth)
            venue = default_venue(ev)
            agent.run_ticks(ev.slice(0, 2000), pop, venue=venue)  # compile
            what = "trades + quotes + L2 depth" if depth else "trades + quotes"
            sec = _best(lambda ev=ev, venue=venue: agent.run_ticks(ev, pop, venue=venue))
            add(
                f"quantarena GLFT × {N_SETS} sets, {what} ({len(ev):,} events)",
                sec,
                len(ev) * N_SETS,
                "agent-events/s",
            )
        try:
            from benchmarks.tick_peer import make_plan, run_hftbacktest
        except ImportError:
            return rows
        try:
            import hftbacktest  # noqa: F401
        except ImportError:
            console.print("hftbacktest not installed: peer skipped (extra `tickpeer`)")
            return rows
        ev = load_events(store, SYMBOL)
        plan = make_plan(ev)
        best = np.inf
        n_feed = 0
        for _ in range(3):
            r = run_hftbacktest(store, plan, 10_000_000, 2.0, 5.0)
            best, n_feed = min(best, r["elapsed_s"]), r["n_events"]
        add(f"hftbacktest, 1 strategy, depth + trades ({n_feed:,} events)", best, n_feed,
            "agent-events/s")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
