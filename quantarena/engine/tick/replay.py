"""Python entry points of the tick simulator: state allocation, latency, block streaming.

``replay_orders(events, orders, venue)`` runs a fixed list of orders (the same for every
column unless an order names its column) and returns a :class:`TickState` with each
column's account, resting orders, fill log and equity sampled at ``sample_ts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from quantarena.engine.tick import core as C
from quantarena.engine.tick.events import QUOTE, EventStream
from quantarena.engine.tick.venue import ENTRY_MULT, Venue

OPS = {
    "market": C.MARKET,
    "limit": C.LIMIT,
    "post_only": C.POST_ONLY,
    "ioc": C.IOC,
    "cancel": C.CANCEL,
    "replace": C.REPLACE,
}


@dataclass(frozen=True)
class Order:
    """An order command sent at ``ts`` (the agent's clock, int ns); it acts at the exchange
    after the venue's entry latency.

    Attributes:
        ts: send time (int64 ns). op: market | limit | post_only | ioc | cancel | replace.
        side: +1 buy, -1 sell (ignored by cancel / replace). px: limit price (quote units;
        replace: the new price). qty: base units (replace: the new size).
        slot: the order's slot (0..slots-1): a cancel / replace names the slot it acts on.
        col: the column (parameter set) it belongs to; -1 = all columns.
    """

    ts: int
    op: str
    side: int = 1
    px: float = float("nan")
    qty: float = 0.0
    slot: int = 0
    col: int = -1


@dataclass
class TickState:
    """A column-wise tick simulation state (carried across blocks) and its outputs."""

    OF: np.ndarray
    OI: np.ndarray
    AC: np.ndarray
    FLT: np.ndarray
    FL: np.ndarray
    EQ: np.ndarray
    sample_ts: np.ndarray
    k: int = 0
    kf: int = 0
    top: np.ndarray = field(default_factory=lambda: np.full(4, np.nan))

    @classmethod
    def new(
        cls, n_cols: int, slots: int, sample_ts: np.ndarray | None, max_log: int, cash: float
    ) -> TickState:
        st = np.asarray(sample_ts if sample_ts is not None else [], dtype=np.int64)
        AC = np.zeros((n_cols, C.N_AC))
        AC[:, C.A_CASH] = cash
        AC[:, C.A_MID] = 0.0  # no quote yet: a flat account is worth its cash
        OI = np.zeros((n_cols, slots, C.N_OI), dtype=np.int64)
        OI[:, :, C.O_RT] = -1
        return cls(
            OF=np.zeros((n_cols, slots, C.N_OF)),
            OI=OI,
            AC=AC,
            FLT=np.zeros((n_cols, max_log), dtype=np.int64),
            FL=np.zeros((n_cols, max_log, C.N_FL)),
            EQ=np.full((st.shape[0], n_cols), np.nan),
            sample_ts=st,
        )

    def account(self, name: str) -> np.ndarray:
        """An account field per column (``position``, ``cash``, ``fees``, ``n_fills``,
        ``maker_qty``, ``taker_qty``, ``rejected_post_only``, ``rejected_filter``, ...)."""
        return self.AC[:, C.ACCOUNT_FIELDS.index(name)].copy()

    def equity(self) -> np.ndarray:
        """``cash + position × last mid`` per column."""
        return self.AC[:, C.A_CASH] + self.AC[:, C.A_POS] * self.AC[:, C.A_MID]

    def fills(self, col: int = 0) -> dict[str, np.ndarray]:
        """Column ``col``'s fill log: ts, px, qty (signed: + bought), maker (bool), slot."""
        n = int(self.AC[col, C.A_NLOG])
        return {
            "ts": self.FLT[col, :n].copy(),
            "px": self.FL[col, :n, C.F_PX].copy(),
            "qty": self.FL[col, :n, C.F_QTY].copy(),
            "maker": self.FL[col, :n, C.F_MAKER] > 0,
            "slot": self.FL[col, :n, C.F_SLOT].astype(np.int64),
        }

    def resting(self, col: int = 0, slot: int = 0) -> dict[str, float] | None:
        """Order ``slot`` of column ``col`` if it rests: px, qty (leaves), ahead, side."""
        if self.OI[col, slot, C.O_ST] != C.ST_LIVE:
            return None
        o = self.OF[col, slot]
        return {
            "side": float(o[C.O_SIDE]),
            "px": float(o[C.O_PX]),
            "qty": float(o[C.O_QTY]),
            "ahead": float(o[C.O_AHEAD]),
        }

    def finish(self) -> None:
        """Fill the equity samples after the last event with the final equity."""
        if self.k < self.EQ.shape[0]:
            self.EQ[self.k :] = self.equity()[None, :]
            self.k = self.EQ.shape[0]


def _funding_schedule(events: EventStream, venue: Venue) -> tuple[np.ndarray, np.ndarray]:
    if len(events) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    return venue.funding.schedule(int(events.ts[0]) - 1, int(events.ts[-1]))


def _arrivals(events: EventStream, orders: Sequence[Order], venue: Venue) -> np.ndarray:
    draws = venue.latency.entry_draws()
    sent = np.array([o.ts for o in orders], dtype=np.int64)
    lat = draws[np.arange(len(orders)) % draws.shape[0]]
    mult = venue.compile()[ENTRY_MULT]
    if mult > 0 and len(events):
        feed = venue.latency.feed(events.ts, events.recv)
        at = np.clip(np.searchsorted(events.ts, sent, side="right") - 1, 0, len(events) - 1)
        lat = lat + (mult * feed[at]).astype(np.int64)
    return sent + lat


def replay_orders(
    events: EventStream,
    orders: Sequence[Order],
    venue: Venue | None = None,
    *,
    n_cols: int = 1,
    slots: int | None = None,
    sample_ts: np.ndarray | None = None,
    max_log: int = 10_000,
    cash: float = 0.0,
    block: int = 1 << 20,
) -> TickState:
    """Replay ``events`` for ``n_cols`` columns with the given orders (see :class:`Order`)."""
    venue = venue or Venue()
    for n, o in enumerate(orders):
        if o.op not in OPS:
            raise ValueError(f"order {n}: unknown op {o.op!r}: use {', '.join(OPS)}")
        if o.side not in (1, -1):
            raise ValueError(f"order {n}: side must be +1 (buy) or -1 (sell), got {o.side}")
    slots = slots or (max((o.slot for o in orders), default=0) + 1)
    arr = _arrivals(events, orders, venue)
    order = np.argsort(arr, kind="stable")
    pick = [orders[i] for i in order]
    c = {
        "c_arr": arr[order],
        "c_col": np.array([o.col for o in pick], dtype=np.int64),
        "c_slot": np.array([o.slot for o in pick], dtype=np.int64),
        "c_op": np.array([OPS[o.op] for o in pick], dtype=np.int64),
        "c_side": np.array([o.side for o in pick], dtype=np.float64),
        "c_px": np.array([o.px for o in pick], dtype=np.float64),
        "c_qty": np.array([o.qty for o in pick], dtype=np.float64),
    }
    V = venue.compile(use_depth=events.has_depth)
    fund_ts, fund_rate = _funding_schedule(events, venue)
    state = TickState.new(n_cols, slots, sample_ts, max_log, cash)
    n = len(events)
    for i0 in range(0, max(n, 1), block):
        ev = events.slice(i0, min(n, i0 + block))
        if len(ev) == 0:
            break
        # orders arriving inside this block (earlier ones were applied already)
        lo = 0 if i0 == 0 else int(np.searchsorted(c["c_arr"], events.ts[i0 - 1], "right"))
        hi = int(np.searchsorted(c["c_arr"], ev.ts[-1], "right"))
        script_block(state, ev, {k: v[lo:hi] for k, v in c.items()}, V, fund_ts, fund_rate)
    state.finish()
    return state


def decision_mask(events: EventStream, feed: np.ndarray, requote_ns: int) -> np.ndarray:
    """Events on which market makers re-quote: the first quote event the agent receives in
    each ``requote_ns`` interval of its clock (``ts + feed``)."""
    return decision_block(events, feed, requote_ns, None)[0]


def decision_block(
    events: EventStream, feed: np.ndarray, requote_ns: int, last_bucket: int | None
) -> tuple[np.ndarray, int | None]:
    """:func:`decision_mask` of one block of a stream, given the re-quote interval number of
    the last quote before the block (``None``: none yet); returns the mask and the number
    to carry into the next block."""
    if requote_ns <= 0:
        raise ValueError(f"requote interval must be > 0 ns, got {requote_ns}")
    isq = events.kind == QUOTE
    bucket = (events.ts + feed) // int(requote_ns)
    out = np.zeros(len(events), dtype=np.bool_)
    qi = np.flatnonzero(isq)
    if qi.size:
        b = bucket[qi]
        first = np.ones(qi.size, dtype=bool)
        first[1:] = b[1:] != b[:-1]
        if last_bucket is not None:
            first[0] = bool(b[0] != last_bucket)
        out[qi[first]] = True
        last_bucket = int(b[-1])
    return out, last_bucket


def mm_block(
    state: TickState,
    ev: EventStream,
    feed: np.ndarray,
    decide: np.ndarray,
    features: np.ndarray,
    quote_kind: int,
    prm: np.ndarray,
    V: np.ndarray,
    draws: np.ndarray,
    fund_ts: np.ndarray,
    fund_rate: np.ndarray,
) -> None:
    """Run the market makers of ``state`` over one block of events (``feed``, ``decide``,
    ``features``: the block's rows), carrying the state (top of book, sample and funding
    cursors) into the next block."""
    if len(ev) == 0:
        return
    C.run_mm(
        ev.ts, ev.kind, ev.side, ev.px, ev.qty, ev.prev, ev.bid, ev.bid_qty, ev.ask,
        ev.ask_qty, state.top, feed, decide, features, int(quote_kind), prm, V, draws,
        state.OF, state.OI, state.AC, state.FLT, state.FL, state.sample_ts, state.EQ, state.k,
        fund_ts, fund_rate, state.kf, numba.get_num_threads(),
    )  # fmt: skip
    _advance(state, ev, fund_ts)


def script_block(
    state: TickState,
    ev: EventStream,
    orders: dict[str, np.ndarray],
    V: np.ndarray,
    fund_ts: np.ndarray,
    fund_rate: np.ndarray,
) -> None:
    """Run ``state`` over one block of events with the compiled orders ``orders`` (the
    ``c_*`` arrays of :func:`.core.run_script`, sorted by arrival, all arriving at or
    before the block's last event), carrying the state into the next block."""
    if len(ev) == 0:
        return
    C.run_script(
        ev.ts, ev.kind, ev.side, ev.px, ev.qty, ev.prev, ev.bid, ev.bid_qty, ev.ask,
        ev.ask_qty, state.top, *(orders[k] for k in _C_FIELDS), V, state.OF, state.OI,
        state.AC, state.FLT, state.FL, state.sample_ts, state.EQ, state.k, fund_ts, fund_rate,
        state.kf,
    )  # fmt: skip
    _advance(state, ev, fund_ts)


_C_FIELDS = ("c_arr", "c_col", "c_slot", "c_op", "c_side", "c_px", "c_qty")


def _advance(state: TickState, ev: EventStream, fund_ts: np.ndarray) -> None:
    state.k = int(np.searchsorted(state.sample_ts, ev.ts[-1], "right"))
    state.kf = int(np.searchsorted(fund_ts, ev.ts[-1], "right"))
    state.top = np.array([ev.bid[-1], ev.bid_qty[-1], ev.ask[-1], ev.ask_qty[-1]])


def replay_mm(
    events: EventStream,
    quote_kind: int,
    prm: np.ndarray,
    venue: Venue,
    *,
    features: np.ndarray,
    requote_ns: int = 100_000_000,
    sample_ts: np.ndarray | None = None,
    max_log: int = 0,
    cash: float = 0.0,
    block: int = 1 << 18,
    backend: str = "cpu",
) -> TickState:
    """Replay ``events`` for a population of market makers (``prm``: ``(P, N_PRM)``, see
    :mod:`.quoting`), streaming the events in blocks of ``block`` (the state carries over).
    ``backend="gpu"``: the CUDA twin (:mod:`.gpu`; no fill log)."""
    if backend == "gpu":
        return _replay_mm_gpu(events, quote_kind, prm, venue, features, requote_ns, sample_ts,
                              cash, block)  # fmt: skip
    if backend != "cpu":
        raise ValueError(f"backend must be cpu or gpu, got {backend!r}")
    if venue.filters.tick <= 0:
        raise ValueError("market making needs the venue's tick size: set ExchangeFilters(tick=)")
    prm = np.ascontiguousarray(prm, dtype=np.float64)
    feed = venue.latency.feed(events.ts, events.recv)
    decide = decision_mask(events, feed, requote_ns)
    V = venue.compile(use_depth=events.has_depth)
    draws = venue.latency.entry_draws()
    fund_ts, fund_rate = _funding_schedule(events, venue)
    state = TickState.new(prm.shape[0], 2, sample_ts, max_log, cash)
    n = len(events)
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        mm_block(state, events.slice(i0, i1), feed[i0:i1], decide[i0:i1], features[i0:i1],
                 quote_kind, prm, V, draws, fund_ts, fund_rate)  # fmt: skip
    state.finish()
    return state


def _replay_mm_gpu(events, quote_kind, prm, venue, features, requote_ns, sample_ts, cash, block):
    from quantarena.engine.backend import cuda_unavailable_reason
    from quantarena.engine.tick.gpu import run_mm_gpu

    why = cuda_unavailable_reason()
    if why:
        raise RuntimeError(f"backend='gpu': {why}")
    import cupy as cp

    prm = np.ascontiguousarray(prm, dtype=np.float64)
    feed = venue.latency.feed(events.ts, events.recv)
    decide = decision_mask(events, feed, requote_ns).view(np.uint8)
    state = TickState.new(prm.shape[0], 2, sample_ts, 0, cash)
    fund_ts, fund_rate = _funding_schedule(events, venue)
    dev = {k: cp.asarray(getattr(state, k)) for k in ("OF", "OI", "AC", "EQ")}
    const = {
        "prm": cp.asarray(prm),
        "V": cp.asarray(venue.compile(use_depth=events.has_depth)),
        "draws": cp.asarray(venue.latency.entry_draws()),
        "sample_ts": cp.asarray(state.sample_ts),
        "fund_ts": cp.asarray(fund_ts),
        "fund_rate": cp.asarray(fund_rate),
    }
    n = len(events)
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        ev = events.slice(i0, i1)
        arrays = {k: cp.asarray(np.ascontiguousarray(getattr(ev, k))) for k in
                  ("ts", "kind", "side", "px", "qty", "prev", "bid", "bid_qty", "ask", "ask_qty")}  # fmt: skip
        run_mm_gpu(
            {**arrays, **dev, **const, "top0": cp.asarray(state.top), "feed": cp.asarray(feed[i0:i1]),
             "decide": cp.asarray(decide[i0:i1]), "FT": cp.asarray(np.ascontiguousarray(features[i0:i1])),
             "quote_kind": int(quote_kind), "k0": state.k, "f0": state.kf}
        )  # fmt: skip
        state.k = int(np.searchsorted(state.sample_ts, ev.ts[-1], "right"))
        state.kf = int(np.searchsorted(fund_ts, ev.ts[-1], "right"))
        state.top = np.array([ev.bid[-1], ev.bid_qty[-1], ev.ask[-1], ev.ask_qty[-1]])
    for k, v in dev.items():
        setattr(state, k, cp.asnumpy(v))
    state.finish()
    return state
