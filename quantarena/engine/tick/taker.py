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

Risk (paper trading's checks, in the loop so a backtest with the same caps gives the same
orders): ``cap_pos`` caps each instrument's position value ``|pos| · mid`` and ``cap_gross``
their sum (quote units at the decision's mids; ``inf``: off). A pairs entry whose legs would
pass a cap is scaled down, both legs by the same factor (the hedge ratio is kept); a
cross-venue trade that would add to a position past a cap is refused. Each is counted
(``X_NCUT``). A column with ``X_HALT`` set (the kill switch) decides nothing but, with no leg
in flight, market legs that close its positions (pairs: state back to flat).

Log (``LT``, ``LF``; optional, ``L`` rows per column): every leg sent (an **order**: decision
time, arrival time, signed quantity) and every fill (time, price, signed quantity, fee).
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
(X_POS_A, X_POS_B, X_CASH, X_FEES, X_NFILL, X_STATE, X_PEND_A, X_PEND_B, X_TA, X_TB, X_MAXINV,
 X_NLOG, X_HALT, X_NCUT) = range(14)  # fmt: skip
N_X = 14
# log: int fields (time, arrival) and float fields
L_TS, L_ARR = range(2)
L_KIND, L_LEG, L_QTY, L_PX, L_FEE = range(5)
N_LF = 5
LOG_ORDER, LOG_FILL = 0, 1


def merge_quotes(
    ts_a: np.ndarray,
    bid_a: np.ndarray,
    ask_a: np.ndarray,
    ts_b: np.ndarray,
    bid_b: np.ndarray,
    ask_b: np.ndarray,
    last: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The joint quote clock of two legs' quote events: time order, A before B at equal times
    (each leg in its own order), both legs' last bid/ask carried forward (``last``: the
    ``(bid_a, ask_a, bid_b, ask_b)`` before these events; NaN: none yet). The one merge rule
    of the backtest (:func:`joint_quotes`) and of paper trading."""  # fmt: skip
    last = np.full(4, np.nan) if last is None else np.asarray(last, np.float64)
    ts = np.concatenate([ts_a, ts_b]).astype(np.int64)
    src = np.concatenate([np.zeros(ts_a.size, np.int8), np.ones(ts_b.size, np.int8)])
    order = np.lexsort((src, ts))
    ts, src = ts[order], src[order]
    out = {"ts": ts, "src": src}
    for name, code, k, cols in (("a", 0, 0, (bid_a, ask_a)), ("b", 1, 2, (bid_b, ask_b))):
        pos = np.where(src == code, 1, 0).cumsum() - 1  # index of the last quote of this side
        ok = pos >= 0
        for f, v, c in (("bid", cols[0], k), ("ask", cols[1], k + 1)):
            col = np.full(ts.shape[0], last[c])
            col[ok] = np.asarray(v, np.float64)[pos[ok]]
            out[f"{f}_{name}"] = col
    return out


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
    return merge_quotes(a.ts[ia], a.bid[ia], a.ask[ia], b.ts[ib], b.bid[ib], b.ask[ib])


def joint_end(a: object, b: object) -> int:
    """The last time of the joint quote clock: the earlier of the two legs' last quotes (after
    it one leg's quote is stale — a stream that ended is no price)."""
    from quantarena.engine.tick.events import QUOTE

    ends = []
    for s in (a, b):
        q = np.flatnonzero(s.kind == QUOTE)  # type: ignore[attr-defined]
        if q.size == 0:
            raise ValueError(f"{s.symbol}: no quotes")  # type: ignore[attr-defined]
        ends.append(int(s.ts[q[-1]]))  # type: ignore[attr-defined]
    return min(ends)


def pairs_grid(t_first: int, t_last: int) -> np.ndarray:
    """The whole seconds (ns) after ``t_first`` up to ``t_last`` at which pairs mids are
    sampled (the first: the second after the joint clock's first event)."""
    return np.arange((t_first // 10**9 + 1) * 10**9, t_last + 1, 10**9, dtype=np.int64)


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
def _log(j, kind, leg, t, arr, qty, px, fee, X, LT, LF):
    k = int(X[j, X_NLOG])
    if k < LT.shape[1]:
        LT[j, k, L_TS] = t
        LT[j, k, L_ARR] = arr
        LF[j, k, L_KIND] = kind
        LF[j, k, L_LEG] = leg
        LF[j, k, L_QTY] = qty
        LF[j, k, L_PX] = px
        LF[j, k, L_FEE] = fee
        X[j, X_NLOG] = k + 1


@njit(cache=True, inline="always")
def _leg(j, side_pos, qty, px, fee, X, t, LT, LF):
    # qty signed (+ buy)
    X[j, side_pos] += qty
    X[j, X_CASH] -= qty * px + abs(qty) * px * fee
    X[j, X_FEES] += abs(qty) * px * fee
    X[j, X_NFILL] += 1.0
    _log(j, LOG_FILL, 0 if side_pos == X_POS_A else 1, t, t, qty, px, abs(qty) * px * fee, X,
         LT, LF)  # fmt: skip


@njit(cache=True, inline="always")
def _cap_scale(ta, tb, ma, mb, cap_pos, cap_gross):
    """The factor (<= 1) that brings target positions ``ta``, ``tb`` within the caps (a value
    within 1e-9 of a cap passes: ``notional / mid · mid`` is not always ``notional``)."""
    va = abs(ta) * ma
    vb = abs(tb) * mb
    f = 1.0
    tol = 1.0 + 1e-9
    if va > cap_pos * tol:
        f = min(f, cap_pos / va)
    if vb > cap_pos * tol:
        f = min(f, cap_pos / vb)
    if va + vb > cap_gross * tol:
        f = min(f, cap_gross / (va + vb))
    return f


@njit(cache=True, parallel=True)
def run_taker2(ts, bid_a, ask_a, bid_b, ask_b, Z, B, mode, prm, lat_a, lat_b, fee_a, fee_b, X,
               sample_ts, EQ, cap_pos, cap_gross, LT, LF):  # fmt: skip
    """Replay the joint quote clock for every column (see the module docstring). Event 0 only
    samples and carries its book: a stream run in blocks passes the previous block's last
    event first."""
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
                _leg(j, X_POS_A, q, ask_a[i - 1] if q > 0 else bid_a[i - 1], fee_a, X, t, LT, LF)
                X[j, X_PEND_A] = 0.0
            if X[j, X_PEND_B] != 0.0 and X[j, X_TB] <= t:
                q = X[j, X_PEND_B]
                _leg(j, X_POS_B, q, ask_b[i - 1] if q > 0 else bid_b[i - 1], fee_b, X, t, LT, LF)
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
            if X[j, X_HALT] > 0.0:  # kill switch: close both legs at market
                dqa = -X[j, X_POS_A]
                dqb = -X[j, X_POS_B]
                X[j, X_STATE] = 0.0
            elif mode == PAIRS:
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
                    ta = new * notional / ma
                    tb = -new * beta * notional / mb
                    f = _cap_scale(ta, tb, ma, mb, cap_pos, cap_gross)
                    if f < 1.0:
                        ta *= f
                        tb *= f
                        X[j, X_NCUT] += 1.0
                    dqa = ta - X[j, X_POS_A]
                    dqb = tb - X[j, X_POS_B]
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
                    pa = X[j, X_POS_A] + dqa
                    pb = X[j, X_POS_B] + dqb
                    adds = abs(pa) > abs(X[j, X_POS_A]) or abs(pb) > abs(X[j, X_POS_B])
                    if adds and _cap_scale(pa, pb, ma, mb, cap_pos, cap_gross) < 1.0:
                        dqa = 0.0
                        dqb = 0.0
                        X[j, X_NCUT] += 1.0
            if dqa != 0.0:
                X[j, X_PEND_A] = dqa
                X[j, X_TA] = t + lat_a
                _log(j, LOG_ORDER, 0, t, t + lat_a, dqa, math.nan, 0.0, X, LT, LF)
            if dqb != 0.0:
                X[j, X_PEND_B] = dqb
                X[j, X_TB] = t + lat_b
                _log(j, LOG_ORDER, 1, t, t + lat_b, dqb, math.nan, 0.0, X, LT, LF)
        mid_a = 0.5 * (bid_a[n - 1] + ask_a[n - 1])
        mid_b = 0.5 * (bid_b[n - 1] + ask_b[n - 1])
        while k < sample_ts.shape[0]:
            EQ[k, j] = X[j, X_CASH] + X[j, X_POS_A] * mid_a + X[j, X_POS_B] * mid_b
            k += 1
