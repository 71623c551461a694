"""File loaders: turn an exchange or generic file into canonical rows (:class:`LoadedData`).

    load_file(path, format="auto", *, symbol=None, mapping=None, fill="none") -> LoadedData

* ``format``: "auto" (detect from content, never from the file name) or one of ``FORMATS``:
  "binance-klines", "binance-aggtrades", "binance-trades", "cryptodatadownload",
  "csv" (generic OHLCV with optional column ``mapping``), "long-csv" (generic with a symbol
  column), "parquet", "feather". A ``.zip`` holding one CSV, or a ``.gz``, is opened first.
* ``symbol``: the symbol to record; when None it comes from the content (a symbol column)
  or from the file name (``BTCUSDT-1m-2024-01.zip`` → BTCUSDT), else an error asks for ``--symbol``.
* ``fill``: "none" (gaps reported in ``notes``, never filled) or "ffill" (missing bars inserted
  with OHLC = previous close and volume 0).
* Raises subclasses of :class:`quantarena.data.errors.DataError` on bad input; rows are
  validated by :mod:`quantarena.data.validate`.

Tick data (``TICK_FORMATS``: "binance-ws" websocket captures, "bybit-orderbook", the Tardis
CSVs "tardis-book-snapshot" / "tardis-incremental-book" / "tardis-quotes" / "tardis-trades",
and the generic "book-csv" / "quotes-csv" / "trades-csv") is read by its own modules and
validated by its kind (:mod:`quantarena.data.kinds`). A capture holds several kinds at once::

    load_file_kinds(path, format="auto", *, symbol=None) -> list[LoadedData]   # book, quotes, trades
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from quantarena.data.errors import DataError, ParseError, UnknownLayoutError
from quantarena.data.loaders.binance import load_aggtrades, load_klines, load_trades
from quantarena.data.loaders.cryptodatadownload import load_cryptodatadownload
from quantarena.data.loaders.detect import FORMATS, TICK_FORMATS, detect_format, detect_source
from quantarena.data.loaders.generic import load_arrow_file, load_csv
from quantarena.data.loaders.source import Source, open_source
from quantarena.data.loaders.symbols import normalise_symbol, symbol_from_filename
from quantarena.data.schema import LoadedData
from quantarena.data.validate import FILL_POLICIES, RawRows, finish

__all__ = [
    "FORMATS",
    "TICK_FORMATS",
    "detect_format",
    "load_file",
    "load_file_kinds",
    "normalise_symbol",
    "symbol_from_filename",
]

_ALIASES = {
    "auto": "auto",
    "klines": "binance-klines",
    "binance": "binance-klines",
    "aggtrades": "binance-aggtrades",
    "trades": "binance-trades",
    "cdd": "cryptodatadownload",
    "generic": "csv",
    "long": "long-csv",
    "arrow": "feather",
    "ipc": "feather",
    "capture": "binance-ws",
    "bybit": "bybit-orderbook",
}


def load_file(
    path: str | Path,
    format: str = "auto",
    *,
    symbol: str | None = None,
    mapping: dict[str, str] | None = None,
    fill: str = "none",
) -> LoadedData:
    """Load one file into canonical, validated rows.

    Returns :class:`LoadedData` whose ``table`` is in ``BAR_SCHEMA``/``TRADE_SCHEMA`` (ts int64
    ns UTC, bar ts = open time), sorted by (symbol, ts); ``interval_ns`` is the most common bar
    step; ``notes`` say what was done (newest-first sorted, duplicates dropped, gaps, units).
    """
    fmt = _ALIASES.get(format.strip().lower(), format.strip().lower())
    if fmt != "auto" and fmt not in FORMATS:
        raise UnknownLayoutError(
            f"unknown format {format!r}", path=path, hint=f"use auto or one of {', '.join(FORMATS)}"
        )
    if fill not in FILL_POLICIES:
        raise ValueError(f"unknown fill policy {fill!r}: use one of {', '.join(FILL_POLICIES)}")
    src = _open(path)
    if fmt == "auto":
        fmt = detect_source(src, mapping)
    if fmt in TICK_FORMATS:
        items = _load_ticks(src, fmt, symbol)
        if len(items) != 1:
            kinds = ", ".join(i.kind for i in items)
            raise DataError(
                f"holds {len(items)} kinds of data ({kinds})",
                path=path,
                hint="read it with load_file_kinds, or ingest it into a store",
            )
        return items[0]
    raw = _parse(src, fmt, symbol, mapping)
    table, interval, notes = finish(raw, fill)
    return LoadedData(
        kind=raw.kind,
        table=table,
        path=str(path),
        layout=fmt,
        interval_ns=interval,
        notes=notes,
    )


def load_file_kinds(
    path: str | Path,
    format: str = "auto",
    *,
    symbol: str | None = None,
    mapping: dict[str, str] | None = None,
    fill: str = "none",
) -> list[LoadedData]:
    """Like :func:`load_file`, but a file holding several kinds (a Binance websocket capture:
    book, quotes and trades) gives one :class:`LoadedData` per kind, in the order book,
    quotes, trades. Other files give a one-item list."""
    fmt = _ALIASES.get(format.strip().lower(), format.strip().lower())
    if fmt == "auto" or fmt in TICK_FORMATS:
        src = _open(path)
        if fmt == "auto":
            fmt = detect_source(src, mapping)
        if fmt in TICK_FORMATS:
            return _load_ticks(src, fmt, symbol)
    return [load_file(path, fmt, symbol=symbol, mapping=mapping, fill=fill)]


def _open(path: str | Path) -> Source:
    """:func:`open_source`, with a damaged or truncated gzip as a one-line :class:`ParseError`."""
    try:
        return open_source(path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        why = "truncated" if isinstance(exc, EOFError) else "damaged"
        raise ParseError(
            f"{why} gzip file ({exc})".replace("\n", " "),
            path=path,
            hint="download or capture it again; nothing was read",
        ) from None


def _load_ticks(src: Source, fmt: str, symbol: str | None) -> list[LoadedData]:
    if src.binary is not None:
        raise UnknownLayoutError(
            f"is a {src.binary} file, not {fmt}",
            path=src.display,
            hint=f"use --format {src.binary}",
        )
    if fmt == "binance-ws":
        from quantarena.data.loaders.binance_ws import load_binance_ws

        return load_binance_ws(src, symbol)
    if fmt == "bybit-orderbook":
        from quantarena.data.loaders.bybit import load_bybit_orderbook

        return load_bybit_orderbook(src, symbol)
    if fmt.startswith("tardis-"):
        from quantarena.data.loaders.tardis import load_tardis

        return load_tardis(src, fmt, symbol)
    from quantarena.data.loaders.generic_ticks import load_generic_ticks

    return load_generic_ticks(src, fmt, symbol)


def _parse(src: Source, fmt: str, symbol: str | None, mapping: dict[str, str] | None) -> RawRows:
    if fmt in ("parquet", "feather"):
        if src.binary is None:
            raise UnknownLayoutError(
                f"not a {fmt} file (no {fmt} magic bytes)", path=src.display, hint="check --format"
            )
        return load_arrow_file(src, symbol, mapping)
    if src.binary is not None:
        raise UnknownLayoutError(
            f"is a {src.binary} file, not {fmt}",
            path=src.display,
            hint=f"use --format {src.binary}",
        )
    if fmt == "binance-klines":
        return load_klines(src, symbol)
    if fmt == "binance-aggtrades":
        return load_aggtrades(src, symbol)
    if fmt == "binance-trades":
        return load_trades(src, symbol)
    if fmt == "cryptodatadownload":
        return load_cryptodatadownload(src, symbol)
    return load_csv(src, symbol, mapping)
