"""The ``trades`` kind: one row per print.

Schema :data:`~quantarena.data.schema.TRADE_SCHEMA`: ``ts`` (exchange trade time, int64 ns
UTC), ``price`` (quote units), ``qty`` (base units), ``side`` (+1 the aggressor bought, -1 it
sold, 0 unknown), ``trade_id`` (null where the source gives none or a non-integer id).
Rules: finite price > 0 and qty > 0, side in {-1, 0, +1}. Several trades may share a ``ts``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from quantarena.data.kinds.base import DataKind, check_positive, column_np, raise_at
from quantarena.data.schema import TRADE_SCHEMA


def validate(table: pa.Table, path: str, lines: np.ndarray | None) -> list[str]:
    """Price and qty > 0; side is -1, 0 or +1."""
    check_positive(table, "price", path=path, lines=lines)
    check_positive(table, "qty", path=path, lines=lines)
    side = column_np(table, "side", 0)
    raise_at(
        ~np.isin(side, (-1, 0, 1)),
        lambda i: f"side {int(side[i])} is not -1, 0 or +1",
        path=path,
        lines=lines,
        field_name="side",
    )
    return []


KIND = DataKind(
    name="trades",
    schema=TRADE_SCHEMA,
    key=("ts", "trade_id"),
    ranked=True,
    validate=validate,
    row_noun="trade",
    summary="trades; side +1 = aggressor bought",
)
