"""quantarena.data: data kinds (bars, trades, quotes, L2 book), loaders, the Parquet store,
reading back, book rebuilding, resampling, trades → bars and synthetic markets.

Importing this package is cheap: the names below load their module on first use.

>>> from quantarena.data import Store, load_bars
>>> Store("store").ingest("data/sample")                    # doctest: +SKIP
>>> panel = load_bars("store", ["ETHBTC", "LTCBTC"], interval="1h")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # schema and errors
    "BAR_SCHEMA": "quantarena.data.schema",
    "TRADE_SCHEMA": "quantarena.data.schema",
    "LoadedData": "quantarena.data.schema",
    "BarPanel": "quantarena.data.panel",
    "DataError": "quantarena.data.errors",
    "ConflictError": "quantarena.data.errors",
    "StoreError": "quantarena.data.errors",
    "interval_ns": "quantarena.data.intervals",
    "interval_str": "quantarena.data.intervals",
    # loading files
    "load_file": "quantarena.data.loaders",
    # the store
    "Store": "quantarena.data.store",
    "IngestReport": "quantarena.data.store",
    "FileReport": "quantarena.data.store",
    "MissingDataError": "quantarena.data.store",
    # reading back
    "load_bars": "quantarena.data.read",
    "load_trades": "quantarena.data.read",
    "TradeArrays": "quantarena.data.read",
    "load_quotes": "quantarena.data.read",
    "load_book": "quantarena.data.read",
    "QuoteArrays": "quantarena.data.read",
    "BookArrays": "quantarena.data.read",
    "book_levels": "quantarena.data.orderbook",
    "BookLevels": "quantarena.data.orderbook",
    "get_kind": "quantarena.data.kinds",
    "timestamp_ns": "quantarena.data.read",
    # transforms
    "resample_bars": "quantarena.data.resample",
    "resample_table": "quantarena.data.resample",
    "resample_frame": "quantarena.data.resample",
    "time_bars": "quantarena.data.trades_to_bars",
    "volume_bars": "quantarena.data.trades_to_bars",
    "dollar_bars": "quantarena.data.trades_to_bars",
    # synthetic markets
    "simulate_market": "quantarena.data.synthetic",
    "synthetic_bars": "quantarena.data.synthetic",
    "synthetic_panel": "quantarena.data.synthetic",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quantarena.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
