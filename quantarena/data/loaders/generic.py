"""Generic OHLCV tables: CSV (one symbol, or long format with a symbol column), Parquet,
Feather.

Columns are found by name, case- and separator-insensitively: time = ts / timestamp / time /
date / datetime / open_time (or, in Parquet/Feather, a timestamp column such as a saved pandas
DatetimeIndex); open/high/low/close (or o/h/l/c); volume (or vol/v); optional quote_volume,
trades, taker_buy_volume; symbol/ticker/pair for long format. ``mapping`` ({canonical:
source column}) overrides the guesses. Times may be ISO strings (naive = UTC), epoch numbers
(unit by magnitude) or Arrow timestamps with any zone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq

from quantarena.data.errors import DataError, EmptyFileError, ParseError, UnknownLayoutError
from quantarena.data.loaders.common import encode_symbols, resolve_symbol
from quantarena.data.loaders.csvread import as_float, first_unconvertible, read_csv
from quantarena.data.loaders.detect import TIME_NAMES, norm_name, sniff_text
from quantarena.data.loaders.source import RowLocator, Source
from quantarena.data.loaders.symbols import normalise_symbol
from quantarena.data.loaders.timeparse import arrow_time_to_ns
from quantarena.data.validate import RawRows

CANDIDATES: dict[str, tuple[str, ...]] = {
    "ts": TIME_NAMES,
    "open": ("open", "o", "openprice", "op"),
    "high": ("high", "h", "highprice", "hi"),
    "low": ("low", "l", "lowprice", "lo"),
    "close": ("close", "c", "closeprice", "last"),
    "volume": ("volume", "vol", "v", "basevolume", "volumebase", "qty", "amount"),
    "quote_volume": ("quotevolume", "quoteassetvolume", "volumequote", "quotevol"),
    "trades": ("trades", "count", "tradecount", "numberoftrades", "ntrades", "numtrades"),
    "taker_buy_volume": ("takerbuyvolume", "takerbuybaseassetvolume", "takerbuybasevolume"),
    "symbol": ("symbol", "ticker", "pair", "instrument"),
}
REQUIRED = ("ts", "open", "high", "low", "close")
MAPPING_KEYS = tuple(CANDIDATES)
_KEY_ALIASES = {"time": "ts", "timestamp": "ts", "date": "ts", "datetime": "ts", "vol": "volume"}


def normalise_mapping(mapping: dict[str, str] | None, path: str) -> dict[str, str]:
    """Check a ``{canonical: source_column}`` mapping; ``time``/``timestamp``/``date`` mean ``ts``."""
    out: dict[str, str] = {}
    for k, v in (mapping or {}).items():
        key = _KEY_ALIASES.get(k.strip().lower(), k.strip().lower())
        if key not in MAPPING_KEYS:
            raise DataError(
                f"mapping key {k!r} is not a canonical column",
                path=path,
                field=k,
                hint=f"use keys among {', '.join(MAPPING_KEYS)}",
            )
        out[key] = v
    return out


def resolve_columns(
    names: list[str],
    mapping: dict[str, str],
    path: str,
    time_types: Callable[[str], bool] | None = None,
) -> dict[str, str]:
    """Map canonical names to the file's columns (``mapping`` first, then by name).
    Raises :class:`UnknownLayoutError` naming a missing required column."""
    by_norm: dict[str, str] = {}
    for n in names:
        by_norm.setdefault(norm_name(n), n)
    exact = set(names)
    found: dict[str, str] = {}
    for key, src_col in mapping.items():
        if src_col in exact:
            found[key] = src_col
        elif norm_name(src_col) in by_norm:
            found[key] = by_norm[norm_name(src_col)]
        else:
            raise UnknownLayoutError(
                f"mapping names column {src_col!r}, which is not in the file "
                f"(columns: {', '.join(names)})",
                path=path,
                field=key,
                hint="fix the mapping",
            )
    used = set(found.values())
    for key, cands in CANDIDATES.items():
        if key in found:
            continue
        for c in cands:
            col = by_norm.get(norm_name(c))
            if col is not None and col not in used:
                found[key] = col
                used.add(col)
                break
    if "ts" not in found and time_types is not None:
        for n in names:
            if n not in used and time_types(n):
                found["ts"] = n
                break
    for key in REQUIRED:
        if key not in found:
            word = "time" if key == "ts" else key
            raise UnknownLayoutError(
                f"no {word} column found (columns: {', '.join(names)})",
                path=path,
                field=key,
                hint=f"pass a mapping, e.g. {{'{key}': 'your_column'}} (--map {key}=your_column)",
            )
    return found


def load_csv(src: Source, symbol: str | None, mapping: dict[str, str] | None) -> RawRows:
    """A generic OHLCV CSV (with a header; long format when it has a symbol column)."""
    lay = sniff_text(src)
    if not lay.header:
        raise UnknownLayoutError(
            "a generic CSV needs a header line naming its columns",
            path=src.display,
            hint="add a header (e.g. timestamp,open,high,low,close,volume) or pick --format",
        )
    m = normalise_mapping(mapping, src.display)
    cols = resolve_columns(lay.names, m, src.display)
    types: dict[str, pa.DataType] = {}
    for key, c in cols.items():
        if key in ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume"):
            types[c] = pa.float64()
        elif key == "trades":
            types[c] = pa.int64()
        elif key in ("symbol", "ts"):
            types[c] = pa.string()  # times parsed by timeparse, which names a bad row
    t = read_csv(src, skip_lines=lay.skip, header=True, types=types, include=list(cols.values()))
    extra = [n for n in lay.names if n not in cols.values()]
    return _rows(t.table, cols, src, symbol, t.locate, extra)


def load_arrow_file(src: Source, symbol: str | None, mapping: dict[str, str] | None) -> RawRows:
    """A Parquet or Feather (Arrow IPC) file of OHLCV bars."""
    try:
        if src.binary == "parquet":
            table = pq.read_table(pa.BufferReader(src.buffer))
        else:
            table = feather.read_table(pa.BufferReader(src.buffer))
        table.validate(full=True)  # damaged offsets or lengths fail here, not later
    except (pa.ArrowException, OSError, MemoryError) as exc:  # a damaged file
        raise ParseError(
            f"cannot read as {src.binary}: {' '.join(str(exc).split())}",
            path=src.display,
            hint="the file may be cut off; download it again",
        ) from None
    if table.num_rows == 0:
        raise EmptyFileError("no data rows", path=src.display, hint="check the file is complete")
    names = table.column_names
    m = normalise_mapping(mapping, src.display)

    def is_time(n: str) -> bool:
        t = table.schema.field(n).type
        return pa.types.is_timestamp(t) or pa.types.is_date(t)

    cols = resolve_columns(names, m, src.display, time_types=is_time)
    extra = [n for n in names if n not in cols.values() and not n.startswith("__index_level_")]
    return _rows(table, cols, src, symbol, RowLocator(src), extra)


def _rows(
    table: pa.Table,
    cols: dict[str, str],
    src: Source,
    symbol: str | None,
    locate: Callable[[int], int],
    extra: list[str],
) -> RawRows:
    path = src.display
    notes: list[str] = []
    ts, tnote = arrow_time_to_ns(
        table.column(cols["ts"]), field=cols["ts"], path=path, locate=locate
    )
    if tnote:
        notes.append(tnote)
    values = {
        k: _float(table.column(cols[k]), cols[k], path, locate)
        for k in ("open", "high", "low", "close")
    }
    if "volume" in cols:
        values["volume"] = _float(table.column(cols["volume"]), cols["volume"], path, locate)
    else:
        values["volume"] = np.zeros(table.num_rows)
        notes.append("no volume column; volume set to 0")
    optional = {}
    for k in ("quote_volume", "trades", "taker_buy_volume"):
        if k in cols:
            typ = pa.int64() if k == "trades" else pa.float64()
            optional[k] = _cast(table.column(cols[k]), typ, cols[k], path, locate)
    if extra:
        notes.append(f"ignored columns: {', '.join(extra)}")
    codes = None
    if "symbol" in cols:
        names, codes = encode_symbols(
            table.column(cols["symbol"]), path=path, locate=locate, label=cols["symbol"]
        )
        if symbol:
            want = normalise_symbol(symbol)
            if len(names) == 1:
                names = [want]
                notes.append(f"symbol set to {want} (--symbol)")
            elif want in names:
                idx = np.flatnonzero(codes == names.index(want))
                raw = RawRows(
                    "bars",
                    ts,
                    values,
                    [want],
                    path,
                    locate,
                    optional=optional,
                    fields=dict(cols),
                    notes=[*notes, f"kept symbol {want} only (--symbol)"],
                )
                return raw.take(idx)
            else:
                raise DataError(
                    f"symbol {want} is not in the file (it holds {', '.join(names[:10])})",
                    path=path,
                    field="symbol",
                    hint="pick one of those, or drop --symbol",
                )
    else:
        names = [resolve_symbol(src, symbol)]
    fields = {k: v for k, v in cols.items()}
    return RawRows(
        "bars",
        ts,
        values,
        names,
        path,
        locate,
        codes=codes,
        optional=optional,
        fields=fields,
        notes=notes,
    )


def _cast(col, typ: pa.DataType, name: str, path: str, locate) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.type == typ:
        return col
    try:
        return pc.cast(col, typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        i = first_unconvertible(col, typ)
        if i is not None:
            raise ParseError(
                f"cannot read {col[i].as_py()!r} as a number",
                path=path,
                row=locate(i),
                field=name,
                hint="fix or drop the row",
            ) from None
        return pc.cast(pc.if_else(pc.is_in(col, pa.array(["", "NaN", "nan"])), None, col), typ)
    if pa.types.is_floating(col.type) and pa.types.is_integer(typ):
        return pc.cast(col, typ, safe=False)
    raise ParseError(
        f"column type {col.type} is not numeric", path=path, field=name, hint="pass a mapping"
    )


def _float(col, name: str, path: str, locate) -> np.ndarray:
    return as_float(_cast(col, pa.float64(), name, path, locate))
