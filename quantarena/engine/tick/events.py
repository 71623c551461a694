"""The tick event stream: trades, best bid/ask quotes and L2 level changes merged into flat
arrays in exchange-time order, the input of the tick kernels.

One event per row (``N`` rows), int64 ns UTC times:

=========  ===================================================================================
``ts``     exchange time of the event (int64 ns)
``kind``   :data:`TRADE` (a print), :data:`QUOTE` (a new best bid/ask) or :data:`DEPTH` (an
           L2 level's new total size)
``side``   trade: +1 the aggressor bought (it consumed asks), -1 it sold, 0 unknown;
           depth: +1 bid level, -1 ask level; quote: 0
``px``     trade price or depth level price (quote units); quote: NaN
``qty``    trade size or the level's new size (base units; 0 deletes the level)
``prev``   depth: the level's size before this change (0 for a new level); else 0
``bid``, ``bid_qty``, ``ask``, ``ask_qty``: the top of book AFTER the event (carried
           forward from the last quote; NaN before the first)
``recv``   local receive time where the data has it, else -1 (for recorded latency)
=========  ===================================================================================

Events with equal ``ts`` keep the order depth → quote → trade (a book change the exchange
stamped at the same millisecond as a print is applied first), each kind in its stored order.
Book snapshots are folded into ``prev`` (a snapshot replaces the book; its rows are not events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TRADE = 0
QUOTE = 1
DEPTH = 2
_ORDER_AT_EQUAL_TS = {DEPTH: 0, QUOTE: 1, TRADE: 2}


@dataclass
class EventStream:
    """Flat event arrays (see the module docstring). ``has_depth``: the stream carries L2
    level changes, so queue positions follow :data:`DEPTH` events rather than the quotes."""

    symbol: str
    ts: np.ndarray
    kind: np.ndarray
    side: np.ndarray
    px: np.ndarray
    qty: np.ndarray
    prev: np.ndarray
    bid: np.ndarray
    bid_qty: np.ndarray
    ask: np.ndarray
    ask_qty: np.ndarray
    recv: np.ndarray
    has_depth: bool = False

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def mid(self) -> np.ndarray:
        """``(bid + ask) / 2`` after each event (NaN before the first quote)."""
        return 0.5 * (self.bid + self.ask)

    def counts(self) -> dict[str, int]:
        """Number of events of each kind."""
        return {
            "trades": int(np.count_nonzero(self.kind == TRADE)),
            "quotes": int(np.count_nonzero(self.kind == QUOTE)),
            "depth": int(np.count_nonzero(self.kind == DEPTH)),
        }

    def slice(self, i0: int, i1: int) -> EventStream:
        """Events ``i0 .. i1-1`` (views)."""
        f = {k: getattr(self, k)[i0:i1] for k in _ARRAYS}
        return EventStream(symbol=self.symbol, has_depth=self.has_depth, **f)


_ARRAYS = ("ts", "kind", "side", "px", "qty", "prev", "bid", "bid_qty", "ask", "ask_qty", "recv")


def _book_prev(side: np.ndarray, price: np.ndarray, qty: np.ndarray, snap: np.ndarray) -> tuple:
    """(keep mask, prev size) of book rows: snapshot rows rebuild the book and are dropped;
    each delta row gets the level's size before it."""
    book: dict[tuple[int, float], float] = {}
    prev = np.zeros(side.shape[0], dtype=np.float64)
    keep = ~snap
    in_snap = False
    for i in range(side.shape[0]):
        key = (int(side[i]), float(price[i]))
        if snap[i]:
            if not in_snap:
                book.clear()
                in_snap = True
            book[key] = float(qty[i])
            continue
        in_snap = False
        prev[i] = book.get(key, 0.0)
        if qty[i] > 0:
            book[key] = float(qty[i])
        else:
            book.pop(key, None)
    return keep, prev


