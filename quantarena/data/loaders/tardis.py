"""Tardis.dev CSV datasets: ``book_snapshot_25`` / ``book_snapshot_5``, ``incremental_book_L2``,
``quotes`` and ``trades``.

Every file starts ``exchange,symbol,timestamp,local_timestamp``; times are µs since the epoch
(``timestamp`` = exchange time → ``ts``; ``local_timestamp`` = receive time → ``recv_ts``).
Symbols become ``VENUE:SYMBOL`` (``binance-futures`` → ``BINANCE-USDM``, ``deribit`` →
``DERIBIT``; see :mod:`quantarena.data.loaders.ticks_common`). Tardis gives no update ids,
so ``update_id`` is null and the book's sequence cannot be checked.

* ``book_snapshot_N``: each row is the top N levels a side; it becomes one ``book`` snapshot
  (it replaces the book; levels beyond N are unknown). Empty levels are skipped; rows sharing
  an exchange time keep only the last (noted).
* ``incremental_book_L2``: rows map one to one (``amount`` = new level size, 0 deletes;
  ``is_snapshot`` rows start a new book).
* ``quotes``: best bid/ask; rows with an empty side are dropped (noted).
* ``trades``: ``side`` buy → +1, sell → -1, unknown → 0; ``trade_id`` = ``id`` when every id
  is an integer, else null.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from quantarena.data.errors import ParseError
from quantarena.data.loaders.csvread import NULL_VALUES
from quantarena.data.loaders.source import Source
from quantarena.data.loaders.ticks_common import TARDIS_VENUES, loaded, venue_symbol
from quantarena.data.schema import LoadedData

_LEVEL = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")
US = 1_000


def _read(src: Source) -> pa.Table:
    conv = pacsv.ConvertOptions(
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        column_types={"timestamp": pa.int64(), "local_timestamp": pa.int64(), "id": pa.string()},
    )
    try:
        return pacsv.read_csv(pa.BufferReader(src.buffer), convert_options=conv)
    except pa.ArrowInvalid as exc:
        raise ParseError(
            f"not a readable Tardis CSV ({exc})".replace("\n", " "),
            path=src.display,
            hint="check the file is complete",
        ) from None


def _np(table: pa.Table, name: str, path: str, fill=None) -> np.ndarray:
    col = table.column(name).combine_chunks()
    if col.null_count and fill is None:
        i = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
        raise ParseError(
            "value is missing", path=path, row=i + 2, field=name, hint="fix or drop the row"
        )
    if col.null_count:
        col = col.fill_null(fill)
    return col.to_numpy(zero_copy_only=False)


def _symbols(table: pa.Table, symbol: str | None) -> list[str]:
    if symbol:
        return [symbol] * table.num_rows
    ex = table.column("exchange").to_pylist()
    sy = table.column("symbol").to_pylist()
    cache: dict[tuple[str, str], str] = {}
    out = []
    for e, s in zip(ex, sy, strict=True):
        k = (e, s)
        if k not in cache:
            cache[k] = venue_symbol(TARDIS_VENUES.get(str(e).lower(), str(e)), str(s))
        out.append(cache[k])
    return out


def load_tardis(src: Source, fmt: str, symbol: str | None = None) -> list[LoadedData]:
    """Parse a Tardis CSV of layout ``fmt`` (see the module doc)."""
    path = src.display
    t = _read(src)
    n = t.num_rows
    syms = _symbols(t, symbol)
    ts = _np(t, "timestamp", path) * US
    recv = _np(t, "local_timestamp", path, fill=-1) * US
    recv_arr = pa.array(np.where(recv >= 0, recv, 0), pa.int64(), mask=recv < 0)
    lines = np.arange(2, n + 2, dtype=np.int64)
    notes = ["timestamps in microseconds (exchange time → ts, local_timestamp → recv_ts)"]
    if fmt == "tardis-trades":
        side_txt = np.asarray(t.column("side").fill_null("unknown").to_pylist(), dtype=object)
        side = np.where(side_txt == "buy", 1, np.where(side_txt == "sell", -1, 0)).astype(np.int8)
        ids = t.column("id").combine_chunks()
        try:
            tid = ids.cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            tid = pa.nulls(n, pa.int64())
            notes.append("trade ids are not integers: trade_id left empty")
        cols = {
            "symbol": syms,
            "ts": ts,
            "price": _np(t, "price", path).astype(np.float64),
            "qty": _np(t, "amount", path).astype(np.float64),
            "side": side,
            "trade_id": tid,
        }
        return [loaded("trades", cols, lines, path=path, layout=fmt, notes=notes)]
    if fmt == "tardis-quotes":
        px = {
            c: _np(t, c, path, fill=np.nan).astype(np.float64)
            for c in ("bid_price", "bid_amount", "ask_price", "ask_amount")
        }
        ok = np.ones(n, dtype=bool)
        for v in px.values():
            ok &= ~np.isnan(v)
        if not ok.all():
            notes.append(f"dropped {int((~ok).sum())} quotes with an empty side")
        keep = pa.array(np.flatnonzero(ok))
        cols = {
            "symbol": pa.array(syms, pa.string()).take(keep),
            "ts": ts[ok],
            "bid_px": px["bid_price"][ok],
            "bid_qty": px["bid_amount"][ok],
            "ask_px": px["ask_price"][ok],
            "ask_qty": px["ask_amount"][ok],
            "recv_ts": recv_arr.take(keep),
        }
        return [loaded("quotes", cols, lines[ok], path=path, layout=fmt, notes=notes)]
    if fmt == "tardis-incremental-book":
        side_txt = np.asarray(t.column("side").to_pylist(), dtype=object)
        side = np.where(side_txt == "bid", 1, np.where(side_txt == "ask", -1, 0)).astype(np.int8)
        snap = t.column("is_snapshot").combine_chunks()
        if snap.type != pa.bool_():
            snap = pc.equal(pc.utf8_lower(snap.cast(pa.string())), "true")
        cols = {
            "symbol": syms,
            "ts": ts,
            "side": side,
            "price": _np(t, "price", path).astype(np.float64),
            "qty": _np(t, "amount", path).astype(np.float64),
            "is_snapshot": snap.fill_null(False),
            "recv_ts": recv_arr,
        }
        return [loaded("book", cols, lines, path=path, layout=fmt, notes=notes)]
    # book_snapshot_N: one snapshot per row
    levels: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    for name in t.column_names:
        m = _LEVEL.match(name)
        if m:
            levels.setdefault((m.group(1), int(m.group(2))), {})[m.group(3)] = _np(
                t, name, path, fill=np.nan
            ).astype(np.float64)
    depth = 1 + max(i for _, i in levels)
    keep_row = np.ones(n, dtype=bool)
    same_ts = (
        np.r_[ts[1:] == ts[:-1], False]
        & np.r_[np.asarray(syms[1:], dtype=object) == np.asarray(syms[:-1], dtype=object), False]
    )
    if same_ts.any():
        keep_row &= ~same_ts
        notes.append(
            f"dropped {int(same_ts.sum())} snapshots repeating an exchange time (kept the last)"
        )
    notes.append(f"top-{depth} snapshots: each row replaces the book")
    parts_side, parts_px, parts_qty, parts_row = [], [], [], []
    for side_name, sgn in (("bids", 1), ("asks", -1)):
        for i in range(depth):
            lv = levels.get((side_name, i))
            if not lv or "price" not in lv or "amount" not in lv:
                continue
            ok = keep_row & ~np.isnan(lv["price"]) & ~np.isnan(lv["amount"])
            rows = np.flatnonzero(ok)
            parts_row.append(rows)
            parts_side.append(np.full(rows.size, sgn, np.int8))
            parts_px.append(lv["price"][rows])
            parts_qty.append(lv["amount"][rows])
    row = np.concatenate(parts_row)
    order = np.argsort(row, kind="stable")  # rows in file order, bids before asks in each
    row = row[order]
    take = pa.array(row)
    cols = {
        "symbol": pa.array(syms, pa.string()).take(take),
        "ts": ts[row],
        "side": np.concatenate(parts_side)[order],
        "price": np.concatenate(parts_px)[order],
        "qty": np.concatenate(parts_qty)[order],
        "is_snapshot": np.ones(row.size, dtype=bool),
        "recv_ts": recv_arr.take(take),
    }
    return [loaded("book", cols, lines[row], path=path, layout=fmt, notes=notes)]
