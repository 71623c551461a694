"""Maker/taker fees of a venue.

A fill of ``q`` base units at price ``px`` pays ``fee = q · px · rate`` in quote currency,
``rate = maker_bps / 1e4`` when the order rested in the book (a passive fill: queue, trade
through, book through) and ``taker_bps / 1e4`` when it took liquidity (market, IOC, a
marketable limit). A negative ``maker_bps`` is a rebate: the fee is negative and cash grows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MakerTaker:
    """Fee rates in basis points of notional (``maker_bps < 0``: rebate)."""

    maker_bps: float = 0.0
    taker_bps: float = 5.0

    def compile(self) -> tuple[float, float]:
        return self.maker_bps / 1e4, self.taker_bps / 1e4

    def describe(self) -> str:
        return f"maker {self.maker_bps:g} bps, taker {self.taker_bps:g} bps"
