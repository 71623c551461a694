"""Canonical schemas of the store.

Conventions, everywhere in quantarena:

* ``ts`` is int64 nanoseconds since the Unix epoch, UTC. For bars it is the bar's
  **open** time; a bar covers ``[ts, ts + interval)``.
* Prices and quantities are float64. ``volume`` is in units of the base asset
  (BTC for BTC/USDT) unless the source only gives quote volume, in which case the
  loader says so in its notes.
* Trades carry ``side`` = +1 when the aggressor (taker) bought, -1 when it sold.
  (Binance's ``is_buyer_maker = true`` means the taker sold: side -1.)

Each kind of data (bars, trades, quotes, book) is a module of :mod:`quantarena.data.kinds`
holding its schema, sort/dedupe key and validator; :func:`schema_for` looks a kind up there.
The quote and book schemas live in their kind modules and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

#: the kinds of :mod:`quantarena.data.kinds`
Kind = Literal["bars", "trades", "quotes", "book"]

BAR_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
        # optional fields: null where the source does not give them
        pa.field("quote_volume", pa.float64(), nullable=True),
        pa.field("trades", pa.int64(), nullable=True),
        pa.field("taker_buy_volume", pa.float64(), nullable=True),
    ]
)

TRADE_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("qty", pa.float64(), nullable=False),
        pa.field("side", pa.int8(), nullable=False),
        pa.field("trade_id", pa.int64(), nullable=True),
    ]
)

BAR_COLUMNS: tuple[str, ...] = tuple(BAR_SCHEMA.names)
TRADE_COLUMNS: tuple[str, ...] = tuple(TRADE_SCHEMA.names)
OHLC: tuple[str, ...] = ("open", "high", "low", "close")


def schema_for(kind: Kind | str) -> pa.Schema:
    """The Arrow schema of a kind of data (``"bars"``, ``"trades"``, ``"quotes"``,
    ``"book"``); ``ValueError`` for an unknown kind."""
    from quantarena.data.kinds import get_kind

    return get_kind(kind).schema


def __getattr__(name: str) -> pa.Schema:
    if name in ("QUOTE_SCHEMA", "BOOK_SCHEMA"):
        from quantarena.data.kinds import get_kind

        return get_kind("quotes" if name == "QUOTE_SCHEMA" else "book").schema
    raise AttributeError(f"module 'quantarena.data.schema' has no attribute {name!r}")


@dataclass
class LoadedData:
    """What a loader returns: one file's rows in the canonical schema.

    ``table`` holds the rows sorted by (symbol, the kind's key) and conforming to
    :func:`schema_for` ``(kind)``. ``interval_ns`` is the detected bar interval (bars
    only; ``None`` for other kinds or when it cannot be inferred). ``notes`` are
    human-readable remarks (e.g. "file was newest-first; sorted").
    """

    kind: Kind
    table: pa.Table
    path: str
    layout: str
    interval_ns: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.table.num_rows

    @property
    def symbols(self) -> list[str]:
        import pyarrow.compute as pc

        return sorted(pc.unique(self.table.column("symbol")).to_pylist())
