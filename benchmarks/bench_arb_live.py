"""Arbitrage paper trading: the pure trader (:class:`quantarena.live.arb_trader.ArbPaperTrader`,
no Redis) over the bundled Binance spot + USD-M captures' overlap (both legs as one merged
tick feed, 125,179 quote/trade messages), fed in batches of 1, 100 and 1,000 messages, for
``pairs_arb`` (window 30 s) and ``cross_venue_arb``; beside it the tick backtest of the same
parameter set over the same events. CPU time (``time.process_time``: the machine is shared),
best of ``repeat`` runs; messages decoded from their Redis fields as a trader receives them.

``python -m benchmarks.bench_arb_live`` or ``python -m benchmarks.run --only arblive``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "ticks"
LEGS = ("BINANCE:BTCUSDT", "BINANCE-USDM:BTCUSDT")
CASES = {
    "pairs_arb": {"window": 30, "z_entry": 1.5, "z_exit": 0.5},
    "cross_venue_arb": {"threshold_bps": -15.0, "max_inventory": 5.0},
}


def _paper(agent: str, params: dict, msgs: list, size: int) -> tuple[float, int]:
    from quantarena.live.arb_trader import ArbPaperTrader
    from quantarena.live.messages import decode
    from quantarena.live.tick_feed import EventBuilder
    from quantarena.strategies.registry import get_agent

    tr = ArbPaperTrader("bench", get_agent(agent), params, LEGS)
    b = [EventBuilder(s) for s in LEGS]
    t0 = time.process_time()
    for a in range(0, len(msgs), size):
        for f in msgs[a : a + size]:
            m = decode(f)
            b[LEGS.index(m.symbol)].add(m)
        tr.on_events(b[0].take(), b[1].take())
    tr.flush()
    return time.process_time() - t0, tr.n_fills


def run(console: Any, repeat: int = 2) -> list[dict]:
    from quantarena.data.store import Store
    from quantarena.engine.tick.events import load_events
    from quantarena.live.tick_feed import overlap, tick_messages
    from quantarena.tick_backtest import tick_backtest

    work = Path(tempfile.mkdtemp(prefix="qa-bench-arb-"))
    rows: list[dict] = []
    try:
        store = work / "store"
        Store(store).ingest([SAMPLE / "binance-spot-BTCUSDT-20240808-capture.gz",
                             SAMPLE / "binance-usdm-BTCUSDT-20240808-capture.gz"])  # fmt: skip
        legs = overlap([load_events(store, s, depth=False) for s in LEGS])
        msgs = tick_messages(legs)
        end = int(max(e.ts[-1] for e in legs)) + 1
        for agent, params in CASES.items():
            p = {k: [v] for k, v in params.items()}
            kw = {"leg_cap": 0.10, "gross_cap": 1.0}
            tick_backtest(store, agent, p, symbol=",".join(LEGS), end=end, **kw)  # compile
            best = float("inf")
            for _ in range(repeat):
                t0 = time.process_time()
                tick_backtest(store, agent, p, symbol=",".join(LEGS), end=end, **kw)
                best = min(best, time.process_time() - t0)
            rows.append({"case": f"{agent}: tick backtest, 1 set (load + replay)",
                         "cpu s": best, "msgs": len(msgs), "us/msg": best / len(msgs) * 1e6})  # fmt: skip
            console.print(rows[-1])
            for size in (1, 100, 1000):
                runs = [_paper(agent, params, msgs, size) for _ in range(repeat)]
                sec = min(r[0] for r in runs)
                rows.append({"case": f"{agent}: paper trader, batches of {size}",
                             "cpu s": sec, "msgs": len(msgs), "us/msg": sec / len(msgs) * 1e6,
                             "fills": runs[0][1]})  # fmt: skip
                console.print(rows[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
