"""Data kinds as modules: one module per kind of market data, found through a registry.

==========  =========================================================  ===============================
kind        rows                                                       key (per symbol)
==========  =========================================================  ===============================
``bars``    OHLCV bars, ``ts`` = bar open time                         ``ts`` (unique)
``trades``  prints: price, qty, aggressor side, trade id               ``ts, trade_id`` + rank
``quotes``  best bid/ask: bid_px, bid_qty, ask_px, ask_qty             ``ts, update_id`` + rank
``book``    L2 deltas and snapshots: side, price, new qty at a level   ``ts, update_id``, snapshot
                                                                       first, ``side, price`` + rank
==========  =========================================================  ===============================

The store, the catalog, ``quantarena data info`` and the read path look a kind up here
(:func:`get_kind`) instead of branching on its name. A new kind is one module that builds
a :class:`~quantarena.data.kinds.base.DataKind` and one line in :data:`_MODULES`.
"""

from __future__ import annotations

import importlib

from quantarena.data.kinds.base import DataKind

__all__ = ["DataKind", "KIND_NAMES", "all_kinds", "get_kind"]

#: kind name → module defining ``KIND``
_MODULES: dict[str, str] = {
    "bars": "quantarena.data.kinds.bars",
    "trades": "quantarena.data.kinds.trades",
    "quotes": "quantarena.data.kinds.quotes",
    "book": "quantarena.data.kinds.book",
}
KIND_NAMES: tuple[str, ...] = tuple(_MODULES)
_CACHE: dict[str, DataKind] = {}


def get_kind(name: str) -> DataKind:
    """The :class:`DataKind` called ``name``; ``ValueError`` (one line) for an unknown name."""
    kind = _CACHE.get(name)
    if kind is None:
        module = _MODULES.get(name)
        if module is None:
            raise ValueError(f"unknown data kind {name!r}: use one of {', '.join(KIND_NAMES)}")
        kind = importlib.import_module(module).KIND
        _CACHE[name] = kind
    return kind


def all_kinds() -> list[DataKind]:
    """Every registered kind, in :data:`KIND_NAMES` order."""
    return [get_kind(n) for n in KIND_NAMES]
