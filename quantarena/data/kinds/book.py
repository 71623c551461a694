"""The ``book`` kind: L2 order-book deltas and snapshots, one row per price level touched.

Schema :data:`BOOK_SCHEMA`:

* ``ts`` int64 ns UTC — exchange time of the update (see each loader for the field used);
* ``side`` int8 — +1 bid, -1 ask;
* ``price`` float64 (quote units); ``qty`` float64 — the **new total size** resting at that
  level after the update (not a change); 0 deletes the level;
* ``is_snapshot`` bool — the row belongs to a snapshot. The rows of one snapshot share one
  ``ts`` and ``update_id``; a snapshot **replaces** the whole book (both sides);
* ``update_id`` int64, nullable — the exchange's sequence number of the message (Binance
  ``u`` / ``lastUpdateId``, Bybit ``u``); null where the source has none (Tardis CSVs);
* ``prev_update_id`` int64, nullable — the update id the message must follow: Binance USD-M
  ``pu``, Binance spot ``U - 1``, Bybit ``u - 1``; null for snapshots and where unknown;
* ``recv_ts`` int64 ns, nullable — local receive time.

The rows of one message share ``(ts, update_id)``. Rows are kept sorted by ``ts``,
``update_id``, snapshot rows first, then ``side`` and ``price`` (stable: a level touched twice at
one time and id keeps its order), so applying them in stored order rebuilds the book
(:func:`quantarena.data.orderbook.book_levels`). The same level of the same message is the
same row for the store: ingesting a top-5 and a top-25 snapshot of one time stores the
union of their levels, and a level stored with another size is a conflict.

Rules (one symbol): side is ±1; finite price > 0 and qty >= 0; update ids never decrease;
no level twice in one snapshot; within a message, snapshot rows come first; and no gaps —
a delta after a delta has ``prev_update_id`` equal to the previous message's ``update_id``,
a delta right after a snapshot overlaps it (``prev_update_id <= snapshot id <= update_id``).
A gap is refused with one line naming both messages' rows and ids.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from quantarena.data.errors import DataError, ValidationError
from quantarena.data.kinds.base import DataKind, check_positive, column_np, num, raise_at
from quantarena.data.kinds.quotes import check_update_ids

BID, ASK = 1, -1

BOOK_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("side", pa.int8(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("qty", pa.float64(), nullable=False),
        pa.field("is_snapshot", pa.bool_(), nullable=False),
        pa.field("update_id", pa.int64(), nullable=True),
        pa.field("prev_update_id", pa.int64(), nullable=True),
        pa.field("recv_ts", pa.int64(), nullable=True),
    ]
)


def message_starts(table: pa.Table) -> np.ndarray:
    """Row index where each message (a run of rows with equal ``ts`` and ``update_id``) starts."""
    n = table.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ts, uid = column_np(table, "ts"), column_np(table, "update_id", -1)
    new = (ts[1:] != ts[:-1]) | (uid[1:] != uid[:-1])
    return np.r_[0, np.flatnonzero(new) + 1].astype(np.int64)


def follows(prev_uid: int, prev_snap: bool, pu: int, uid: int) -> bool:
    """May a delta with ids (``pu``, ``uid``) be applied right after a message ``prev_uid``
    (a snapshot when ``prev_snap``)? Unknown ids (< 0) always may."""
    if prev_uid < 0 or pu < 0 or uid < 0:
        return True
    if prev_snap:
        return pu <= prev_uid <= uid
    return pu == prev_uid


def _gap_reason(prev_uid: int, prev_snap: bool, pu: int, uid: int) -> str:
    what = f"snapshot {prev_uid}" if prev_snap else f"update {prev_uid}"
    need = (
        f"an update overlapping it (prev_update_id <= {prev_uid} <= update_id)"
        if prev_snap
        else f"prev_update_id {prev_uid}"
    )
    return f"sequence gap: update {uid} (prev_update_id {pu}) cannot follow {what}; expected {need}"


def validate(table: pa.Table, path: str, lines: np.ndarray | None) -> list[str]:
    """The book rules (module doc) on one symbol's sorted rows; notes count snapshots."""
    n = table.num_rows
    side = column_np(table, "side", 0)
    raise_at(
        ~np.isin(side, (BID, ASK)),
        lambda i: f"side {int(side[i])} is not +1 (bid) or -1 (ask)",
        path=path,
        lines=lines,
        field_name="side",
    )
    check_positive(table, "price", path=path, lines=lines)
    check_positive(table, "qty", path=path, lines=lines, allow_zero=True)
    check_update_ids(table, path, lines)
    snap = column_np(table, "is_snapshot", False).astype(bool)
    starts = message_starts(table)
    msg = np.zeros(n, dtype=np.int64)
    msg[starts[1:]] = 1
    msg = np.cumsum(msg)
    # within a message, snapshot rows first
    bad = np.r_[False, (msg[1:] == msg[:-1]) & snap[1:] & ~snap[:-1]]
    raise_at(
        bad,
        lambda i: "snapshot row after update rows of the same time and update id",
        path=path,
        lines=lines,
        field_name="is_snapshot",
        hint="a snapshot replaces the book: give it its own time or update id",
    )
    # no level twice in a snapshot
    if snap.any():
        price = column_np(table, "price")
        idx = np.flatnonzero(snap)
        k = np.zeros(idx.size, dtype=[("m", "<i8"), ("s", "<i8"), ("p", "<f8")])
        k["m"], k["s"], k["p"] = msg[idx], side[idx], price[idx]
        order = np.argsort(k, kind="stable")
        ks = k[order]
        dup = np.flatnonzero(ks[1:] == ks[:-1])
        if dup.size:
            i = int(idx[max(order[dup[0]], order[dup[0] + 1])])
            raise_at(
                np.arange(n) == i,
                lambda i: (
                    f"the snapshot holds the {('bid' if side[i] > 0 else 'ask')} level "
                    f"{num(price[i])} twice"
                ),
                path=path,
                lines=lines,
                field_name="price",
            )
    # sequence
    uid = column_np(table, "update_id", -1)
    pu = column_np(table, "prev_update_id", -1)
    m_uid, m_pu, m_snap = uid[starts], pu[starts], snap[starts]
    prev_uid, prev_snap, cur_pu, cur_uid = m_uid[:-1], m_snap[:-1], m_pu[1:], m_uid[1:]
    ok = m_snap[1:] | (prev_uid < 0) | (cur_pu < 0) | (cur_uid < 0)
    ok |= np.where(prev_snap, (cur_pu <= prev_uid) & (prev_uid <= cur_uid), cur_pu == prev_uid)
    if not ok.all():  # the same rule as follows(), message by message
        j = int(np.argmax(~ok)) + 1
        i, p = int(starts[j]), int(starts[j - 1])
        where = f" (row {int(lines[p])})" if lines is not None else ""
        raise ValidationError(
            _gap_reason(int(m_uid[j - 1]), bool(m_snap[j - 1]), int(m_pu[j]), int(m_uid[j]))
            + where,
            path=path,
            row=None if lines is None else int(lines[i]),
            field="update_id",
            hint="the source is missing messages: use a complete capture, or one that "
            "starts again with a snapshot",
        )
    n_snap = int(np.count_nonzero(m_snap))
    notes = [] if n_snap else ["no snapshot: the book rebuilds only after an earlier snapshot"]
    return notes


