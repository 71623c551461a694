"""A tick feed on a Redis stream: a store's quotes and trades published in the tick
simulator's event order (``quantarena feed replay --ticks``), and the events rebuilt from
the messages on the reading side.

:func:`replay_ticks` publishes each symbol's :class:`~quantarena.engine.tick.EventStream`
(quotes and trades; L2 depth rows are not published) as ``quote`` (format version 2) and
``trade`` messages (:mod:`.messages`), several symbols merged by exchange time (ties: the
symbols in the given order, each in its own event order), paced at ``speed`` times real time
or as fast as possible, with ``XADD MAXLEN ~ maxlen``. :class:`EventBuilder` turns one
symbol's messages back into an ``EventStream`` batch, carrying the top of the book across
batches, so the reader sees exactly the events the backtest replays.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from quantarena.engine.tick.events import QUOTE, TRADE, EventStream
from quantarena.live.messages import QuoteMessage, TradeMessage, encode_quote, encode_trade
from quantarena.live.redis_io import retry

__all__ = ["EventBuilder", "overlap", "replay_ticks", "tick_messages"]

_SIDES = {1: "buy", -1: "sell", 0: ""}
_SIDE_NUM = {"buy": 1, "sell": -1, "": 0}


def overlap(streams: Sequence[EventStream]) -> list[EventStream]:
    """``streams`` cut after the earliest of their last quotes: the span every leg quotes —
    the joint clock an arbitrage backtest replays (:func:`~..engine.tick.taker.joint_end`);
    after it a leg's book is stale. Publishing the legs of an arbitrage agent with it
    (``feed replay --ticks --overlap``) gives the paper trader exactly the backtest's data."""
    ends = []
    for ev in streams:
        q = np.flatnonzero(ev.kind == QUOTE)
        if q.size == 0:
            raise ValueError(f"{ev.symbol}: no quotes to publish")
        ends.append(int(ev.ts[q[-1]]))
    hi = min(ends)
    return [ev.slice(0, int(np.searchsorted(ev.ts, hi, "right"))) for ev in streams]


def tick_messages(streams: Sequence[EventStream], first_seq: int = 0) -> list[dict[str, str]]:
    """The messages of ``streams`` (quotes and trades only) merged by exchange time."""
    ts, which, pos = [], [], []
    for w, ev in enumerate(streams):
        keep = np.flatnonzero((ev.kind == QUOTE) | (ev.kind == TRADE))
        ts.append(ev.ts[keep])
        which.append(np.full(keep.shape[0], w))
        pos.append(keep)
    if not ts:
        return []
    t, wh, ps = np.concatenate(ts), np.concatenate(which), np.concatenate(pos)
    order = np.lexsort((ps, wh, t))
    out = []
    for k, o in enumerate(order):
        ev, i = streams[int(wh[o])], int(ps[o])
        if ev.kind[i] == QUOTE:
            out.append(encode_quote(first_seq + k, int(ev.ts[i]), ev.symbol, ev.bid[i],
                                    ev.bid_qty[i], ev.ask[i], ev.ask_qty[i], int(ev.recv[i])))  # fmt: skip
        else:
            out.append(encode_trade(first_seq + k, int(ev.ts[i]), ev.symbol, ev.px[i], ev.qty[i],
                                    _SIDES[int(ev.side[i])]))  # fmt: skip
    return out


def replay_ticks(
    r: Any,
    stream: str,
    streams: Sequence[EventStream],
    *,
    speed: float | None = None,
    maxlen: int = 1_000_000,
    first_seq: int = 0,
    chunk: int = 1000,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Publish the quotes and trades of ``streams`` to ``stream``; returns the messages sent.
    ``speed``: times real time by the events' own clock (None: as fast as possible)."""
    msgs = tick_messages(streams, first_seq)
    if speed is None:
        for a in range(0, len(msgs), chunk):
            pipe = r.pipeline(transaction=False)
            for f in msgs[a : a + chunk]:
                pipe.xadd(stream, f, maxlen=maxlen, approximate=True)
            retry(pipe.execute, f"publishing to {stream}")
        return len(msgs)
    t_start = time.monotonic()
    ts0 = int(msgs[0]["ts"]) if msgs else 0
    for f in msgs:
        wait = t_start + (int(f["ts"]) - ts0) / 1e9 / float(speed) - time.monotonic()
        if wait > 0:
            sleep(wait)
        retry(
            lambda f=f: r.xadd(stream, f, maxlen=maxlen, approximate=True),
            f"publishing to {stream}",
        )
    return len(msgs)


class EventBuilder:
    """One symbol's quote / trade messages -> :class:`EventStream` batches (the top of the
    book after each event, carried from the last quote, also across batches)."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.top = np.full(4, np.nan)
        self._rows: list[tuple] = []

    def add(self, msg: QuoteMessage | TradeMessage) -> None:
        """Append one message of this symbol (its exchange time must not go back)."""
        if isinstance(msg, QuoteMessage):
            self.top = np.array([msg.bid, msg.bid_qty, msg.ask, msg.ask_qty])
            self._rows.append((msg.ts, QUOTE, 0, np.nan, 0.0, msg.recv, *self.top))
        else:
            side = _SIDE_NUM.get(msg.side)
            if side is None:
                raise ValueError(f"trade seq {msg.seq}: side {msg.side!r} is not buy/sell/''")
            self._rows.append((msg.ts, TRADE, side, msg.price, msg.qty, -1, *self.top))

    def take(self) -> EventStream:
        """The events added since the last call."""
        rows, self._rows = self._rows, []
        n = len(rows)
        a = list(zip(*rows, strict=True)) if n else [()] * 10

        def col(i: int, dt: Any) -> np.ndarray:
            return np.asarray(a[i], dtype=dt).reshape(n)

        return EventStream(
            symbol=self.symbol, ts=col(0, np.int64), kind=col(1, np.int8), side=col(2, np.int8),
            px=col(3, np.float64), qty=col(4, np.float64), prev=np.zeros(n),
            bid=col(6, np.float64), bid_qty=col(7, np.float64), ask=col(8, np.float64),
            ask_qty=col(9, np.float64), recv=col(5, np.int64),
        )  # fmt: skip
