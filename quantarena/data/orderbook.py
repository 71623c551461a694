"""Rebuilding an L2 book from stored deltas: top-N levels at chosen times or update ids.

Pure and deterministic: arrays in (rows of the ``book`` kind, in stored order), arrays out.
Rows are applied in order; a row sets the total size at its (side, price) level and a size
of 0 deletes the level; the first row of a snapshot message (rows sharing ``ts`` and
``update_id`` with ``is_snapshot`` set) clears both sides first. The state "at time t" is the
book after every row with ``ts <= t``; "at update id x" after every row with
``update_id <= x``. Levels are ordered best first (bids high → low, asks low → high); missing
levels are NaN price and 0 size.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np


@dataclass
class BookLevels:
    """Top-N book levels at K points.

    Attributes:
        at: the K query values (int64 ns times, or update ids), as given.
        bid_px, bid_qty, ask_px, ask_qty: float64 arrays of shape (K, N); level 0 is the best.
        rows_applied: int64 (K,), how many book rows were applied to reach each point.
    """

    at: np.ndarray
    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray
    rows_applied: np.ndarray

    def __len__(self) -> int:
        return int(self.at.shape[0])


def book_levels(
    ts: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
    is_snapshot: np.ndarray,
    update_id: np.ndarray | None = None,
    *,
    depth: int = 5,
    times: np.ndarray | None = None,
    update_ids: np.ndarray | None = None,
) -> BookLevels:
    """Top ``depth`` levels after applying rows up to each of ``times`` (ns, ``ts <= t``) or
    each of ``update_ids`` (``update_id <= x``; needs ``update_id`` without nulls, i.e. no -1).

    The rows must be one symbol's book rows in stored order (see the module doc); pass
    exactly one of ``times`` / ``update_ids``. Queries may come in any order.
    """
    if (times is None) == (update_ids is None):
        raise ValueError("pass exactly one of times= or update_ids=")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    ts = np.asarray(ts, dtype=np.int64)
    n = ts.size
    uid = np.full(n, -1, dtype=np.int64) if update_id is None else np.asarray(update_id, np.int64)
    if times is not None:
        at = np.asarray(times, dtype=np.int64)
        if n > 1 and np.any(ts[1:] < ts[:-1]):
            raise ValueError("book rows are not sorted by ts")
        cuts = np.searchsorted(ts, at, side="right")
    else:
        at = np.asarray(update_ids, dtype=np.int64)
        if n and (np.any(uid < 0) or (n > 1 and np.any(uid[1:] < uid[:-1]))):
            raise ValueError("update_ids= needs rows with update ids, non-decreasing")
        cuts = np.searchsorted(uid, at, side="right")
    k = at.size
    out_bp = np.full((k, depth), np.nan)
    out_bq = np.zeros((k, depth))
    out_ap = np.full((k, depth), np.nan)
    out_aq = np.zeros((k, depth))
    snap = np.asarray(is_snapshot, dtype=bool)
    start_snap = snap.copy()
    if n > 1:
        same_msg = (ts[1:] == ts[:-1]) & (uid[1:] == uid[:-1]) & snap[:-1]
        start_snap[1:] &= ~same_msg
    s_l, p_l, q_l, c_l = side.tolist(), price.tolist(), qty.tolist(), start_snap.tolist()
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    bid_keys: list[float] = []  # ascending; best bid last
    ask_keys: list[float] = []  # ascending; best ask first
    i = 0
    for j in np.argsort(cuts, kind="stable").tolist():
        stop = int(cuts[j])
        while i < stop:
            if c_l[i]:
                bids.clear()
                asks.clear()
                bid_keys.clear()
                ask_keys.clear()
            book, keys = (bids, bid_keys) if s_l[i] > 0 else (asks, ask_keys)
            p, q = p_l[i], q_l[i]
            if q > 0:
                if p not in book:
                    keys.insert(bisect_left(keys, p), p)
                book[p] = q
            elif p in book:
                del book[p]
                del keys[bisect_left(keys, p)]
            i += 1
        nb = min(depth, len(bid_keys))
        if nb:
            top = bid_keys[-1 : -nb - 1 : -1]
            out_bp[j, :nb] = top
            out_bq[j, :nb] = [bids[p] for p in top]
        na = min(depth, len(ask_keys))
        if na:
            top = ask_keys[:na]
            out_ap[j, :na] = top
            out_aq[j, :na] = [asks[p] for p in top]
    return BookLevels(at, out_bp, out_bq, out_ap, out_aq, cuts.astype(np.int64))
