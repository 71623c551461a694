"""The ``quotes`` kind: best bid and ask (top of book) over time.

Schema :data:`QUOTE_SCHEMA`:

* ``ts`` int64 ns UTC — exchange time where the source gives one, else the receive time
  (Binance spot ``bookTicker`` carries no exchange time);
* ``bid_px``, ``ask_px`` float64 (quote units), ``bid_qty``, ``ask_qty`` float64 (base units,
  or contracts where the venue quotes in contracts);
* ``update_id`` int64, nullable — the book update id the quote reflects (Binance ``u``);
* ``recv_ts`` int64 ns, nullable — when the row was received locally.

Rules: finite prices > 0, quantities >= 0, update ids never decrease within a symbol, and
no crossed quote (``bid_px > ask_px`` is refused, naming the row). Locked quotes
(``bid_px == ask_px``) are counted in the notes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from quantarena.data.kinds.base import DataKind, check_positive, column_np, num, raise_at

QUOTE_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("bid_px", pa.float64(), nullable=False),
        pa.field("bid_qty", pa.float64(), nullable=False),
        pa.field("ask_px", pa.float64(), nullable=False),
        pa.field("ask_qty", pa.float64(), nullable=False),
        pa.field("update_id", pa.int64(), nullable=True),
        pa.field("recv_ts", pa.int64(), nullable=True),
    ]
)


def check_update_ids(
    table: pa.Table, path: str, lines: np.ndarray | None, name: str = "update_id"
) -> None:
    """Update ids (where given) never decrease in time order (one symbol, sorted by ts)."""
    col = table.column(name)
    if col.null_count == len(col):
        return
    uid = column_np(table, name, -1)
    idx = np.flatnonzero(uid >= 0)
    u = uid[idx]
    back = np.flatnonzero(u[1:] < u[:-1])
    if back.size:
        j = int(back[0])
        prev, cur = int(idx[j]), int(idx[j + 1])
        where = f" (row {int(lines[prev])})" if lines is not None else ""
        raise_at(
            np.arange(uid.size) == cur,
            lambda i: (
                f"update id {int(uid[i])} comes after {int(uid[prev])}{where}: "
                "update ids go backwards in time"
            ),
            path=path,
            lines=lines,
            field_name=name,
            hint="the source mixes streams or clocks; fix the file, then ingest again",
        )


def validate(table: pa.Table, path: str, lines: np.ndarray | None) -> list[str]:
    """Prices > 0, quantities >= 0, not crossed, monotone update ids (one symbol)."""
    for c in ("bid_px", "ask_px"):
        check_positive(table, c, path=path, lines=lines)
    for c in ("bid_qty", "ask_qty"):
        check_positive(table, c, path=path, lines=lines, allow_zero=True)
    bid, ask = column_np(table, "bid_px"), column_np(table, "ask_px")
    raise_at(
        bid > ask,
        lambda i: f"crossed quote: bid_px {num(bid[i])} > ask_px {num(ask[i])}",
        path=path,
        lines=lines,
        field_name="bid_px",
    )
    check_update_ids(table, path, lines)
    locked = int(np.count_nonzero(bid == ask))
    return [f"{locked} locked quotes (bid_px == ask_px)"] if locked else []


KIND = DataKind(
    name="quotes",
    schema=QUOTE_SCHEMA,
    key=("ts", "update_id"),
    ranked=True,
    validate=validate,
    row_noun="quote",
    summary="best bid/ask",
)
