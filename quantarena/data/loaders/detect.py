"""Telling a file's layout from its content (never from its name).

Binary files are told by magic bytes (parquet ``PAR1``, Arrow/Feather ``ARROW1``/``FEA1``;
a zip or gzip is opened and its content sniffed). Text files by their first lines: comment
lines (``#``, ``Created on ...,https://...``), a header or none, the column count, which
columns hold integers or booleans, and for Binance dumps without a header the relations
between columns (aggTrades: ``first_trade_id <= last_trade_id``; trades:
``quote_qty ≈ price * qty``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from quantarena.data.errors import EmptyFileError, UnknownLayoutError
from quantarena.data.loaders.csvread import split_line
from quantarena.data.loaders.source import Source, open_source

FORMATS: tuple[str, ...] = (
    "binance-klines",
    "binance-aggtrades",
    "binance-trades",
    "cryptodatadownload",
    "csv",
    "long-csv",
    "parquet",
    "feather",
)
#: layouts of tick data (quotes, L2 book, trades from tick sources); a file of one of these
#: may hold several kinds (see :func:`quantarena.data.loaders.load_file_kinds`)
TICK_FORMATS: tuple[str, ...] = (
    "binance-ws",
    "bybit-orderbook",
    "tardis-book-snapshot",
    "tardis-incremental-book",
    "tardis-quotes",
    "tardis-trades",
    "book-csv",
    "quotes-csv",
    "trades-csv",
)
FORMATS = FORMATS + TICK_FORMATS

TIME_NAMES = (
    "ts",
    "timestamp",
    "time",
    "date",
    "datetime",
    "open_time",
    "opentime",
    "date_time",
    "time_utc",
    "timestamp_utc",
    "unix",
)
SYMBOL_NAMES = ("symbol", "ticker", "pair")
_INT = re.compile(r"^[+-]?\d+$")
_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_BOOL = {"true", "false"}


def norm_name(name: str) -> str:
    """Column name for matching: lower case, separators removed (``Open Time`` → ``opentime``)."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@dataclass
class TextLayout:
    """What sniffing found in a text file: ``skip`` comment lines before the header or the
    data, whether a ``header`` line follows, its ``names``, and the first data ``rows``."""

    skip: int
    header: bool
    names: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    @property
    def ncols(self) -> int:
        return len(self.names) if self.header else (len(self.rows[0]) if self.rows else 0)


def is_number(text: str) -> bool:
    return bool(_NUM.match(text.strip()))


def _is_comment(line: str) -> bool:
    s = line.strip()
    low = s.lower()
    return (
        s.startswith("#")
        or "http://" in low
        or "https://" in low
        or "cryptodatadownload" in low
        or low.startswith("created on")
    )


def sniff_text(src: Source) -> TextLayout:
    """Find comment lines, the header (a first line with no number in it) and sample rows."""
    lines = src.head_lines(40)
    if any("\x00" in ln for ln in lines):
        raise UnknownLayoutError(
            "binary content that is not Parquet, Feather, zip or gzip",
            path=src.display,
            hint=f"pick a data file; text layouts: {', '.join(FORMATS)}",
        )
    skip = 0
    comments: list[str] = []
    while skip < len(lines) and (not lines[skip].strip() or _is_comment(lines[skip])):
        if lines[skip].strip():
            comments.append(lines[skip])
        skip += 1
    body = [ln for ln in lines[skip:] if ln.strip()]
    if not body:
        raise EmptyFileError("no data rows", path=src.display, hint="check the file is complete")
    first = split_line(body[0])
    header = not any(is_number(f) for f in first)
    if header:
        rows = [split_line(ln) for ln in body[1:20]]
        return TextLayout(skip, True, first, rows, comments)
    return TextLayout(skip, False, [], [split_line(ln) for ln in body[:20]], comments)


def detect_format(path: str | Path) -> str:
    """The layout of the file at ``path`` (one of :data:`FORMATS`), from its content.

    Raises :class:`UnknownLayoutError` (listing the formats to pick with ``--format``) when
    no layout fits.
    """
    return detect_source(open_source(path))


def detect_source(src: Source, mapping: dict[str, str] | None = None) -> str:
    """:func:`detect_format` on an opened file; a ``mapping`` lets a header of unusual names
    count as a generic CSV."""
    if src.binary is not None:
        return src.binary
    tick = detect_tick_layout(src.head_lines(10))
    if tick is not None:
        return tick
    lay = sniff_text(src)
    fmt = _text_format(lay, mapping)
    if fmt is None:
        raise unknown_layout(src.display, lay)
    return fmt


def unknown_layout(path: str, lay: TextLayout | None = None) -> UnknownLayoutError:
    what = ""
    if lay is not None:
        names = [n for n in lay.names if n.isprintable() and n][:8]
        if lay.header:
            what = f" (header: {', '.join(names)})" if names else " (no recognisable header)"
        else:
            what = f" ({lay.ncols} columns, no header)"
    return UnknownLayoutError(
        f"unknown layout{what}",
        path=path,
        hint=f"pick one with --format ({', '.join(FORMATS)}), or name the columns with "
        "--map field=column, e.g. --map ts=your_time_column (mapping= in Python)",
    )