def check_append(before: pa.Table, after: pa.Table, path: str, before_stored: bool = True) -> None:
    """The rows ``after`` must continue the update sequence of the rows ``before`` (one of
    them stored, the other from the file at ``path``; ``before_stored`` says which)."""
    if before.num_rows == 0 or after.num_rows == 0:
        return
    last = int(message_starts(before)[-1])
    prev_uid = int(column_np(before, "update_id", -1)[last])
    prev_snap = bool(column_np(before, "is_snapshot", False)[last])
    if bool(column_np(after, "is_snapshot", False)[0]):
        return
    pu = int(column_np(after, "prev_update_id", -1)[0])
    uid = int(column_np(after, "update_id", -1)[0])
    if not follows(prev_uid, prev_snap, pu, uid):
        sym = after.column("symbol")[0].as_py()
        first, second = (
            ("the stored book", "the file's")
            if before_stored
            else ("the file", "the stored book's")
        )
        raise DataError(
            f"symbol {sym}: {first} ends at update id {prev_uid}; {second} first "
            + _gap_reason(prev_uid, prev_snap, pu, uid).replace("sequence gap: ", ""),
            path=path,
            field="update_id",
            hint="nothing was written; ingest the missing messages first, or a file that "
            "starts with a snapshot",
        )


KIND = DataKind(
    name="book",
    schema=BOOK_SCHEMA,
    key=("ts", "update_id", "-is_snapshot", "side", "price"),
    ranked=True,
    validate=validate,
    check_append=check_append,
    summary="L2 book deltas and snapshots; qty = new level size, 0 deletes",
    row_noun="book level",
)
