"""Market-making agents for the tick simulator: Avellaneda–Stoikov and GLFT.

They are **tick agents** (``tick = True``): instead of target weights on bars they quote a
bid and an ask on every re-quote event of a tick replay; their per-event rule (the formulas
in :mod:`quantarena.engine.tick.quoting`) is compiled into the simulator's loop, one column
per parameter set. Parameters are a population like any other agent's (grids, sampling,
Optuna); the venue (fees, filters, latency, queue model) and the order size are options.

Population parameters:

* ``gamma`` — risk aversion (per order size of inventory);
* ``k`` (AS only) — order-arrival intensity decay per tick of depth;
* ``horizon_s`` (AS only) — the horizon ``τ`` (s) of the reservation price;
* ``min_half_spread`` — floor of each quote's distance from the mid (ticks);
* ``max_inventory`` — no more bids at ``+max_inventory`` order sizes held (no asks at −).

Options: ``order_qty`` (base units, rounded down to the lot), ``requote_ms`` (how often the
agent re-quotes), ``vol_halflife_s`` (volatility and intensity estimates), ``capital``
(quote currency; returns are ``equity / capital``), ``venue`` (a
:class:`~quantarena.engine.tick.Venue`; default: the symbol's known filters and fees, 10 ms
entry latency, risk-averse queue).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from quantarena.engine.tick import quoting as Q
from quantarena.engine.tick.events import EventStream
from quantarena.engine.tick.features import market_features
from quantarena.engine.tick.replay import TickState, replay_mm
from quantarena.engine.tick.venue import Venue
from quantarena.strategies import params as P
from quantarena.strategies.params import Float
from quantarena.strategies.tick_base import TickAgent, default_venue


class MarketMaker(TickAgent):
    """Avellaneda–Stoikov market maker (reservation price, optimal spread, inventory skew)."""

    name = "market_maker"
    description = "Avellaneda–Stoikov market maker on ticks: reservation price + optimal spread"
    quote_kind: ClassVar[int] = Q.AS
    space = {
        "gamma": Float(0.001, 10.0, log=True, default=0.1),
        "k": Float(0.01, 100.0, log=True, default=1.0),
        "horizon_s": Float(0.1, 3600.0, log=True, default=10.0),
        "min_half_spread": Float(0.0, 1000.0, default=0.5),
        "max_inventory": Float(1.0, 1000.0, default=10.0),
    }
    default_grid = {
        "gamma": [0.01, 0.1, 1.0],
        "k": [0.1, 1.0, 10.0],
        "horizon_s": [1.0, 10.0],
        "min_half_spread": 0.5,
        "max_inventory": 10.0,
    }

    def __init__(
        self,
        order_qty: float = 0.002,
        requote_ms: float = 100.0,
        vol_halflife_s: float = 60.0,
        capital: float = 10_000.0,
        venue: Venue | None = None,
        max_position: float = 0.10,
        long_only: bool = False,
    ) -> None:
        super().__init__(max_position=max_position, long_only=long_only)
        for k, v in (("order_qty", order_qty), ("requote_ms", requote_ms), ("capital", capital)):
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"agent {self.name!r}: {k} must be > 0, got {v}")
        self.order_qty = float(order_qty)
        self.requote_ms = float(requote_ms)
        self.vol_halflife_s = float(vol_halflife_s)
        self.capital = float(capital)
        self.venue = venue

    def param_block(self, params: P.Params) -> np.ndarray:
        """The ``(P, N_PRM)`` block the kernel reads."""
        n = P.n_params(params)
        prm = np.zeros((n, Q.N_PRM))
        prm[:, Q.PR_GAMMA] = params["gamma"]
        prm[:, Q.PR_K] = params.get("k", np.ones(n))
        prm[:, Q.PR_TAU] = params.get("horizon_s", np.ones(n))
        prm[:, Q.PR_MIN_HALF] = params["min_half_spread"]
        prm[:, Q.PR_MAX_INV] = params["max_inventory"]
        prm[:, Q.PR_QTY] = self.order_qty
        return prm

    def run_ticks(
        self,
        events: EventStream,
        params: P.Params,
        *,
        venue: Venue | None = None,
        sample_ts: np.ndarray | None = None,
        max_log: int = 0,
    ) -> TickState:
        """Replay ``events`` for every parameter set; cash starts at ``capital``."""
        params = self.check_params(params)
        venue = venue or self.venue or default_venue(events)
        feats = market_features(events, venue.filters.tick, halflife_s=self.vol_halflife_s)
        return replay_mm(
            events,
            self.quote_kind,
            self.param_block(params),
            venue,
            features=feats,
            requote_ns=int(self.requote_ms * 1e6),
            sample_ts=sample_ts,
            max_log=max_log,
            cash=self.capital,
        )


class GLFT(MarketMaker):
    """Guéant–Lehalle–Fernandez-Tapia infinite-horizon market maker; the trade intensity
    ``A·exp(−kδ)`` is fitted from recent trades (:mod:`quantarena.engine.tick.features`)."""

    name = "glft"
    description = "GLFT market maker on ticks: closed-form quotes, intensity fitted from trades"
    quote_kind = Q.GLFT
    space = {
        "gamma": Float(0.001, 10.0, log=True, default=0.1),
        "min_half_spread": Float(0.0, 1000.0, default=0.5),
        "max_inventory": Float(1.0, 1000.0, default=10.0),
    }
    default_grid = {
        "gamma": [0.01, 0.03, 0.1, 0.3, 1.0],
        "min_half_spread": [0.5, 1.0, 2.0],
        "max_inventory": 10.0,
    }


__all__ = ["GLFT", "MarketMaker"]
