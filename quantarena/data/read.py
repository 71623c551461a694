"""Read the store back: aligned bar panels, and trades, quotes and L2 book rows as arrays.

Times given as ``start``/``end`` may be ISO strings (naive = UTC), ``datetime``,
``pandas.Timestamp`` or int ns; the range is ``[start, end)`` on bar OPEN times (a bar
that opens before ``end`` is included whole).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantarena.data.errors import EmptyRangeError, StoreError
from quantarena.data.intervals import interval_ns, interval_str
from quantarena.data.orderbook import BookLevels, book_levels
from quantarena.data.panel import BarPanel
from quantarena.data.resample import SUM_COLUMNS, bucket_start, default_origin, resample_bars
from quantarena.data.store import MissingDataError, Store, iso

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_READ_COLUMNS = ("ts", "open", "high", "low", "close", "volume", *SUM_COLUMNS)


def timestamp_ns(value: Any) -> int | None:
    """Convert a time (ISO string, datetime, Timestamp, numpy datetime64, int ns) to int ns
    UTC; ``None`` stays ``None``. Naive times are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"cannot read {value!r} as a time: use ISO like 2024-01-31 or 2024-01-31T12:00Z"
        ) from exc
    if ts is pd.NaT:
        raise ValueError(f"cannot read {value!r} as a time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


@dataclass
class TradeArrays:
    """Trades of one symbol as numpy arrays, sorted by ``ts`` (then trade_id).

    Attributes:
        symbol: the symbol.
        ts: int64 ns, UTC. price: float64 (quote units). qty: float64 (base units).
        side: int8, +1 when the aggressor bought, -1 when it sold.
        trade_id: int64, -1 where the source gave none.
    """

    symbol: str
    ts: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    side: np.ndarray
    trade_id: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def _as_store(store: str | Path | Store) -> Store:
    st = store if isinstance(store, Store) else Store(store)
    if not st.exists():
        raise StoreError(
            "no store here (catalog.json is missing)",
            path=st.root,
            hint="create it with `quantarena data ingest FILE --store DIR`",
        )
    return st


def load_trades(
    store: str | Path | Store, symbol: str, start: Any = None, end: Any = None
) -> TradeArrays:
    """Trades of ``symbol`` with ``start <= ts < end`` from the store."""
    st = _as_store(store)
    t = st.read_table("trades", symbol, None, timestamp_ns(start), timestamp_ns(end))
    tid = t.column("trade_id")
    tid_np = tid.fill_null(-1).to_numpy() if tid.null_count else tid.to_numpy()
    return TradeArrays(  # writable copies, not read-only views of Arrow buffers
        symbol=symbol,
        ts=np.array(t.column("ts").to_numpy(), dtype=np.int64),
        price=np.array(t.column("price").to_numpy(), dtype=np.float64),
        qty=np.array(t.column("qty").to_numpy(), dtype=np.float64),
        side=np.array(t.column("side").to_numpy(), dtype=np.int8),
        trade_id=np.array(tid_np, dtype=np.int64),
    )


def _int_or(col: Any, null: int = -1) -> np.ndarray:
    """An int64 column as a writable numpy array, nulls replaced by ``null``."""
    arr = col.fill_null(null) if col.null_count else col
    return np.array(arr.to_numpy(), dtype=np.int64)


@dataclass
class QuoteArrays:
    """Best bid/ask quotes of one symbol as numpy arrays, sorted by ``ts`` (then update id).

    Attributes:
        symbol: the symbol. ts: int64 ns UTC (exchange time, or receive time where the source
        has none; see the loader). bid_px, ask_px: float64 (quote units). bid_qty, ask_qty:
        float64 (base units). update_id: int64 book update id, -1 where none. recv_ts: int64
        ns receive time, -1 where none.
    """

    symbol: str
    ts: np.ndarray
    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray
    update_id: np.ndarray
    recv_ts: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def to_frame(self) -> Any:
        """A pandas DataFrame of the columns (``ts`` as int64 ns)."""
        import pandas as pd

        return pd.DataFrame({k: v for k, v in self.__dict__.items() if k != "symbol"})


@dataclass
class BookArrays:
    """L2 book rows (deltas and snapshots) of one symbol as numpy arrays, in stored order
    (sorted by ``ts`` then ``update_id``; the rows of one message together).

    Attributes:
        symbol: the symbol. ts: int64 ns UTC. side: int8, +1 bid / -1 ask. price: float64.
        qty: float64, the new total size at the level (0 deletes it). is_snapshot: bool, the
        row belongs to a snapshot (which replaces the book). update_id, prev_update_id: int64,
        -1 where none. recv_ts: int64 ns, -1 where none.
    """

    symbol: str
    ts: np.ndarray
    side: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    is_snapshot: np.ndarray
    update_id: np.ndarray
    prev_update_id: np.ndarray
    recv_ts: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def to_frame(self) -> Any:
        """A pandas DataFrame of the columns (``ts`` as int64 ns)."""
        import pandas as pd

        return pd.DataFrame({k: v for k, v in self.__dict__.items() if k != "symbol"})

    def levels(
        self,
        depth: int = 5,
        *,
        times: Any = None,
        update_ids: Any = None,
    ) -> BookLevels:
        """Top ``depth`` levels at each of ``times`` (any time form :func:`timestamp_ns`
        takes, or int ns) or ``update_ids``; see :func:`quantarena.data.orderbook.book_levels`."""
        if times is not None:
            times = np.asarray(
                [timestamp_ns(t) for t in times]
                if not isinstance(times, np.ndarray) or times.dtype.kind not in "iu"
                else times,
                dtype=np.int64,
            )
        uid = self.update_id if update_ids is not None else None
        return book_levels(
            self.ts,
            self.side,
            self.price,
            self.qty,
            self.is_snapshot,
            uid,
            depth=depth,
            times=times,
            update_ids=update_ids,
        )


def load_quotes(
    store: str | Path | Store, symbol: str, start: Any = None, end: Any = None
) -> QuoteArrays:
    """Quotes of ``symbol`` with ``start <= ts < end`` from the store."""
    st = _as_store(store)
    t = st.read_table("quotes", symbol, None, timestamp_ns(start), timestamp_ns(end))
    return QuoteArrays(
        symbol=symbol,
        ts=np.array(t.column("ts").to_numpy(), dtype=np.int64),
        bid_px=np.array(t.column("bid_px").to_numpy(), dtype=np.float64),
        bid_qty=np.array(t.column("bid_qty").to_numpy(), dtype=np.float64),
        ask_px=np.array(t.column("ask_px").to_numpy(), dtype=np.float64),
        ask_qty=np.array(t.column("ask_qty").to_numpy(), dtype=np.float64),
        update_id=_int_or(t.column("update_id")),
        recv_ts=_int_or(t.column("recv_ts")),
    )


def load_book(
    store: str | Path | Store,
    symbol: str,
    start: Any = None,
    end: Any = None,
    *,
    from_snapshot: bool = False,
) -> BookArrays:
    """Book rows of ``symbol`` with ``start <= ts < end`` from the store.

    Rows from the middle of a stream are deltas on a book they do not show; with
    ``from_snapshot=True`` the range starts instead at the last snapshot at or before
    ``start`` (when there is one), so :meth:`BookArrays.levels` rebuilds the true book at
    any time from ``start`` on.
    """
    st = _as_store(store)
    lo, hi = timestamp_ns(start), timestamp_ns(end)
    if from_snapshot and lo is not None:
        head = st.read_table("book", symbol, None, None, lo + 1, ["ts", "is_snapshot"])
        snap_ts = head.column("ts").to_numpy()[
            head.column("is_snapshot").to_numpy(zero_copy_only=False)
        ]
        if snap_ts.size:
            lo = int(snap_ts.max())
    t = st.read_table("book", symbol, None, lo, hi)
    return BookArrays(
        symbol=symbol,
        ts=np.array(t.column("ts").to_numpy(), dtype=np.int64),
        side=np.array(t.column("side").to_numpy(), dtype=np.int8),
        price=np.array(t.column("price").to_numpy(), dtype=np.float64),
        qty=np.array(t.column("qty").to_numpy(), dtype=np.float64),
        is_snapshot=np.array(t.column("is_snapshot").to_numpy(zero_copy_only=False), dtype=bool),
        update_id=_int_or(t.column("update_id")),
        prev_update_id=_int_or(t.column("prev_update_id")),
        recv_ts=_int_or(t.column("recv_ts")),
    )


def _pick_intervals(
    st: Store, symbols: list[str], target: int | None
) -> tuple[dict[str, dict[str, Any]], int]:
    """The catalog entry to read per symbol and the output interval."""
    bars = st.datasets("bars")
    by_sym: dict[str, list[dict[str, Any]]] = {}
    for d in bars:
        by_sym.setdefault(d["symbol"], []).append(d)
    missing = [s for s in symbols if s not in by_sym]
    if missing:
        have = ", ".join(sorted(by_sym)) or "nothing"
        raise MissingDataError(
            f"no bars for {', '.join(map(repr, missing))} (the store holds bars of: {have})",
            path=st.root,
            hint="check the symbols, or ingest their data first",
        )
    chosen: dict[str, dict[str, Any]] = {}
    if target is None:
        for s in symbols:
            if len(by_sym[s]) > 1:
                ivs = ", ".join(interval_str(d["interval_ns"]) for d in by_sym[s])
                raise ValueError(f"{s} has bars at several intervals ({ivs}): pass interval=")
            chosen[s] = by_sym[s][0]
        ivs = {d["interval_ns"] for d in chosen.values()}
        if len(ivs) > 1:
            desc = ", ".join(f"{s} {interval_str(d['interval_ns'])}" for s, d in chosen.items())
            raise ValueError(f"the symbols have different intervals ({desc}): pass interval=")
        return chosen, int(next(iter(ivs)))
    for s in symbols:
        usable = [d for d in by_sym[s] if target % d["interval_ns"] == 0]
        if not usable:
            ivs = ", ".join(interval_str(d["interval_ns"]) for d in by_sym[s])
            raise ValueError(
                f"cannot make {interval_str(target)} bars of {s}: the store holds {ivs} "
                "(resampling goes only to whole multiples of a stored interval)"
            )
        chosen[s] = max(usable, key=lambda d: d["interval_ns"])
    return chosen, target


def _read_symbol(
    st: Store,
    entry: dict[str, Any],
    target: int,
    lo: int | None,
    hi: int | None,
    threads: bool = True,
) -> dict[str, np.ndarray]:
    src = int(entry["interval_ns"])
    if src != target:  # read whole buckets: those opening in [lo, hi)
        origin = default_origin(target)
        if lo is not None:
            b = int(bucket_start(np.array([lo]), target, origin)[0])
            lo = b if b == lo else b + target
        if hi is not None:
            b = int(bucket_start(np.array([hi]), target, origin)[0])
            hi = b if b == hi else b + target
    t = st.read_table(
        "bars", entry["symbol"], src, lo, hi, BAR_READ_COLUMNS, entry=entry, use_threads=threads
    )
    # columns as lists of numpy chunks (zero-copy views of the Arrow buffers); ts in one piece
    cols: dict[str, Any] = {"ts": t.column("ts").to_numpy()}
    for name in ("open", "high", "low", "close", "volume"):
        cols[name] = [ch.to_numpy() for ch in t.column(name).chunks]
    for name in SUM_COLUMNS:
        c = t.column(name)
        if c.null_count < len(c):  # keep only columns the source filled
            cols[name] = [
                np.asarray(ch.to_numpy(zero_copy_only=False), dtype=np.float64) for ch in c.chunks
            ]
    if src != target:
        cols = resample_columns({k: _whole(v) for k, v in cols.items()}, src, target)
    return cols


def resample_columns(
    cols: dict[str, np.ndarray], src_ns: int, target_ns: int
) -> dict[str, np.ndarray]:
    """One symbol's bar arrays (``ts``, open/high/low/close/volume and any of
    ``SUM_COLUMNS``) at ``src_ns`` bars → ``target_ns`` bars, by
    :func:`~quantarena.data.resample.resample_bars` (UTC-aligned buckets; buckets without
    a source bar are not invented)."""
    extra = {k: cols[k] for k in SUM_COLUMNS if k in cols}
    r = resample_bars(
        cols["ts"],
        cols["open"],
        cols["high"],
        cols["low"],
        cols["close"],
        cols["volume"],
        src_ns,
        target_ns,
        extra=extra,
    )
    return {
        "ts": r.ts,
        "open": r.open,
        "high": r.high,
        "low": r.low,
        "close": r.close,
        "volume": r.volume,
        **r.extra,
    }


def _when(ts_ns: int | None) -> str:
    """ISO-8601 UTC, to the minute when the seconds are zero: 2024-01-31T12:00Z."""
    text = iso(ts_ns)
    return text[:-4] + "Z" if text.endswith(":00Z") and len(text) == 20 else text


def no_bars_error(
    symbols: list[str],
    start_ns: int | None,
    end_ns: int | None,
    first_ns: int | None,
    last_ns: int | None,
    holder: str = "the store",
) -> EmptyRangeError:
    """The one error for a time range without bars, e.g. ``no bars of BTCUSDT between
    2023-01-01T00:00Z and 2023-02-01T00:00Z; the store holds 2021-12-31T23:01Z →
    2022-02-01T00:00Z``. ``holder`` names where the bars come from."""
    if start_ns is not None and end_ns is not None:
        span = f"between {_when(start_ns)} and {_when(end_ns)}"
    elif start_ns is not None:
        span = f"from {_when(start_ns)} on"
    elif end_ns is not None:
        span = f"before {_when(end_ns)}"
    else:
        span = "at all"
    held = (
        f"{holder} holds {_when(first_ns)} → {_when(last_ns)}"
        if first_ns is not None and last_ns is not None
        else f"{holder} holds none"
    )
    return EmptyRangeError(
        f"no bars of {', '.join(symbols)} {span}; {held}",
        hint="pick a start and an end inside that span (--start/--end; data.start/data.end "
        "in a config)",
    )


def load_bars(
    store: str | Path | Store,
    symbols: str | list[str] | None = None,
    start: Any = None,
    end: Any = None,
    interval: str | int | None = None,
) -> BarPanel:
    """An aligned :class:`~quantarena.data.panel.BarPanel` of stored bars.

    Args:
        store: a store directory or :class:`~quantarena.data.store.Store`.
        symbols: one symbol, a list (column order), or None for every symbol with bars.
        start, end: ``[start, end)`` on bar open times (see the module doc).
        interval: None = the stored interval (an error if the symbols differ or one has
            several); else the output interval, made by resampling the coarsest stored
            interval that divides it (see :mod:`~quantarena.data.resample`).

    The panel's times are the union of the symbols' bar times. Where a symbol has no
    bar, ``mask`` is False, its open/high/low/close carry its last close (NaN before
    its first bar) and volume (and any extra column) is 0. Extras (quote_volume, trades,
    taker_buy_volume; float64) appear when some symbol's source filled them; a symbol
    whose source did not has NaN at its bars. The arrays are new, writable and C-ordered.
    """
    st = _as_store(store)
    if symbols is None:
        symbols = sorted({d["symbol"] for d in st.datasets("bars")})
        if not symbols:
            raise MissingDataError(
                "the store holds no bars", path=st.root, hint="ingest some bars first"
            )
    elif isinstance(symbols, str):
        symbols = [symbols]
    else:
        symbols = list(symbols)
    if not symbols:
        raise ValueError("no symbols given: pass one or more, or None for all")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"symbols repeat: {symbols}")
    target = interval_ns(interval) if interval is not None else None
    chosen, out_ns = _pick_intervals(st, symbols, target)
    lo, hi = timestamp_ns(start), timestamp_ns(end)
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"end ({end}) must come after start ({start})")

    def read(s: str) -> dict[str, np.ndarray]:
        return _read_symbol(st, chosen[s], out_ns, lo, hi, threads=len(symbols) == 1)

    if len(symbols) > 1:
        with ThreadPoolExecutor(min(len(symbols), os.cpu_count() or 1, 8)) as pool:
            per = list(pool.map(read, symbols))
    else:
        per = [read(symbols[0])]
    if all(p["ts"].size == 0 for p in per):
        first = min(int(chosen[s]["start_ns"]) for s in symbols)
        last = max(int(chosen[s]["end_ns"]) for s in symbols)
        raise no_bars_error(symbols, lo, hi, first, last, "the store")
    return align(per, symbols, out_ns)


