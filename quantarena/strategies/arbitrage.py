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
``capital``, ``leg_cap`` / ``gross_cap`` (risk caps: each instrument's position value, and
their sum, as fractions of ``capital``; None = off — paper trading sets them, and a backtest
with the same caps gives the same orders).

Streaming (paper trading): :meth:`_TwoLegs.stream` returns a :class:`TwoLegStream` — ONE
parameter set fed the two legs' events batch by batch, run through the same kernel
(:func:`~quantarena.engine.tick.taker.run_taker2`) with the same merge rule
(:func:`~quantarena.engine.tick.taker.merge_quotes`) and the same rolling OLS
(:func:`~quantarena.engine.tick.taker.rolling_pairs`, on the last ``window`` seconds only):
O(batch + seconds × window) per batch, whatever the history.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numba
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
        leg_cap: float | None = None,
        gross_cap: float | None = None,
    ) -> None:
        super().__init__(max_position=max_position, long_only=long_only)
        for k, v in (("leg_cap", leg_cap), ("gross_cap", gross_cap)):
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(
                    f"agent {self.name!r}: {k} must be > 0 (fraction of capital), got {v}"
                )
        self.leg_cap = None if leg_cap is None else float(leg_cap)
        self.gross_cap = None if gross_cap is None else float(gross_cap)
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

    def caps(self) -> tuple[float, float]:
        """(per-instrument cap, gross cap) in quote units (``inf``: off)."""
        c = self.capital
        return (
            np.inf if self.leg_cap is None else self.leg_cap * c,
            np.inf if self.gross_cap is None else self.gross_cap * c,
        )

    def stream(self, params: P.Params | None = None, *, interval_ns: int = 60_000_000_000,
               fees: tuple[float, float] | None = None) -> TwoLegStream:  # fmt: skip
        """ONE parameter set as a :class:`TwoLegStream` (``fees``: taker rates as fractions;
        default: ``taker_bps`` else the legs' known fees, resolved on the first batch)."""
        p = self.check_params(
            None if params is None else {k: np.atleast_1d(v) for k, v in params.items()}
        )
        if P.n_params(p) != 1:
            raise ValueError(f"agent {self.name!r}: a stream takes ONE parameter set")
        return TwoLegStream(self, p, interval_ns, fees)

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
        """Replay the joint quote clock of ``events`` (two streams) for every parameter set;
        ``max_log``: orders and fills kept per parameter set (``state.log(col)``)."""
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
        LT = np.zeros((prm.shape[0], int(max_log), 2), dtype=np.int64)
        LF = np.zeros((prm.shape[0], int(max_log), K.N_LF))
        cp, cg = self.caps()
        K.run_taker2(
            jq["ts"], jq["bid_a"], jq["ask_a"], jq["bid_b"], jq["ask_b"], Z, B, self.mode, prm,
            int(self.latency_ms[0] * 1e6), int(self.latency_ms[1] * 1e6), fa, fb, X, st, EQ,
            cp, cg, LT, LF,
        )  # fmt: skip
        return TwoLegState(X=X, EQ=EQ, sample_ts=st, mids=jq, LT=LT, LF=LF)