def _text_format(lay: TextLayout, mapping: dict[str, str] | None) -> str | None:
    if lay.header:
        names = {norm_name(n) for n in lay.names}
        has_symbol = bool(names & set(SYMBOL_NAMES))
        if lay.comments and any("cryptodatadownload" in c.lower() for c in lay.comments):
            return "cryptodatadownload"
        if (
            has_symbol
            and ("unix" in names or any(re.fullmatch(r"volume[a-z]+", n) for n in names))
            and "date" in names
        ):
            return "cryptodatadownload"
        if {"opentime", "closetime"} <= names or {"opentime", "takerbuyvolume"} <= names:
            return "binance-klines"
        if "aggtradeid" in names or {"firsttradeid", "lasttradeid"} <= names:
            return "binance-aggtrades"
        if {"quoteqty", "isbuyermaker"} <= names or {"id", "price", "qty", "time"} <= names:
            return "binance-trades"
        mapped = {norm_name(v) for v in (mapping or {}).values()}
        has_time = bool(names & {norm_name(t) for t in TIME_NAMES}) or bool(
            mapping and ("ts" in mapping or "time" in mapping)
        )
        has_close = bool(names & {"close", "c", "closeprice", "adjclose"}) or bool(
            mapping and "close" in mapping
        )
        if has_time and has_close:
            if has_symbol or (
                mapping and "symbol" in mapping and norm_name(mapping["symbol"]) in names
            ):
                return "long-csv"
            return "csv"
        if mapping and mapped and mapped <= names:
            return "csv"
        return None
    return _headerless_format(lay.rows)


def _headerless_format(rows: list[list[str]]) -> str | None:
    if not rows:
        return None
    n = len(rows[0])
    rows = [r for r in rows if len(r) == n]

    def col_all(i: int, pred) -> bool:
        return _mostly(pred(r[i]) for r in rows)

    def is_int(s: str) -> bool:
        return bool(_INT.match(s))

    def is_bool(s: str) -> bool:
        return s.strip().lower() in _BOOL

    numeric = [col_all(i, is_number) for i in range(n)]
    if n in (12, 11) and all(numeric) and col_all(0, is_int) and col_all(6, is_int):
        return "binance-klines"
    if n == 8 and col_all(6, is_bool) and col_all(7, is_bool) and _agg_ids(rows):
        return "binance-aggtrades"
    if n == 7 and col_all(5, is_bool) and col_all(6, is_bool) and _quote_matches(rows):
        return "binance-trades"
    if n == 7 and col_all(6, is_bool) and col_all(5, is_int) and _agg_ids(rows):
        return "binance-aggtrades"
    if n == 6 and col_all(5, is_bool) and col_all(4, is_int) and _quote_matches(rows):
        return "binance-trades"
    return None


def _agg_ids(rows: list[list[str]]) -> bool:
    """aggTrades: id, price, qty, first_trade_id, last_trade_id, time — ids are integers with
    first <= last."""
    try:
        return _mostly(
            bool(_INT.match(r[0]) and _INT.match(r[3]) and _INT.match(r[4]))
            and int(r[3]) <= int(r[4])
            for r in rows
        )
    except (ValueError, IndexError):
        return False


def _quote_matches(rows: list[list[str]]) -> bool:
    """trades: id, price, qty, quote_qty, time — quote_qty ≈ price * qty."""

    def ok(r: list[str]) -> bool:
        try:
            p, q, qq = float(r[1]), float(r[2]), float(r[3])
        except (ValueError, IndexError):
            return False
        if not _INT.match(r[0]) or not _INT.match(r[4]):
            return False
        return abs(p * q - qq) <= 1e-3 * max(abs(qq), 1e-12) + 1e-8

    return _mostly(ok(r) for r in rows)


def _mostly(flags) -> bool:
    """True when the sampled rows agree, but for one bad row in three or more (or 20% of
    them): one bad row must not hide a layout, the loader then reports that row precisely."""
    flags = list(flags)
    bad = len(flags) - sum(flags)
    if len(flags) < 3:
        return bool(flags) and bad == 0
    return bad <= max(1, int(0.2 * len(flags)))


_TARDIS_BASE = {"exchange", "symbol", "timestamp", "localtimestamp"}


def detect_tick_layout(lines: list[str]) -> str | None:
    """The tick layout (one of :data:`TICK_FORMATS`) of a text file's first lines, or None.

    Binance captures: ``<integer> {JSON`` lines with Binance stream fields. Bybit history:
    JSON lines with ``"topic":"orderbook.``. Tardis CSVs: a header starting
    ``exchange,symbol,timestamp,local_timestamp`` and the columns of one data type. Generic
    long CSVs: a header holding the kind's canonical columns (book: ts, side, price, qty,
    is_snapshot; quotes: ts, bid_px, bid_qty, ask_px, ask_qty; trades: ts, price, qty, side).
    """
    from quantarena.data.loaders.binance_ws import looks_like_capture

    body = [ln for ln in lines if ln.strip()]
    if not body:
        return None
    first = body[0].strip()
    if looks_like_capture(body):
        return "binance-ws"
    if first.startswith("{"):
        compact = first.replace(" ", "")
        if '"topic":"orderbook.' in compact:
            return "bybit-orderbook"
        return None
    raw_names = [n.strip().strip('"').lower() for n in split_line(first)]
    names = {norm_name(n) for n in raw_names}
    exact = set(raw_names)
    if _TARDIS_BASE <= names:
        if "asks[0].price" in exact:
            return "tardis-book-snapshot"
        if {"is_snapshot", "side", "price", "amount"} <= exact:
            return "tardis-incremental-book"
        if {"ask_amount", "ask_price", "bid_price", "bid_amount"} <= exact:
            return "tardis-quotes"
        if {"id", "side", "price", "amount"} <= exact:
            return "tardis-trades"
        return None
    if {"ts", "side", "price", "qty", "is_snapshot"} <= exact:
        return "book-csv"
    if {"ts", "bid_px", "bid_qty", "ask_px", "ask_qty"} <= exact:
        return "quotes-csv"
    if {"ts", "price", "qty", "side"} <= exact and "close" not in exact:
        return "trades-csv"
    return None
