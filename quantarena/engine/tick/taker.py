"""Two-instrument taker kernel (arbitrage agents): a joint quote clock over two symbols or
venues, and market (IOC at the touch) legs with per-venue latency and taker fees.

Joint stream: every quote event of A or B, in time order, with both instruments' last
best bid/ask carried forward (:func:`joint_quotes`). Per event ``i`` and column ``j``:
(1) equity samples due; (2) legs whose arrival time is ``<= ts_i`` fill their whole
quantity at the touch of their venue as it stood before event ``i`` (buy at the ask, sell
at the bid), paying ``taker`` of that venue on the traded value; (3) with no leg in flight,
the agent decides:

* **pairs** (:data:`PAIRS`): ``z`` = the z-score of the spread ``ln mid_A − β ln mid_B``
  (β, mean and sd from a rolling OLS over the column's window, :func:`rolling_pairs`);
  enter short the spread (sell A, buy B) when ``z > z_entry``, long when ``z < −z_entry``;
  exit when ``|z| < z_exit``. Legs: A to ``±notional / mid_A``, B to ``∓β · notional / mid_B``;
* **cross-venue** (:data:`CROSS`): the edge of buying A and selling B is
  ``(bid_B − ask_A) / mid_A · 1e4 − fee_A − fee_B`` (bps); when it beats ``threshold_bps``
  and A's inventory is below ``max_inventory`` order sizes, buy ``qty`` on A and sell ``qty``
  on B (and the mirror trade when ``bid_A − ask_B`` pays). Inventory is held on each venue.

Each leg acts after its venue's entry latency; the equity is ``cash + pos_A · mid_A +
pos_B · mid_B``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

PAIRS = 0
CROSS = 1
# parameter block columns
T_A, T_B, T_C, T_QTY = range(4)  # pairs: z_entry, z_exit, window index, notional
# cross: threshold_bps, max_inventory, -, qty
# account columns
X_POS_A, X_POS_B, X_CASH, X_FEES, X_NFILL, X_STATE, X_PEND_A, X_PEND_B, X_TA, X_TB, X_MAXINV = (
    range(11)
)
N_X = 11


def joint_quotes(a: object, b: object) -> dict[str, np.ndarray]:
    """The joint quote clock of two :class:`~.events.EventStream` (their quote events up to
    the end of the shorter one; before the later start, a side is NaN and nothing trades)."""
    from quantarena.engine.tick.events import QUOTE

    ia = np.flatnonzero(a.kind == QUOTE)
    ib = np.flatnonzero(b.kind == QUOTE)
    if ia.size == 0 or ib.size == 0:
        raise ValueError(f"{a.symbol},{b.symbol}: both instruments need quotes")
    # only the span both cover: a stale quote of a stream that has ended is no price
    lo = max(a.ts[ia[0]], b.ts[ib[0]])
    hi = min(a.ts[ia[-1]], b.ts[ib[-1]])
    if lo >= hi:
        raise ValueError(f"{a.symbol},{b.symbol}: the two instruments' quotes do not overlap")
    ia = ia[(a.ts[ia] <= hi)]
    ib = ib[(b.ts[ib] <= hi)]
    ts = np.concatenate([a.ts[ia], b.ts[ib]])
    src = np.concatenate([np.zeros(ia.size, np.int8), np.ones(ib.size, np.int8)])
    order = np.lexsort((src, ts))
    ts, src = ts[order], src[order]
    out = {"ts": ts}
    for name, s, idx, code in (("a", a, ia, 0), ("b", b, ib, 1)):
        pos = np.where(src == code, 1, 0).cumsum() - 1  # index of the last quote of this side
        ok = pos >= 0
        for f in ("bid", "ask"):
            v = getattr(s, f)[idx]
            col = np.full(ts.shape[0], np.nan)
            col[ok] = v[pos[ok]]
            out[f"{f}_{name}"] = col
    return out


def rolling_pairs(
    mid_a: np.ndarray, mid_b: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """(z, β) per row: OLS of ``ln mid_A`` on ``ln mid_B`` over the last ``window`` rows
    (inclusive), ``z = (s − mean(s)) / sd(s)`` of ``s = ln mid_A − β ln mid_B`` over the same
    rows; NaN until the window is full or where sd is 0."""
    x = np.log(mid_b)
    y = np.log(mid_a)
    n = x.shape[0]
    z = np.full(n, np.nan)
    beta = np.full(n, np.nan)
    if n < window or window < 3:
        return z, beta
    from numpy.lib.stride_tricks import sliding_window_view

    X = sliding_window_view(x, window)
    Y = sliding_window_view(y, window)
    xm = X.mean(axis=1, keepdims=True)
    ym = Y.mean(axis=1, keepdims=True)
    vx = ((X - xm) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        b = ((X - xm) * (Y - ym)).sum(axis=1) / vx
        b = np.where(vx > 0, b, 1.0)
        S = Y - b[:, None] * X
        sd = S.std(axis=1, ddof=1)
        zz = (S[:, -1] - S.mean(axis=1)) / sd
    zz = np.where(sd > 0, zz, np.nan)
    z[window - 1 :] = zz
    beta[window - 1 :] = b
    return z, beta


@njit(cache=True, inline="always")
def _leg(j, side_pos, qty, px, fee, X):
    # qty signed (+ buy)
    X[j, side_pos] += qty
    X[j, X_CASH] -= qty * px + abs(qty) * px * fee
    X[j, X_FEES] += abs(qty) * px * fee
    X[j, X_NFILL] += 1.0


@njit(cache=True, parallel=True)
def run_taker2(ts, bid_a, ask_a, bid_b, ask_b, Z, B, mode, prm, lat_a, lat_b, fee_a, fee_b, X,
               sample_ts, EQ):  # fmt: skip
    """Replay the joint quote clock for every column (see the module docstring)."""
    n = ts.shape[0]
    P = X.shape[0]
    for j in prange(P):
        k = 0
        w = int(prm[j, T_C])
        for i in range(n):
            t = ts[i]
            mid_a = 0.5 * (bid_a[i - 1] + ask_a[i - 1]) if i > 0 else math.nan
            mid_b = 0.5 * (bid_b[i - 1] + ask_b[i - 1]) if i > 0 else math.nan
            while k < sample_ts.shape[0] and sample_ts[k] <= t:
                EQ[k, j] = X[j, X_CASH] + X[j, X_POS_A] * mid_a + X[j, X_POS_B] * mid_b
                k += 1
            if i == 0:
                continue
            # legs in flight
            if X[j, X_PEND_A] != 0.0 and X[j, X_TA] <= t:
                q = X[j, X_PEND_A]
                _leg(j, X_POS_A, q, ask_a[i - 1] if q > 0 else bid_a[i - 1], fee_a, X)
                X[j, X_PEND_A] = 0.0
            if X[j, X_PEND_B] != 0.0 and X[j, X_TB] <= t:
                q = X[j, X_PEND_B]
                _leg(j, X_POS_B, q, ask_b[i - 1] if q > 0 else bid_b[i - 1], fee_b, X)
                X[j, X_PEND_B] = 0.0
            a = abs(X[j, X_POS_A])
            if a > X[j, X_MAXINV]:
                X[j, X_MAXINV] = a
            if X[j, X_PEND_A] != 0.0 or X[j, X_PEND_B] != 0.0:
                continue
            ba, aa, bb, ab = bid_a[i], ask_a[i], bid_b[i], ask_b[i]
            if not (ba == ba and aa == aa and bb == bb and ab == ab):
                continue
            ma = 0.5 * (ba + aa)
            mb = 0.5 * (bb + ab)
            dqa = 0.0
            dqb = 0.0
            if mode == PAIRS:
                z = Z[i, w]
                st = X[j, X_STATE]
                new = st
                if z == z:
                    if st == 0.0:
                        if z > prm[j, T_A]:
                            new = -1.0
                        elif z < -prm[j, T_A]:
                            new = 1.0
                    elif abs(z) < prm[j, T_B]:
                        new = 0.0
                if new != st:
                    beta = B[i, w]
                    notional = prm[j, T_QTY]
                    dqa = new * notional / ma - X[j, X_POS_A]
                    dqb = -new * beta * notional / mb - X[j, X_POS_B]
                    X[j, X_STATE] = new
            else:
                cost = (fee_a + fee_b) * 1e4
                thr = prm[j, T_A]
                cap = prm[j, T_B] * prm[j, T_QTY]
                q = prm[j, T_QTY]
                if (bb - aa) / ma * 1e4 - cost > thr and X[j, X_POS_A] + q <= cap + 1e-12:
                    dqa = q
                    dqb = -q
                elif (ba - ab) / ma * 1e4 - cost > thr and X[j, X_POS_A] - q >= -cap - 1e-12:
                    dqa = -q
                    dqb = q
            if dqa != 0.0:
                X[j, X_PEND_A] = dqa
                X[j, X_TA] = t + lat_a
            if dqb != 0.0:
                X[j, X_PEND_B] = dqb
                X[j, X_TB] = t + lat_b
        mid_a = 0.5 * (bid_a[n - 1] + ask_a[n - 1])
        mid_b = 0.5 * (bid_b[n - 1] + ask_b[n - 1])
        while k < sample_ts.shape[0]:
            EQ[k, j] = X[j, X_CASH] + X[j, X_POS_A] * mid_a + X[j, X_POS_B] * mid_b
            k += 1
