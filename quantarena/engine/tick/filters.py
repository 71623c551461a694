"""Exchange filters: an order must respect the venue's tick size, lot size and minimum
notional or it is rejected on arrival (no fill, the rejection counted by reason).

* tick: ``price / tick`` is a whole number (within 1e-9 relative);
* lot: ``qty / lot`` is a whole number, and ``qty > 0``;
* min notional: ``price · qty >= min_notional`` (a market order is valued at the touch).

A value of 0 switches a filter off. Agents round their quotes to the tick (bids down, asks
up) and their sizes down to the lot before sending, so they are not rejected for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExchangeFilters:
    """Tick size, lot size (both in their units; 0 = off) and minimum notional (quote)."""

    tick: float = 0.0
    lot: float = 0.0
    min_notional: float = 0.0

    def __post_init__(self) -> None:
        for k in ("tick", "lot", "min_notional"):
            v = getattr(self, k)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"ExchangeFilters: {k} must be a number >= 0, got {v}")

    def compile(self) -> tuple[float, float, float]:
        return float(self.tick), float(self.lot), float(self.min_notional)

    def describe(self) -> str:
        return f"tick {self.tick:g}, lot {self.lot:g}, min notional {self.min_notional:g}"


#: known filters of the bundled venues (from the exchanges' exchangeInfo, August 2024)
KNOWN: dict[str, ExchangeFilters] = {
    "BINANCE:BTCUSDT": ExchangeFilters(tick=0.01, lot=0.00001, min_notional=5.0),
    "BINANCE-USDM:BTCUSDT": ExchangeFilters(tick=0.1, lot=0.001, min_notional=100.0),
}
