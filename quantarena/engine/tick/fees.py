"""Maker/taker fees of a venue.

A fill of ``q`` base units at price ``px`` pays ``fee = q · px · rate`` in quote currency,
``rate = maker_bps / 1e4`` when the order rested in the book (a passive fill: queue, trade
through, book through) and ``taker_bps / 1e4`` when it took liquidity (market, IOC, a
marketable limit). A negative ``maker_bps`` is a rebate: the fee is negative and cash grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MakerTaker:
    """Fee rates in basis points of notional (``maker_bps < 0``: rebate)."""

    maker_bps: float = 0.0
    taker_bps: float = 5.0

    def compile(self) -> tuple[float, float]:
        return self.maker_bps / 1e4, self.taker_bps / 1e4

    def describe(self) -> str:
        return f"maker {self.maker_bps:g} bps, taker {self.taker_bps:g} bps"


@dataclass(frozen=True)
class Funding:
    """Perpetual-swap funding: at every multiple of ``period_hours`` (UTC; 00:00, 08:00, 16:00
    for 8 h) a position pays ``rate · position · mid`` from cash (longs pay, shorts receive
    when the rate is positive), charged before the first event at or after that time.
    ``rate`` is the rate per period (0.0001 = 1 bp)."""

    rate: float = 0.0
    period_hours: float = 8.0

    def __post_init__(self) -> None:
        if not self.period_hours > 0:
            raise ValueError(f"Funding: period_hours must be > 0, got {self.period_hours}")

    def schedule(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """(funding times in ``(t0, t1]``, rate at each) — int64 ns, float64."""
        step = int(round(self.period_hours * 3_600_000_000_000))
        first = (int(t0) // step + 1) * step
        ts = (
            np.arange(first, int(t1) + 1, step, dtype=np.int64)
            if self.rate != 0
            else np.zeros(0, np.int64)
        )
        return ts, np.full(ts.shape[0], float(self.rate))

    def describe(self) -> str:
        return f"funding {self.rate * 1e4:g} bp per {self.period_hours:g} h" if self.rate else ""
