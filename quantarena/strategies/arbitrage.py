"""Arbitrage agents for the tick simulator, on two instruments (``symbols = "A,B"``).

* ``pairs_arb`` — statistical arbitrage: rolling OLS hedge ratio of ``ln mid_A`` on
  ``ln mid_B`` over ``window`` seconds (mids sampled every second), spread z-score entry at
  ``z_entry`` and exit at ``z_exit``, both legs traded at the touch with taker fees.
* ``cross_venue_arb`` — the same asset on two venues: buy on the cheap venue and sell on the
  dear one when the gap beats both venues' taker fees by ``threshold_bps``, with inventory
  on each venue capped at ``max_inventory`` order sizes and each venue's own latency.

Rules and formulas: :mod:`quantarena.engine.tick.taker`. Options: ``notional`` (pairs: quote
currency per leg), ``order_qty`` (cross-venue: base units per trade), ``latency_ms`` (one
per venue, a pair), ``taker_bps`` (a pair; default: the venues' known taker fees),
``capital``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from quantarena.engine.tick import taker as K
from quantarena.engine.tick.events import EventStream
from quantarena.strategies import params as P
from quantarena.strategies.params import Float, Int
from quantarena.strategies.tick_base import KNOWN_FEES, TickAgent


class _TwoLegs(TickAgent):
    n_symbols: ClassVar[int] = 2
    mode: ClassVar[int] = K.PAIRS

    def __init__(
        self,
        notional: float = 1_000.0,
        order_qty: float = 0.002,
        latency_ms: tuple[float, float] = (10.0, 10.0),
        taker_bps: tuple[float, float] | None = None,
        capital: float = 10_000.0,
        max_position: float = 0.10,
        long_only: bool = False,
    ) -> None:
        super().__init__(max_position=max_position, long_only=long_only)
        self.notional = float(notional)
        self.order_qty = float(order_qty)
        self.latency_ms = tuple(float(x) for x in latency_ms)
        self.taker_bps = None if taker_bps is None else tuple(float(x) for x in taker_bps)
        self.capital = float(capital)
        self.venue = None
        if len(self.latency_ms) != 2:
            raise ValueError(f"agent {self.name!r}: latency_ms is one value per venue (2)")

    def _fees(self, events: list[EventStream]) -> tuple[float, float]:
        if self.taker_bps is not None:
            return self.taker_bps[0] / 1e4, self.taker_bps[1] / 1e4
        out = []
        for ev in events:
            f = KNOWN_FEES.get(ev.symbol)
            out.append(f.taker_bps / 1e4 if f else 0.0)
        return out[0], out[1]

    def _signals(self, jq: dict[str, np.ndarray], params: P.Params) -> tuple:
        n = jq["ts"].shape[0]
        return np.zeros((n, 1)), np.ones((n, 1)), np.zeros(P.n_params(params))

    def _prm(self, params: P.Params, widx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run_ticks(
        self,
        events: list[EventStream],
        params: P.Params,
        *,
        venue: Any = None,
        sample_ts: np.ndarray | None = None,
        max_log: int = 0,
    ) -> Any:
        """Replay the joint quote clock of ``events`` (two streams) for every parameter set."""
        if not isinstance(events, list | tuple) or len(events) != 2:
            raise ValueError(f"agent {self.name!r} trades two instruments: give symbols A,B")
        params = self.check_params(params)
        jq = K.joint_quotes(events[0], events[1])
        Z, B, widx = self._signals(jq, params)
        prm = self._prm(params, widx)
        fa, fb = self._fees(list(events))
        X = np.zeros((prm.shape[0], K.N_X))
        X[:, K.X_CASH] = self.capital
        st = np.asarray(sample_ts if sample_ts is not None else [], dtype=np.int64)
        EQ = np.full((st.shape[0], prm.shape[0]), np.nan)
        K.run_taker2(
            jq["ts"], jq["bid_a"], jq["ask_a"], jq["bid_b"], jq["ask_b"], Z, B, self.mode, prm,
            int(self.latency_ms[0] * 1e6), int(self.latency_ms[1] * 1e6), fa, fb, X, st, EQ,
        )  # fmt: skip
        return TwoLegState(X=X, EQ=EQ, sample_ts=st, mids=jq)


class TwoLegState:
    """The accounts of a two-instrument replay (same reading API as a market maker's)."""

    def __init__(self, X: np.ndarray, EQ: np.ndarray, sample_ts: np.ndarray, mids: dict) -> None:
        self.X, self.EQ, self.sample_ts, self.mids = X, EQ, sample_ts, mids

    def account(self, name: str) -> np.ndarray:
        m = {
            "position": K.X_POS_A,
            "position_b": K.X_POS_B,
            "cash": K.X_CASH,
            "fees": K.X_FEES,
            "n_fills": K.X_NFILL,
            "max_inventory": K.X_MAXINV,
        }
        if name in ("maker_qty", "funding"):  # taker legs only; no funding on this kernel
            return np.zeros(self.X.shape[0])
        if name == "taker_qty":
            return np.ones(self.X.shape[0])
        return self.X[:, m[name]].copy()

    def equity(self) -> np.ndarray:
        j = self.mids
        ma = 0.5 * (j["bid_a"][-1] + j["ask_a"][-1])
        mb = 0.5 * (j["bid_b"][-1] + j["ask_b"][-1])
        return self.X[:, K.X_CASH] + self.X[:, K.X_POS_A] * ma + self.X[:, K.X_POS_B] * mb


class PairsArb(_TwoLegs):
    """Pairs statistical arbitrage on two instruments (rolling OLS hedge ratio)."""

    name = "pairs_arb"
    description = "pairs stat-arb on ticks: rolling OLS hedge ratio, spread z-score entry/exit"
    mode = K.PAIRS
    space = {
        "window": Int(10, 3600, default=60),
        "z_entry": Float(0.5, 5.0, default=2.0),
        "z_exit": Float(0.0, 3.0, default=0.5),
    }
    default_grid = {"window": [30, 60, 120], "z_entry": [1.5, 2.0, 2.5], "z_exit": [0.0, 0.5]}

    def valid(self, params):
        return np.asarray(params["z_exit"]) < np.asarray(params["z_entry"])

    def _signals(self, jq, params):
        # mids sampled every second on the joint clock, z and β per window, back on events
        ts = jq["ts"]
        ma = 0.5 * (jq["bid_a"] + jq["ask_a"])
        mb = 0.5 * (jq["bid_b"] + jq["ask_b"])
        grid = np.arange((ts[0] // 10**9 + 1) * 10**9, ts[-1] + 1, 10**9)
        at = np.searchsorted(ts, grid, side="right") - 1
        wins = sorted({int(w) for w in params["window"]})
        Z = np.full((ts.shape[0], len(wins)), np.nan)
        B = np.full((ts.shape[0], len(wins)), np.nan)
        sec = np.searchsorted(grid, ts, side="right") - 1  # last full second at each event
        ok = sec >= 0
        for c, w in enumerate(wins):
            z, b = K.rolling_pairs(ma[at], mb[at], w)
            Z[ok, c] = z[sec[ok]]
            B[ok, c] = b[sec[ok]]
        widx = np.array([wins.index(int(w)) for w in params["window"]])
        return Z, B, widx

    def _prm(self, params, widx):
        prm = np.zeros((P.n_params(params), 4))
        prm[:, K.T_A] = params["z_entry"]
        prm[:, K.T_B] = params["z_exit"]
        prm[:, K.T_C] = widx
        prm[:, K.T_QTY] = self.notional
        return prm


class CrossVenueArb(_TwoLegs):
    """Cross-venue arbitrage of one asset on two venues."""

    name = "cross_venue_arb"
    description = "cross-venue arb on ticks: take both sides when the gap beats both fees"
    mode = K.CROSS
    space = {
        "threshold_bps": Float(-50.0, 100.0, default=1.0),
        "max_inventory": Float(1.0, 1000.0, default=5.0),
    }
    default_grid = {"threshold_bps": [0.0, 1.0, 2.0, 5.0], "max_inventory": [1.0, 5.0]}

    def _prm(self, params, widx):
        prm = np.zeros((P.n_params(params), 4))
        prm[:, K.T_A] = params["threshold_bps"]
        prm[:, K.T_B] = params["max_inventory"]
        prm[:, K.T_QTY] = self.order_qty
        return prm