def build_events(trades: Any, quotes: Any, book: Any = None, symbol: str = "") -> EventStream:
    """Merge :class:`~quantarena.data.read.TradeArrays`, :class:`~quantarena.data.read.QuoteArrays`
    and optionally :class:`~quantarena.data.read.BookArrays` (any may be ``None``; at least
    quotes are needed to value positions) into one :class:`EventStream`."""
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("ts", "kind", "side", "px", "qty", "prev", "recv")
    }
    if quotes is None or len(quotes) == 0:
        raise ValueError(
            f"{symbol or 'symbol'}: no quotes in range: the tick simulator needs best bid/ask "
            "(ingest a capture with bookTicker, or a quotes file)"
        )
    for kind, arr in ((TRADE, trades), (QUOTE, quotes), (DEPTH, book)):
        if arr is None or len(arr) == 0:
            continue
        n = len(arr)
        if kind == TRADE:
            side, px, qty, prev = arr.side, arr.price, arr.qty, np.zeros(n)
            recv = np.full(n, -1, dtype=np.int64)
            ts = arr.ts
        elif kind == QUOTE:
            side = np.zeros(n, dtype=np.int8)
            px, qty, prev = np.full(n, np.nan), np.zeros(n), np.zeros(n)
            recv, ts = arr.recv_ts, arr.ts
        else:
            keep, prev = _book_prev(arr.side, arr.price, arr.qty, arr.is_snapshot)
            side, px, qty, prev = arr.side[keep], arr.price[keep], arr.qty[keep], prev[keep]
            recv, ts = arr.recv_ts[keep], arr.ts[keep]
            n = int(ts.shape[0])
        parts["ts"].append(np.asarray(ts, dtype=np.int64))
        parts["kind"].append(np.full(n, kind, dtype=np.int8))
        parts["side"].append(np.asarray(side, dtype=np.int8))
        parts["px"].append(np.asarray(px, dtype=np.float64))
        parts["qty"].append(np.asarray(qty, dtype=np.float64))
        parts["prev"].append(np.asarray(prev, dtype=np.float64))
        parts["recv"].append(np.asarray(recv, dtype=np.int64))
    ts = np.concatenate(parts["ts"])
    kind = np.concatenate(parts["kind"])
    rank = np.array([_ORDER_AT_EQUAL_TS[k] for k in range(3)], dtype=np.int8)[kind]
    seq = np.arange(ts.shape[0])
    order = np.lexsort((seq, rank, ts))
    kind = kind[order]
    # top of book after each event: the last quote's values carried forward
    qpos = np.flatnonzero(kind == QUOTE)
    last_q = np.maximum.accumulate(np.where(kind == QUOTE, np.arange(kind.shape[0]), -1))
    cols = {}
    for name in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
        src = np.asarray(getattr(quotes, name), dtype=np.float64)
        full = np.full(kind.shape[0], np.nan)
        full[qpos] = src  # quotes keep their stored order under the stable lexsort
        cols[name] = np.where(last_q >= 0, full[np.maximum(last_q, 0)], np.nan)
    return EventStream(
        symbol=symbol or getattr(quotes, "symbol", ""),
        ts=ts[order],
        kind=kind,
        side=np.concatenate(parts["side"])[order],
        px=np.concatenate(parts["px"])[order],
        qty=np.concatenate(parts["qty"])[order],
        prev=np.concatenate(parts["prev"])[order],
        bid=cols["bid_px"],
        bid_qty=cols["bid_qty"],
        ask=cols["ask_px"],
        ask_qty=cols["ask_qty"],
        recv=np.concatenate(parts["recv"])[order],
        has_depth=book is not None and len(book) > 0,
    )


def load_events(
    store: str | Path | Any,
    symbol: str,
    start: Any = None,
    end: Any = None,
    *,
    depth: bool = True,
) -> EventStream:
    """The event stream of ``symbol`` from the store: its trades, quotes and (with ``depth``,
    where stored) L2 book rows with ``start <= ts < end``."""
    from quantarena.data.read import (
        _as_store,
        load_book,
        load_quotes,
        load_trades,
        timestamp_ns,
    )

    st = _as_store(store)
    kinds = {d["kind"] for d in st.datasets(symbol=symbol)}

    def _try(fn: Any, kind: str) -> Any:
        return fn(st, symbol, start, end) if kind in kinds else None

    quotes = _try(load_quotes, "quotes")
    if quotes is None:
        raise ValueError(
            f"store {st.root}: no quotes for {symbol}: the tick simulator needs best bid/ask — "
            "ingest a capture with bookTicker (`quantarena data ingest CAPTURE.gz --store DIR`)"
        )
    trades = _try(load_trades, "trades")
    book = None
    if depth and "book" in kinds:
        book = load_book(st, symbol, start, end, from_snapshot=True)
    ev = build_events(trades, quotes, book, symbol=symbol)
    lo = timestamp_ns(start)
    if lo is not None and len(ev) and ev.ts[0] < lo:  # book rows before start seed `prev` only
        ev = ev.slice(int(np.searchsorted(ev.ts, lo, side="left")), len(ev))
    return ev


def from_rows(rows: Sequence[tuple], symbol: str = "TEST") -> EventStream:
    """An event stream from hand-written rows (tests, examples), in the given order:

    * ``("quote", ts, bid, bid_qty, ask, ask_qty)``
    * ``("trade", ts, px, qty, side)`` — side +1 the aggressor bought, -1 sold
    * ``("depth", ts, side, px, qty)`` — the level's new size; its previous size is tracked
    """
    n = len(rows)
    f = {k: np.zeros(n) for k in ("px", "qty", "prev")}
    ts = np.zeros(n, dtype=np.int64)
    kind = np.zeros(n, dtype=np.int8)
    side = np.zeros(n, dtype=np.int8)
    top = np.full((n, 4), np.nan)
    cur = np.full(4, np.nan)
    levels: dict[tuple[int, float], float] = {}
    has_depth = False
    for i, r in enumerate(rows):
        ts[i] = int(r[1])
        if r[0] == "quote":
            kind[i] = QUOTE
            cur = np.array(r[2:6], dtype=np.float64)
            f["px"][i] = np.nan
        elif r[0] == "trade":
            kind[i] = TRADE
            f["px"][i], f["qty"][i], side[i] = r[2], r[3], r[4]
        elif r[0] == "depth":
            has_depth = True
            kind[i] = DEPTH
            side[i], f["px"][i], f["qty"][i] = r[2], r[3], r[4]
            f["prev"][i] = levels.get((int(r[2]), float(r[3])), 0.0)
            levels[(int(r[2]), float(r[3]))] = float(r[4])
        else:
            raise ValueError(f"row {i}: unknown event kind {r[0]!r}: use quote, trade or depth")
        top[i] = cur
    if n and np.any(np.diff(ts) < 0):
        raise ValueError("rows must be in time order")
    return EventStream(
        symbol=symbol,
        ts=ts,
        kind=kind,
        side=side,
        px=f["px"],
        qty=f["qty"],
        prev=f["prev"],
        bid=top[:, 0].copy(),
        bid_qty=top[:, 1].copy(),
        ask=top[:, 2].copy(),
        ask_qty=top[:, 3].copy(),
        recv=np.full(n, -1, dtype=np.int64),
        has_depth=has_depth,
    )
