"""Binance public data dumps (data.binance.vision): klines, aggTrades, trades.

* klines (spot: no header; USD-M futures: header ``open_time,open,...``), 12 columns:
  open_time, open, high, low, close, volume, close_time, quote_volume, count,
  taker_buy_volume, taker_buy_quote_volume, ignore. ``ts`` = open_time; ``trades`` = count.
* aggTrades: agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
  is_buyer_maker[, is_best_match] (futures drop the last and usually carry a header).
* trades: id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match] (futures: no
  is_best_match, with a header).

Timestamps are ms, or µs for spot from 2025-01-01: the unit is told by magnitude.
``side`` = -1 when ``is_buyer_maker`` (the taker sold), else +1; ``trade_id`` = the (agg) id.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from quantarena.data.errors import UnknownLayoutError
from quantarena.data.loaders.common import bool_column, int_column, resolve_symbol
from quantarena.data.loaders.csvread import as_float, read_csv
from quantarena.data.loaders.detect import sniff_text
from quantarena.data.loaders.source import Source
from quantarena.data.loaders.timeparse import epoch_to_ns
from quantarena.data.validate import RawRows

KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
AGG_COLUMNS = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
    "is_best_match",
)
TRADE_COLUMNS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")

F64, I64, BOOL = pa.float64(), pa.int64(), pa.bool_()


def _names(src: Source, canonical: tuple[str, ...], allowed: tuple[int, ...], what: str):
    lay = sniff_text(src)
    n = lay.ncols
    if n not in allowed:
        raise UnknownLayoutError(
            f"{what} has {'/'.join(map(str, allowed))} columns, this file has {n}",
            path=src.display,
            hint="check --format",
        )
    return lay, list(canonical[:n])


def load_klines(src: Source, symbol: str | None) -> RawRows:
    """Binance klines (spot or futures, header or none) → bar rows."""
    lay, names = _names(src, KLINE_COLUMNS, (11, 12), "a Binance kline file")
    types = {
        "open_time": I64,
        "open": F64,
        "high": F64,
        "low": F64,
        "close": F64,
        "volume": F64,
        "quote_volume": F64,
        "count": I64,
        "taker_buy_volume": F64,
    }
    sym = resolve_symbol(src, symbol)
    t = read_csv(
        src, skip_lines=lay.skip, header=lay.header, names=names, types=types, include=list(types)
    )
    path, loc = src.display, t.locate
    labels = dict(zip(names, t.header, strict=False)) if t.header else {}
    ts, unit = epoch_to_ns(
        int_column(t.table, "open_time", path=path, locate=loc, label=labels.get("open_time")),
        path=path,
        field=labels.get("open_time", "open_time"),
        locate=loc,
    )
    values = {c: as_float(t.table.column(c)) for c in ("open", "high", "low", "close", "volume")}
    optional = {
        "quote_volume": t.table.column("quote_volume").combine_chunks(),
        "trades": t.table.column("count").combine_chunks(),
        "taker_buy_volume": t.table.column("taker_buy_volume").combine_chunks(),
    }
    fields = {"ts": "open_time", "trades": "count", **labels}
    fields.update({k: labels.get(k, k) for k in values})
    return RawRows(
        "bars",
        ts,
        values,
        [sym],
        path,
        loc,
        optional=optional,
        fields=fields,
        notes=[f"timestamps in {unit}"],
    )


def load_aggtrades(src: Source, symbol: str | None) -> RawRows:
    """Binance aggTrades (spot 8 columns, futures 7) → trade rows."""
    lay, names = _names(src, AGG_COLUMNS, (7, 8), "a Binance aggTrades file")
    types = {
        "agg_trade_id": I64,
        "price": F64,
        "quantity": F64,
        "transact_time": I64,
        "is_buyer_maker": BOOL,
    }
    return _trades(src, symbol, lay, names, types, "agg_trade_id", "quantity", "transact_time")


def load_trades(src: Source, symbol: str | None) -> RawRows:
    """Binance trades (spot 7 columns, futures 6) → trade rows."""
    lay, names = _names(src, TRADE_COLUMNS, (6, 7), "a Binance trades file")
    types = {"id": I64, "price": F64, "qty": F64, "time": I64, "is_buyer_maker": BOOL}
    return _trades(src, symbol, lay, names, types, "id", "qty", "time")


def _trades(src, symbol, lay, names, types, id_col, qty_col, time_col) -> RawRows:
    sym = resolve_symbol(src, symbol)
    t = read_csv(
        src, skip_lines=lay.skip, header=lay.header, names=names, types=types, include=list(types)
    )
    path, loc = src.display, t.locate
    labels = dict(zip(names, t.header, strict=False)) if t.header else {}
    ts, unit = epoch_to_ns(
        int_column(t.table, time_col, path=path, locate=loc, label=labels.get(time_col)),
        path=path,
        field=labels.get(time_col, time_col),
        locate=loc,
    )
    maker = bool_column(t.table, "is_buyer_maker", path=path, locate=loc)
    side = np.where(maker, np.int8(-1), np.int8(1)).astype(np.int8)
    values = {
        "price": as_float(t.table.column("price")),
        "qty": as_float(t.table.column(qty_col)),
        "side": side,
    }
    return RawRows(
        "trades",
        ts,
        values,
        [sym],
        path,
        loc,
        optional={"trade_id": t.table.column(id_col).combine_chunks()},
        fields={
            "ts": time_col,
            "qty": qty_col,
            "side": "is_buyer_maker",
            "trade_id": id_col,
            **labels,
        },
        notes=[f"timestamps in {unit}"],
    )
