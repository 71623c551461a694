"""The ``bars`` kind: OHLCV bars, one per (symbol, interval, open time).

Schema :data:`~quantarena.data.schema.BAR_SCHEMA`; ``ts`` is the bar's open time (int64 ns
UTC). Rules (:func:`quantarena.data.validate.check_values`): finite prices > 0,
``low <= high``, open and close inside ``[low, high]``, volume >= 0. Datasets are split by
bar interval; two bars of a symbol and interval never share a ``ts``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from quantarena.data.kinds.base import DataKind, column_np
from quantarena.data.schema import BAR_SCHEMA, OHLC


def validate(table: pa.Table, path: str, lines: np.ndarray | None) -> list[str]:
    """The bar value rules on a table (one symbol or many)."""
    from quantarena.data.validate import RawRows, check_values

    if table.num_rows == 0:
        return []
    raw = RawRows(
        "bars",
        column_np(table, "ts"),
        {c: column_np(table, c, np.nan) for c in (*OHLC, "volume")},
        ["?"],
        path,
        (lambda i: int(lines[i])) if lines is not None else (lambda i: i + 1),
        optional={
            c: table.column(c).combine_chunks()
            for c in ("quote_volume", "trades", "taker_buy_volume")
        },
    )
    check_values(raw)
    return []


KIND = DataKind(
    name="bars",
    schema=BAR_SCHEMA,
    key=("ts",),
    ranked=False,
    validate=validate,
    row_noun="bar",
    has_interval=True,
    summary="OHLCV bars; ts = bar open time",
)
