"""Shared pieces of the tick loaders: venue-qualified symbols and column builders.

Symbol naming rule for tick data (quotes, book, and trades from tick sources): ``VENUE:SYMBOL``
in upper case — ``BINANCE:BTCUSDT`` (spot), ``BINANCE-USDM:BTCUSDT`` (USD-M futures),
``BYBIT-LINEAR:XRPUSDT``, ``DERIBIT:BTC-PERPETUAL`` — so the same pair on two venues never
shares a dataset. The exchange's own symbol is kept after the colon as the exchange spells
it (upper-cased). ``symbol=`` (``--symbol``) replaces the whole name.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from quantarena.data.kinds import get_kind
from quantarena.data.kinds.base import finish_table
from quantarena.data.schema import LoadedData

#: Tardis exchange ids whose venue name differs from the upper-cased id
TARDIS_VENUES: dict[str, str] = {
    "binance": "BINANCE",
    "binance-futures": "BINANCE-USDM",
    "binance-delivery": "BINANCE-COINM",
    "bybit": "BYBIT",
    "bybit-spot": "BYBIT-SPOT",
}


def venue_symbol(venue: str, symbol: str) -> str:
    """``VENUE:SYMBOL`` upper-cased (see the module doc)."""
    return f"{venue.upper()}:{str(symbol).upper()}"


def floats(values: list[str] | list[float]) -> np.ndarray:
    """Numbers given as text (exchange JSON) as float64."""
    if not values:
        return np.zeros(0, dtype=np.float64)
    if isinstance(values[0], str):  # Arrow's string → double cast: exact, in C++
        return pa.array(values, pa.string()).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def ints_or_null(values: list[int | None]) -> pa.Array:
    """An int64 Arrow array with None as null."""
    return pa.array(values, pa.int64())


def loaded(
    kind: str,
    columns: dict[str, object],
    lines: np.ndarray,
    *,
    path: str,
    layout: str,
    notes: list[str],
) -> LoadedData:
    """Validated, sorted :class:`LoadedData` of one kind from columns (lists, numpy or Arrow)."""
    k = get_kind(kind)
    arrays = []
    names = []
    for f in k.schema:
        if f.name not in columns:
            continue
        v = columns[f.name]
        arrays.append(v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v, f.type))
        names.append(f.name)
    table = pa.Table.from_arrays(arrays, names=names)
    table, more = finish_table(k, table, path, lines)
    return LoadedData(kind=kind, table=table, path=path, layout=layout, notes=notes + more)  # type: ignore[arg-type]
