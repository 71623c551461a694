"""The base of tick agents (market making, arbitrage): agents the tick simulator replays
instead of the bar engine. They have a parameter space like every agent but no
``signal``: ``run_ticks(events, params, ...)`` replays them."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from quantarena.engine.tick.events import EventStream
from quantarena.engine.tick.fees import MakerTaker
from quantarena.engine.tick.filters import KNOWN, ExchangeFilters
from quantarena.engine.tick.venue import Venue
from quantarena.strategies.base import Agent

#: fee tiers of the bundled venues (regular tier, bps; August 2024)
KNOWN_FEES: dict[str, MakerTaker] = {
    "BINANCE:BTCUSDT": MakerTaker(maker_bps=10.0, taker_bps=10.0),
    "BINANCE-USDM:BTCUSDT": MakerTaker(maker_bps=2.0, taker_bps=5.0),
}


def infer_tick(events: EventStream) -> float:
    """The smallest step between distinct quoted prices (a tick estimate, 6 significant
    digits) for symbols without known filters."""
    px = np.unique(
        np.concatenate([events.bid[events.bid == events.bid], events.ask[events.ask == events.ask]])
    )
    d = np.diff(px)
    d = d[d > 0]
    if d.size == 0:
        raise ValueError(
            f"{events.symbol}: cannot infer the tick size from the quotes; give a Venue"
        )
    return float(f"{d.min():.6g}")


def default_venue(events: EventStream) -> Venue:
    """The symbol's known filters and fees (else the inferred tick, no fees), a constant
    10 ms entry latency and the risk-averse queue."""
    filters = KNOWN.get(events.symbol) or ExchangeFilters(tick=infer_tick(events))
    fees = KNOWN_FEES.get(events.symbol, MakerTaker(0.0, 0.0))
    return Venue(filters=filters, fees=fees)


class TickAgent(Agent):
    """An agent replayed on ticks (see the module docstring)."""

    tick: ClassVar[bool] = True

    def indicators(self, bars: Any, params: Any, xp: Any = np) -> Any:
        raise TypeError(
            f"agent {self.name!r} trades on ticks, not bars: replay it with "
            "quantarena.tick_backtest (or `quantarena backtest --store DIR --symbol SYM`)"
        )

    def signal(self, state: Any, params: Any, xp: Any, t0: int, t1: int) -> Any:
        raise TypeError(f"agent {self.name!r} trades on ticks, not bars")