def _whole(v: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """An array from an array or a list of chunks."""
    if isinstance(v, np.ndarray):
        return v
    if len(v) == 1:
        return v[0]
    return np.concatenate(v) if v else np.zeros(0)


_BLOCK = 16_384


def _stack_into(columns: list[list[np.ndarray]], out: np.ndarray) -> None:
    """``out[:, j] = concat(columns[j])`` for a C-ordered (T, A) ``out``, block by block so
    the writes stay in cache (several times faster than column-wise strided writes)."""
    n = out.shape[0]
    starts = [np.cumsum([0] + [c.size for c in chunks]) for chunks in columns]
    cuts = set(range(0, n, _BLOCK)) | {n}
    for st in starts:
        cuts.update(int(x) for x in st)
    edges = sorted(c for c in cuts if 0 <= c <= n)
    for s, e in zip(edges[:-1], edges[1:], strict=False):
        parts = []
        for chunks, st in zip(columns, starts, strict=False):
            i = int(np.searchsorted(st, s, "right")) - 1
            off = s - int(st[i])
            parts.append(chunks[i][off : off + (e - s)])
        np.stack(parts, axis=1, out=out[s:e])


def align(per_symbol: list[dict[str, Any]], symbols: list[str], interval: int) -> BarPanel:
    """Align per-symbol bar arrays on the union of their times; see :func:`load_bars` for
    the fill rules.

    Each dict holds ``ts`` (sorted int64 ns), open/high/low/close/volume and optional
    extras, as arrays or lists of array chunks.
    """
    n_sym = len(symbols)
    ts_list = [p["ts"] for p in per_symbol]
    same = all(t.shape == ts_list[0].shape and np.array_equal(t, ts_list[0]) for t in ts_list[1:])
    ts = ts_list[0].copy() if same else np.unique(np.concatenate(ts_list))
    n = ts.size
    extras = sorted({k for p in per_symbol for k in SUM_COLUMNS if k in p})
    names = ("open", "high", "low", "close", "volume", *extras)
    out = {k: np.empty((n, n_sym), dtype=np.float64) for k in names}
    if same:
        mask = np.ones((n, n_sym), dtype=bool)

        def fill(k: str) -> None:
            cols = [
                list(p[k])
                if isinstance(p.get(k), list)
                else [p[k] if k in p else np.full(n, np.nan)]
                for p in per_symbol
            ]
            _stack_into(cols, out[k])

    else:
        idx = [np.searchsorted(ts, p["ts"]) for p in per_symbol]
        mask = np.zeros((n, n_sym), dtype=bool)
        carried = np.empty((n, n_sym), dtype=np.float64)
        for j, p in enumerate(per_symbol):
            mask[idx[j], j] = True
            # carry the last close into gaps (NaN before the first bar)
            pos = np.zeros(n, dtype=np.int64)
            pos[idx[j]] = np.arange(1, idx[j].size + 1)
            np.maximum.accumulate(pos, out=pos)
            carried[:, j] = np.r_[np.nan, _whole(p["close"])][pos]

        def fill(k: str) -> None:
            col = out[k]
            if k in PRICE_COLUMNS:
                np.copyto(col, carried)
            else:
                col.fill(0.0)
            for j, p in enumerate(per_symbol):
                col[idx[j], j] = _whole(p[k]) if k in p else np.nan

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(fill, names))
    return BarPanel(
        ts=ts,
        symbols=list(symbols),
        open=out["open"],
        high=out["high"],
        low=out["low"],
        close=out["close"],
        volume=out["volume"],
        mask=mask,
        interval_ns=int(interval),
        extra={k: out[k] for k in extras},
    )
