"""CryptoDataDownload CSVs (www.cryptodatadownload.com).

Layout: an optional first line ``Created on ...,https://...`` (or ``Timestamps are UTC
timezone,https://www.CryptoDataDownload.com``), then a header, either
``date,symbol,open,high,low,close,volume_btc,volume`` (older) or
``unix,date,symbol,open,high,low,close,Volume BTC,Volume USD[,tradecount]`` (newer). Rows are
newest first (the validator reverses them and notes it). Time comes from ``unix`` (s or ms)
when present, else from ``date`` (``2019-10-17 09-AM``, where 12-AM is midnight, or ISO).
``volume`` is the base-asset volume column (``volume_btc`` / ``Volume BTC``), ``quote_volume``
the other (``volume`` / ``Volume USD``).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from quantarena.data.errors import UnknownLayoutError
from quantarena.data.loaders.common import encode_symbols, int_column
from quantarena.data.loaders.csvread import as_float, read_csv
from quantarena.data.loaders.detect import norm_name, sniff_text
from quantarena.data.loaders.source import Source
from quantarena.data.loaders.symbols import normalise_symbol
from quantarena.data.loaders.timeparse import arrow_time_to_ns, epoch_to_ns
from quantarena.data.validate import RawRows, fmt_ts

DATE_FORMATS = ("%Y-%m-%d %I-%p", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def load_cryptodatadownload(src: Source, symbol: str | None) -> RawRows:
    """A CryptoDataDownload OHLCV file → bar rows (see the module docstring)."""
    lay = sniff_text(src)
    if not lay.header:
        raise UnknownLayoutError(
            "a CryptoDataDownload file needs a header line", path=src.display, hint="check --format"
        )
    by_norm = {norm_name(n): n for n in lay.names}

    def col(*cands: str) -> str | None:
        for c in cands:
            if c in by_norm:
                return by_norm[c]
        return None

    need = {c: col(c) for c in ("open", "high", "low", "close")}
    sym_col = col("symbol", "ticker", "pair")
    unix_col = col("unix", "unixtimestamp", "timestamp")
    date_col = col("date", "datetime", "time")
    for k, v in [*need.items(), ("symbol", sym_col)]:
        if v is None:
            raise UnknownLayoutError(
                f"no {k!r} column in the header ({', '.join(lay.names)})",
                path=src.display,
                field=k,
                hint="check --format",
            )
    if unix_col is None and date_col is None:
        raise UnknownLayoutError(
            "no 'unix' or 'date' column", path=src.display, field="date", hint="check --format"
        )
    vol_cols = [n for n in lay.names if re.fullmatch(r"volume.*", norm_name(n))]
    i_sym = lay.names.index(sym_col)
    first_sym = next((r[i_sym] for r in lay.rows if len(r) > i_sym), "")
    base_vol, quote_vol, vol_note = _volume_columns(vol_cols, first_sym)
    types: dict[str, pa.DataType] = {c: pa.float64() for c in need.values()}
    types.update({c: pa.float64() for c in vol_cols})
    types[sym_col] = pa.string()
    if date_col:
        types[date_col] = pa.string()
    include = [c for c in lay.names if c in types or c == unix_col]
    t = read_csv(src, skip_lines=lay.skip, header=True, types=types, include=include)
    path, loc = src.display, t.locate
    notes = []
    if unix_col is not None:
        raw_unix = t.table.column(unix_col)
        if pa.types.is_integer(raw_unix.type):
            ts, unit = epoch_to_ns(
                int_column(t.table, unix_col, path=path, locate=loc),
                path=path,
                field=unix_col,
                locate=loc,
            )
            notes.append(f"time from '{unix_col}' ({unit})")
        else:
            ts, note = arrow_time_to_ns(raw_unix, field=unix_col, path=path, locate=loc)
            notes.append(f"time from '{unix_col}'" + (f" ({note})" if note else ""))
    else:
        assert date_col is not None
        ts, _ = arrow_time_to_ns(
            t.table.column(date_col), field=date_col, path=path, locate=loc, formats=DATE_FORMATS
        )
    values = {k: as_float(t.table.column(v)) for k, v in need.items()}
    optional = {}
    fields = {k: v for k, v in need.items()}
    fields["ts"] = unix_col or date_col or "date"
    if base_vol is not None:
        values["volume"] = as_float(t.table.column(base_vol))
        fields["volume"] = base_vol
        if quote_vol is not None:
            optional["quote_volume"] = t.table.column(quote_vol).combine_chunks()
            fields["quote_volume"] = quote_vol
    elif quote_vol is not None:  # only a quote-volume column (vol_note says so)
        values["volume"] = as_float(t.table.column(quote_vol))
        fields["volume"] = quote_vol
    else:
        values["volume"] = np.zeros(t.table.num_rows)
        notes.append("no volume column; volume set to 0")
    if vol_note:
        notes.append(vol_note)
    if symbol:
        names, codes = [normalise_symbol(symbol)], None
        notes.append(f"symbol set to {names[0]} (--symbol)")
    else:
        names, codes = encode_symbols(t.table.column(sym_col), path=path, locate=loc, label=sym_col)
    raw = RawRows(
        "bars",
        ts,
        values,
        names,
        path,
        loc,
        codes=codes,
        optional=optional,
        fields=fields,
        notes=notes,
    )
    return _newest_first_to_sorted(raw)


def _newest_first_to_sorted(raw: RawRows) -> RawRows:
    """CryptoDataDownload files are newest-first, and some carry a few rows out of place (the
    Coinbase hourly file holds five hours interleaved on 2017-11-12). When the file runs
    newest-first overall (first time after last), sort it by time and say so; an oldest-first
    file is left to the validator's strict order check."""
    ts = raw.ts
    if ts.size < 2 or ts[0] <= ts[-1]:
        return raw
    d = np.diff(ts)
    out_of_place = int(np.count_nonzero(d > 0))
    keys = (ts,) if raw.codes is None else (ts, raw.codes)
    order = np.lexsort(keys)
    note = "file was newest-first; sorted"
    if out_of_place:
        j = int(np.argmax(d > 0))
        note += (
            f" ({out_of_place} row{'s' if out_of_place != 1 else ''} out of place, first at row "
            f"{raw.locate(j + 1)}: {fmt_ts(ts[j + 1])} after {fmt_ts(ts[j])})"
        )
    out = raw.take(order)
    out.notes.append(note)
    return out


def _volume_columns(cols: list[str], symbol: str) -> tuple[str | None, str | None, str | None]:
    """Pick (base, quote, note) among the volume columns, e.g. ``volume_btc`` (base) and
    ``volume`` (quote, USD) for BTCUSD."""
    if not cols:
        return None, None, None
    sym = normalise_symbol(symbol)
    base_asset = symbol.split("/")[0].upper() if "/" in symbol else ""
    suffix = {c: norm_name(c)[len("volume") :].upper() for c in cols}
    base = None
    for c in cols:
        s = suffix[c]
        if s and ((base_asset and s == base_asset) or (not base_asset and sym.startswith(s))):
            base = c
            break
    others = [c for c in cols if c != base]
    if base is None:
        if len(cols) == 1:
            return None, cols[0], "only a quote-volume column: volume is in quote units"
        return cols[0], cols[1], f"took '{cols[0]}' as base volume, '{cols[1]}' as quote volume"
    return base, (others[0] if others else None), None
