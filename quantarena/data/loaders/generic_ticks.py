"""Generic long CSVs of tick data, one per kind, told apart by their header.

Columns (names exactly as below; others are ignored; ``symbol`` may be left out when
``--symbol`` is given):

* ``trades-csv``: ``symbol, ts, price, qty, side[, trade_id]``
* ``quotes-csv``: ``symbol, ts, bid_px, bid_qty, ask_px, ask_qty[, update_id, recv_ts]``
* ``book-csv``: ``symbol, ts, side, price, qty, is_snapshot[, update_id, prev_update_id,
  recv_ts]``

``ts`` / ``recv_ts``: epoch numbers (unit told by magnitude: s, ms, µs or ns) or ISO 8601 text
(naive = UTC). ``side``: trades +1 / -1 / 0 or ``buy`` / ``sell``; book +1 / -1 or ``bid`` /
``ask``. ``is_snapshot``: true/false or 1/0. Rows of one book message must be adjacent and
share ``ts`` and ``update_id``. The rows are validated by their kind
(:mod:`quantarena.data.kinds`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from quantarena.data.errors import DataError, ParseError
from quantarena.data.loaders.csvread import FALSE_VALUES, NULL_VALUES, TRUE_VALUES
from quantarena.data.loaders.source import Source
from quantarena.data.loaders.ticks_common import loaded
from quantarena.data.loaders.timeparse import epoch_to_ns, parse_time_strings
from quantarena.data.schema import LoadedData

KIND_OF = {"trades-csv": "trades", "quotes-csv": "quotes", "book-csv": "book"}
_SIDE_WORDS = {"buy": 1, "bid": 1, "b": 1, "sell": -1, "ask": -1, "a": -1, "s": -1, "unknown": 0}


def _times(col: pa.ChunkedArray, name: str, path: str, optional: bool) -> pa.Array:
    arr = col.combine_chunks()
    valid = ~pc.is_null(arr).to_numpy(zero_copy_only=False)
    if not valid.all() and not optional:
        i = int(np.flatnonzero(~valid)[0])
        raise ParseError(
            "value is missing", path=path, row=i + 2, field=name, hint="fix or drop the row"
        )
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        vals = arr.fill_null(0).to_numpy(zero_copy_only=False)
        ns, _ = epoch_to_ns(vals)
    else:
        ns, _ = parse_time_strings(
            arr.cast(pa.string()).fill_null("1970-01-01"),
            field=name,
            path=path,
            locate=lambda i: i + 2,
        )
    return pa.array(np.asarray(ns, dtype=np.int64), pa.int64(), mask=~valid)


def _side(col: pa.ChunkedArray, path: str) -> np.ndarray:
    arr = col.combine_chunks()
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        return arr.fill_null(99).to_numpy(zero_copy_only=False).astype(np.int8)
    words = [str(x).strip().lower() if x is not None else "" for x in arr.to_pylist()]
    out = np.empty(len(words), dtype=np.int8)
    for i, w in enumerate(words):
        if w in _SIDE_WORDS:
            out[i] = _SIDE_WORDS[w]
        else:
            try:
                out[i] = int(float(w))
            except ValueError:
                raise ParseError(
                    f"side {w!r} is not +1/-1, buy/sell or bid/ask",
                    path=path,
                    row=i + 2,
                    field="side",
                    hint="fix the row",
                ) from None
    return out


def load_generic_ticks(src: Source, fmt: str, symbol: str | None = None) -> list[LoadedData]:
    """Parse a generic long CSV of one tick kind (see the module doc)."""
    path = src.display
    kind = KIND_OF[fmt]
    conv = pacsv.ConvertOptions(
        null_values=NULL_VALUES,
        true_values=TRUE_VALUES,
        false_values=FALSE_VALUES,
        strings_can_be_null=True,
        column_types={"symbol": pa.string(), "is_snapshot": pa.bool_()},
    )
    try:
        t = pacsv.read_csv(pa.BufferReader(src.buffer), convert_options=conv)
    except pa.ArrowInvalid as exc:
        raise ParseError(
            f"cannot read as {fmt} ({exc})".replace("\n", " "), path=path, hint="check the columns"
        ) from None
    n = t.num_rows
    cols: dict[str, object] = {}
    if symbol:
        cols["symbol"] = [symbol] * n
    elif "symbol" in t.column_names:
        cols["symbol"] = t.column("symbol").combine_chunks()
    else:
        raise DataError(
            "no symbol column", path=path, field="symbol", hint="add one, or pass --symbol"
        )
    cols["ts"] = _times(t.column("ts"), "ts", path, optional=False)
    if "recv_ts" in t.column_names:
        cols["recv_ts"] = _times(t.column("recv_ts"), "recv_ts", path, optional=True)
    if "side" in t.column_names:
        cols["side"] = _side(t.column("side"), path)
    for name in t.column_names:
        if name in cols or name == "side":
            continue
        if name in ("price", "qty", "bid_px", "bid_qty", "ask_px", "ask_qty"):
            cols[name] = t.column(name).combine_chunks().cast(pa.float64())
        elif name in ("trade_id", "update_id", "prev_update_id"):
            cols[name] = t.column(name).combine_chunks().cast(pa.int64())
        elif name == "is_snapshot":
            cols[name] = t.column(name).combine_chunks()
    lines = np.arange(2, n + 2, dtype=np.int64)
    try:
        return [loaded(kind, cols, lines, path=path, layout=fmt, notes=[])]
    except KeyError as exc:
        raise DataError(
            f"missing column {exc}", path=path, hint=f"{fmt} needs the columns in its documentation"
        ) from None