class TwoLegState:
    """The accounts of a two-instrument replay (same reading API as a market maker's)."""

    def __init__(self, X: np.ndarray, EQ: np.ndarray, sample_ts: np.ndarray, mids: dict,
                 LT: np.ndarray | None = None, LF: np.ndarray | None = None) -> None:  # fmt: skip
        self.X, self.EQ, self.sample_ts, self.mids = X, EQ, sample_ts, mids
        self.LT = np.zeros((X.shape[0], 0, 2), np.int64) if LT is None else LT
        self.LF = np.zeros((X.shape[0], 0, K.N_LF)) if LF is None else LF

    def log(self, col: int = 0) -> dict[str, dict[str, np.ndarray]]:
        """Column ``col``'s orders and fills (the first ``max_log`` rows), see :func:`split_log`."""
        return split_log(self.LT[col], self.LF[col], int(self.X[col, K.X_NLOG]))

    def account(self, name: str) -> np.ndarray:
        m = {
            "position": K.X_POS_A,
            "position_b": K.X_POS_B,
            "cash": K.X_CASH,
            "fees": K.X_FEES,
            "n_fills": K.X_NFILL,
            "max_inventory": K.X_MAXINV,
            "risk_cuts": K.X_NCUT,
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


def split_log(LT: np.ndarray, LF: np.ndarray, n: int) -> dict[str, dict[str, np.ndarray]]:
    """A kernel log's first ``n`` rows as ``{"orders": ..., "fills": ...}``: orders have
    ``ts`` (decision), ``arrival``, ``leg`` (0 = A, 1 = B), ``qty`` (signed); fills ``ts``,
    ``leg``, ``qty``, ``px``, ``fee`` (quote units)."""
    n = min(int(n), LT.shape[0])
    kind = LF[:n, K.L_KIND]
    out = {}
    for name, code in (("orders", K.LOG_ORDER), ("fills", K.LOG_FILL)):
        m = kind == code
        d = {"ts": LT[:n, K.L_TS][m].copy(), "leg": LF[:n, K.L_LEG][m].astype(np.int64),
             "qty": LF[:n, K.L_QTY][m].copy()}  # fmt: skip
        if code == K.LOG_ORDER:
            d["arrival"] = LT[:n, K.L_ARR][m].copy()
        else:
            d["px"] = LF[:n, K.L_PX][m].copy()
            d["fee"] = LF[:n, K.L_FEE][m].copy()
        out[name] = d
    return out


def _quotes(ev: EventStream | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from quantarena.engine.tick.events import QUOTE

    if ev is None or len(ev) == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    q = ev.kind == QUOTE
    return ev.ts[q], ev.bid[q], ev.ask[q]


class TwoLegStream:
    """ONE parameter set of a two-leg agent fed its legs' events one batch at a time (see the
    module docstring); :meth:`step` returns the batch's orders, fills and completed equity
    samples. Equal to :meth:`_TwoLegs.run_ticks` over the same events, for any batching:

    * the joint clock is the backtest's (:func:`~.taker.merge_quotes`: A before B at equal
      times). So a batch's trailing B quotes at its last time wait for the next batch (an A
      quote at that same time may still come, and goes first); pairs: a batch whose last time
      is a whole second waits whole (the mid sampled at that second is the mid after every
      quote at it). :meth:`flush` runs what waits (the end of a replay);
    * pairs: mids sampled at each whole second (the last joint event at or before it), the
      OLS over the last ``window`` samples by :func:`~.taker.rolling_pairs` itself;
    * equity sampled on the bar clock (``interval_ns``) from the later leg's first event, as
      :func:`quantarena.tick_backtest.tick_backtest` samples a two-leg replay.

    Account columns: :mod:`quantarena.engine.tick.taker` (``X``); the kill switch sets
    ``X_HALT`` (:meth:`halt`)."""

    def __init__(self, agent: _TwoLegs, params: P.Params, interval_ns: int,
                 fees: tuple[float, float] | None) -> None:  # fmt: skip
        self.agent = agent
        self.params = params
        self.interval_ns = int(interval_ns)
        self.fees = fees
        self.pairs = agent.mode == K.PAIRS
        self.window = int(np.asarray(params["window"])[0]) if self.pairs else 0
        self.prm = np.ascontiguousarray(agent._prm(params, np.zeros(1, np.int64)), np.float64)
        self.lat = (int(agent.latency_ms[0] * 1e6), int(agent.latency_ms[1] * 1e6))
        self.cap_pos, self.cap_gross = agent.caps()
        self.X = np.zeros((1, K.N_X))
        self.X[0, K.X_CASH] = agent.capital
        self.capital = float(agent.capital)
        self.book = np.full(4, np.nan)  # bid_a, ask_a, bid_b, ask_b after the last event run
        self.last_ts: int | None = None  # the last joint event run
        self.t_first: int | None = None  # the joint clock's first event (the seconds' origin)
        self.first = [None, None]  # each leg's first event (any kind): the bar clock's origin
        self.next_sec: int | None = None  # the next whole second to sample
        self.ring = np.zeros((2, 0))  # the last window-1 sampled mids (A, B)
        self.zb = (np.nan, np.nan)  # z, beta of the last sampled second
        self.held: list[tuple[np.ndarray, ...]] = [_quotes(None), _quotes(None)]
        self.sampled_to: int | None = None  # bar closes up to here were sampled

    # ------------------------------------------------------------------ account

    @property
    def position(self) -> tuple[float, float]:
        return float(self.X[0, K.X_POS_A]), float(self.X[0, K.X_POS_B])

    def mids(self) -> tuple[float, float]:
        b = self.book
        return 0.5 * (b[0] + b[1]), 0.5 * (b[2] + b[3])

    @property
    def equity(self) -> float:
        """``cash + pos_A · mid_A + pos_B · mid_B`` at the last event run (cash before any)."""
        if self.last_ts is None:
            return float(self.X[0, K.X_CASH])
        ma, mb = self.mids()
        x = self.X[0]
        return float(x[K.X_CASH] + x[K.X_POS_A] * ma + x[K.X_POS_B] * mb)

    def halt(self, on: bool = True) -> None:
        """Kill switch: from the next event on, close both legs at market and decide nothing."""
        self.X[0, K.X_HALT] = 1.0 if on else 0.0

    # ------------------------------------------------------------------ events

    def _fees(self, ev_a: EventStream, ev_b: EventStream) -> tuple[float, float]:
        if self.fees is None:
            self.fees = self.agent._fees([ev_a, ev_b])
        return self.fees

    def step(self, ev_a: EventStream, ev_b: EventStream, *, flush: bool = False,
             trade: bool = True) -> dict[str, Any]:  # fmt: skip
        """Run one batch of each leg's events (exchange-time order, after every earlier
        batch). Returns ``orders`` and ``fills`` (:func:`split_log`), ``samples`` (bar
        closes completed: ``(close_ts, equity)``), ``n`` (joint events run). ``trade=False``
        (warm-up): the signal and the book advance, nothing is decided or sampled."""
        fa, fb = self._fees(ev_a, ev_b)
        for k, ev in enumerate((ev_a, ev_b)):
            if self.first[k] is None and len(ev):
                self.first[k] = int(ev.ts[0])
        qa, qb = _quotes(ev_a), _quotes(ev_b)
        ha, hb = self.held
        qa = tuple(np.concatenate([h, q]) for h, q in zip(ha, qa, strict=True))
        qb = tuple(np.concatenate([h, q]) for h, q in zip(hb, qb, strict=True))
        jq = K.merge_quotes(*qa, *qb, last=self.book)
        ts = jq["ts"]
        n = ts.shape[0]
        if n and self.last_ts is not None and int(ts[0]) < self.last_ts:
            raise ValueError(
                f"agent {self.agent.name!r}: quotes at {int(ts[0])} are older than the last one "
                f"run ({self.last_ts}): out of order — refused"
            )
        cut = n
        if n and not flush:
            t_end = int(ts[-1])
            if self.pairs and t_end % 10**9 == 0:
                cut = int(np.searchsorted(ts, t_end, "left"))
            else:
                while cut > 0 and ts[cut - 1] == t_end and jq["src"][cut - 1] == 1:
                    cut -= 1
        self.held = self._hold(qa, qb, ts, cut)
        out: dict[str, Any] = {"samples": [], "n": cut}
        if cut == 0 or not trade:
            out.update(orders=_empty("orders"), fills=_empty("fills"))
        if cut == 0:
            return out
        cj = {k: v[:cut] for k, v in jq.items()}
        if self.t_first is None:
            self.t_first = int(cj["ts"][0])
            self.next_sec = (self.t_first // 10**9 + 1) * 10**9
        Z, B = self._signals(cj)
        if trade:
            out.update(self._run(cj, Z, B, fa, fb))
        else:
            self.sampled_to = int(cj["ts"][-1])
        self.book = np.array([cj["bid_a"][-1], cj["ask_a"][-1], cj["bid_b"][-1], cj["ask_b"][-1]])
        self.last_ts = int(cj["ts"][-1])
        return out

    def _hold(self, qa: tuple, qb: tuple, ts: np.ndarray, cut: int) -> list[tuple]:
        """The quotes of each leg that did not run (a suffix of each leg's own order)."""
        if cut == ts.shape[0]:
            return [_quotes(None), _quotes(None)]
        t_cut = int(ts[cut])
        # merged order: (ts, A before B); everything from index cut on waits
        ran_a = int(np.count_nonzero(qa[0] < t_cut))
        ran_b = int(np.count_nonzero(qb[0] < t_cut))
        n_at = cut - ran_a - ran_b  # events at t_cut that run: A's first (merge order)
        ran_a += n_at
        return [tuple(x[ran_a:] for x in qa), tuple(x[ran_b:] for x in qb)]

    def _signals(self, cj: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(z, beta) per event of a chunk (pairs; zeros / ones for cross-venue)."""
        ts = cj["ts"]
        n = ts.shape[0]
        if not self.pairs:
            return np.zeros(n), np.ones(n)
        ma = 0.5 * (cj["bid_a"] + cj["ask_a"])
        mb = 0.5 * (cj["bid_b"] + cj["ask_b"])
        secs = np.arange(self.next_sec, int(ts[-1]) + 1, 10**9, dtype=np.int64)
        Z = np.full(n, self.zb[0])
        B = np.full(n, self.zb[1])
        if secs.size == 0:
            return Z, B
        at = np.searchsorted(ts, secs, side="right") - 1
        pa, pb = self.mids()  # the mid before the chunk
        sa = np.where(at >= 0, ma[np.maximum(at, 0)], pa)
        sb = np.where(at >= 0, mb[np.maximum(at, 0)], pb)
        w = self.window
        xa = np.concatenate([self.ring[0], sa])
        xb = np.concatenate([self.ring[1], sb])
        z, b = K.rolling_pairs(xa, xb, w)
        z, b = z[-secs.size :], b[-secs.size :]
        keep = max(w - 1, 0)
        self.ring = np.vstack([xa, xb])[:, xa.shape[0] - min(keep, xa.shape[0]) :]
        sec = np.searchsorted(secs, ts, side="right") - 1
        ok = sec >= 0
        Z[ok] = z[sec[ok]]
        B[ok] = b[sec[ok]]
        self.zb = (float(z[-1]), float(b[-1]))
        self.next_sec = int(secs[-1]) + 10**9
        return Z, B

    def _closes(self, t_hi: int) -> np.ndarray:
        """Bar closes due in (last sampled, t_hi], from the later leg's first event on."""
        if self.first[0] is None or self.first[1] is None:
            return np.zeros(0, np.int64)
        step = self.interval_ns
        lo = max(self.first[0], self.first[1])
        first = (lo // step + 1) * step
        if self.sampled_to is not None:
            first = max(first, (self.sampled_to // step + 1) * step)
        out = np.arange(first, t_hi + 1, step, dtype=np.int64)
        self.sampled_to = t_hi
        return out

    def _run(self, cj: dict[str, np.ndarray], Z: np.ndarray, B: np.ndarray, fa: float,
             fb: float) -> dict[str, Any]:  # fmt: skip
        m = cj["ts"].shape[0]
        o = 0 if self.last_ts is None else 1  # event 0: the previous event (its book only)
        n = m + o
        ts = np.empty(n, np.int64)
        F = np.empty((6, n))  # bid_a, ask_a, bid_b, ask_b, z, beta
        ts[o:] = cj["ts"]
        for k, c in enumerate((cj["bid_a"], cj["ask_a"], cj["bid_b"], cj["ask_b"], Z, B)):
            F[k, o:] = c
        if o:
            ts[0] = self.last_ts
            F[:4, 0] = self.book
            F[4:, 0] = np.nan
        st = self._closes(int(ts[-1]))
        EQ = np.full((st.shape[0], 1), np.nan)
        L = 4 * n + 4
        LT = np.zeros((1, L, 2), np.int64)
        LF = np.zeros((1, L, K.N_LF))
        self.X[0, K.X_NLOG] = 0
        # one column: run the kernel on this thread only (a parallel launch per batch costs
        # more than the batch; the arithmetic is the same)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            K.run_taker2(
                ts, F[0], F[1], F[2], F[3], F[4].reshape(n, 1), F[5].reshape(n, 1),
                self.agent.mode, self.prm, self.lat[0], self.lat[1], fa, fb, self.X, st, EQ,
                self.cap_pos, self.cap_gross, LT, LF,
            )  # fmt: skip
        finally:
            numba.set_num_threads(threads)
        log = split_log(LT[0], LF[0], int(self.X[0, K.X_NLOG]))
        self.X[0, K.X_NLOG] = 0
        samples = [(int(t), float(e)) for t, e in zip(st, EQ[:, 0], strict=True)]
        return {"orders": log["orders"], "fills": log["fills"], "samples": samples}


def _empty(kind: str) -> dict[str, np.ndarray]:
    return split_log(np.zeros((0, 2), np.int64), np.zeros((0, K.N_LF)), 0)[kind]
