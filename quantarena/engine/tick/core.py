"""The tick kernels (Numba, CPU): one loop over events per parameter set, the population in
parallel (``prange`` over columns). The exchange rules are in small inlined functions shared
by :func:`run_script` (orders given in advance: tests, comparisons) and :func:`run_mm` (the
market-making agents' quoting logic inside the loop).

Per event ``i`` and column ``j``: (1) record equity samples due at or before ``ts_i``;
(2) orders whose arrival time is ``<= ts_i`` act, against the book as it was before event
``i``; (3) the event is applied to the column's resting orders (fills, queue position);
(4) ``run_mm`` only: on a decision event, the agent re-quotes (new, replace or cancel orders
that act after the latency).

Order rules on arrival (buy shown; sell mirrored), with ``bid``/``ask`` the touch:

* market: fills its whole quantity at ``ask`` (taker; the book is not walked);
* limit with ``px >= ask`` (marketable): fills its whole quantity at ``ask`` (taker);
  else it rests;
* post-only with ``px >= ask``: rejected; else it rests;
* IOC with ``px >= ask``: fills ``min(qty, ask_qty)`` at ``ask`` (taker), the rest is
  cancelled; else cancelled;
* cancel: removes the order if it still rests; replace: moves it to a new price / size, at
  the back of the new level (a post-only replace that would take is rejected and the order
  removed);
* filters (:mod:`.filters`) are checked first: a failing order is rejected.

Resting orders (maker fills at the order's own price): see :mod:`.queue`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from quantarena.engine.tick.events import DEPTH, QUOTE, TRADE
from quantarena.engine.tick.queue import LOG, POWER
from quantarena.engine.tick.quoting import PR_QTY, quote_depths
from quantarena.engine.tick.venue import (
    ENTRY_MULT,
    LOT,
    MAKER,
    MIN_NOTIONAL,
    Q_KIND,
    Q_N,
    TAKER,
    TICK,
    USE_DEPTH,
)

# order types / commands
MARKET, LIMIT, POST_ONLY, IOC, CANCEL, REPLACE = 0, 1, 2, 3, 4, 5
# order float fields
O_SIDE, O_PX, O_QTY, O_AHEAD, O_TR, O_TYPE, O_NPX, O_NQTY = range(8)
N_OF = 8
# order int fields: status (0 none, 1 new in flight, 2 resting), arrival of the new order,
# arrival of a pending replace/cancel (-1 none)
O_ST, O_T, O_RT = range(3)
N_OI = 3
ST_NONE, ST_FLIGHT, ST_LIVE = 0, 1, 2
# account fields
(
    A_POS,
    A_CASH,
    A_FEES,
    A_NFILL,
    A_MAKER_QTY,
    A_TAKER_QTY,
    A_REJ_POST,
    A_REJ_FILTER,
    A_NORD,
    A_NLOG,
    A_MAX_INV,
    A_MID,
    A_FUND,
) = range(13)
N_AC = 13
ACCOUNT_FIELDS = (
    "position",
    "cash",
    "fees",
    "n_fills",
    "maker_qty",
    "taker_qty",
    "rejected_post_only",
    "rejected_filter",
    "n_orders",
    "n_logged",
    "max_inventory",
    "last_mid",
    "funding",
)
# fill log fields (float part; the time is in a separate int64 array)
F_PX, F_QTY, F_MAKER, F_SLOT = range(4)
N_FL = 4
INF_AHEAD = 1e300
#: events per cache block of run_mm: each thread runs its columns over a block of events
#: (which stays in cache) before it reads the next block
EVENT_BLOCK = 2048


@njit(cache=True, inline="always")
def _fill(j, s, x, px, maker, ts, OF, AC, V, FLT, FL):
    side = OF[j, s, O_SIDE]
    rate = V[MAKER] if maker else V[TAKER]
    fee = x * px * rate
    AC[j, A_POS] += side * x
    AC[j, A_CASH] -= side * x * px + fee
    AC[j, A_FEES] += fee
    AC[j, A_NFILL] += 1.0
    if maker:
        AC[j, A_MAKER_QTY] += x
    else:
        AC[j, A_TAKER_QTY] += x
    a = abs(AC[j, A_POS])
    if a > AC[j, A_MAX_INV]:
        AC[j, A_MAX_INV] = a
    k = int(AC[j, A_NLOG])
    if k < FL.shape[1]:
        FLT[j, k] = ts
        FL[j, k, F_PX] = px
        FL[j, k, F_QTY] = side * x
        FL[j, k, F_MAKER] = 1.0 if maker else 0.0
        FL[j, k, F_SLOT] = s
        AC[j, A_NLOG] = k + 1


@njit(cache=True, inline="always")
def _passes_filters(px, qty, V):
    tick = V[TICK]
    if tick > 0.0:
        r = px / tick
        if abs(r - round(r)) > 1e-9 * max(1.0, abs(r)):
            return False
    lot = V[LOT]
    if qty <= 0.0:
        return False
    if lot > 0.0:
        r = qty / lot
        if abs(r - round(r)) > 1e-9 * max(1.0, abs(r)):
            return False
    if V[MIN_NOTIONAL] > 0.0 and px * qty < V[MIN_NOTIONAL] * (1.0 - 1e-12):
        return False
    return True


@njit(cache=True, inline="always")
def _join_ahead(side, px, bid, bid_qty, ask, ask_qty):
    """Queue ahead of an order joining at ``px`` (see :mod:`.queue`)."""
    if side > 0:
        if px == bid:
            return bid_qty
        if not (px < bid):  # better than the best bid (or no bid): a new level
            return 0.0
        return INF_AHEAD
    if px == ask:
        return ask_qty
    if not (px > ask):
        return 0.0
    return INF_AHEAD


@njit(cache=True, inline="always")
def _arrive(j, s, typ, side, px, qty, ts, bid, bid_qty, ask, ask_qty, OF, OI, AC, V, FLT, FL):
    """A new order (or the new leg of a replace) acts at the exchange."""
    OF[j, s, O_SIDE] = side
    OF[j, s, O_TYPE] = typ
    OI[j, s, O_ST] = ST_NONE
    OI[j, s, O_RT] = -1
    touch = ask if side > 0 else bid
    touch_qty = ask_qty if side > 0 else bid_qty
    check_px = touch if typ == MARKET else px
    if not (check_px > 0.0) or not _passes_filters(check_px, qty, V):
        AC[j, A_REJ_FILTER] += 1.0
        return
    crosses = (side > 0 and px >= touch) or (side < 0 and px <= touch)
    if typ == MARKET:
        if touch > 0.0:
            _fill(j, s, qty, touch, False, ts, OF, AC, V, FLT, FL)
        return
    if crosses:
        if typ == POST_ONLY:
            AC[j, A_REJ_POST] += 1.0
            return
        if typ == IOC:
            x = min(qty, touch_qty)
            if x > 0.0:
                _fill(j, s, x, touch, False, ts, OF, AC, V, FLT, FL)
            return
        _fill(j, s, qty, touch, False, ts, OF, AC, V, FLT, FL)
        return
    if typ == IOC:
        return
    OF[j, s, O_PX] = px
    OF[j, s, O_QTY] = qty
    OF[j, s, O_AHEAD] = _join_ahead(side, px, bid, bid_qty, ask, ask_qty)
    OF[j, s, O_TR] = 0.0
    OI[j, s, O_ST] = ST_LIVE


@njit(cache=True, inline="always")
def _passive(j, s, x, ts, OF, OI, AC, V, FLT, FL):
    """Fill ``x`` of resting order ``s`` at its price (maker)."""
    lv = OF[j, s, O_QTY]
    if x >= lv:
        x = lv
    _fill(j, s, x, OF[j, s, O_PX], True, ts, OF, AC, V, FLT, FL)
    OF[j, s, O_QTY] = lv - x
    if OF[j, s, O_QTY] <= lv * 1e-12:
        OF[j, s, O_QTY] = 0.0
        OI[j, s, O_ST] = ST_NONE


@njit(cache=True, inline="always")
def _qf(x, kind, n):
    if kind == POWER:
        return x**n
    return math.log1p(x)


@njit(cache=True, inline="always")
def _level_change(ahead, traded, prev, new, V):
    """New queue ahead after the level's size went from ``prev`` to ``new``."""
    if ahead >= INF_AHEAD:
        return new
    kind = int(V[Q_KIND])
    if kind != POWER and kind != LOG:
        return min(ahead, new)
    chg = prev - new - traded
    if chg < 0.0:
        return min(ahead, new)
    front = ahead
    back = prev - front
    fb = _qf(max(back, 0.0), kind, V[Q_N])
    ff = _qf(max(front, 0.0), kind, V[Q_N])
    p = fb / (fb + ff) if (fb + ff) > 0.0 else 1.0
    est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
    return max(min(est, new), 0.0)


@njit(cache=True, inline="always")
def _on_event(
    j,
    i,
    kind,
    eside,
    epx,
    eqty,
    eprev,
    ts,
    nb,
    nbq,
    na,
    naq,
    pb,
    pbq,
    pa,
    paq,
    OF,
    OI,
    AC,
    V,
    FLT,
    FL,
):
    """Apply market event ``i`` to the resting orders of column ``j``."""
    K = OF.shape[1]
    use_depth = V[USE_DEPTH] > 0.0
    for s in range(K):
        if OI[j, s, O_ST] != ST_LIVE:
            continue
        side = OF[j, s, O_SIDE]
        px = OF[j, s, O_PX]
        if kind == TRADE:
            hits = (side > 0 and eside <= 0) or (side < 0 and eside >= 0)
            if not hits:
                continue
            if (side > 0 and epx < px) or (side < 0 and epx > px):  # trade through
                _passive(j, s, OF[j, s, O_QTY], ts, OF, OI, AC, V, FLT, FL)
            elif epx == px:
                ahead = OF[j, s, O_AHEAD]
                OF[j, s, O_TR] += eqty
                if ahead < INF_AHEAD:
                    if eqty > ahead:
                        OF[j, s, O_AHEAD] = 0.0
                        _passive(j, s, eqty - ahead, ts, OF, OI, AC, V, FLT, FL)
                    else:
                        OF[j, s, O_AHEAD] = ahead - eqty
        elif kind == QUOTE:
            if side > 0:
                if na <= px:  # the book moved through the order
                    _passive(j, s, OF[j, s, O_QTY], ts, OF, OI, AC, V, FLT, FL)
                    continue
                if use_depth:
                    continue
                if px == nb:
                    prev = pbq if pb == px else OF[j, s, O_AHEAD]
                    OF[j, s, O_AHEAD] = _level_change(
                        OF[j, s, O_AHEAD], OF[j, s, O_TR], prev, nbq, V
                    )
                    OF[j, s, O_TR] = 0.0
                elif px > nb:  # our level is empty but for us
                    OF[j, s, O_AHEAD] = 0.0
                    OF[j, s, O_TR] = 0.0
            else:
                if nb >= px:
                    _passive(j, s, OF[j, s, O_QTY], ts, OF, OI, AC, V, FLT, FL)
                    continue
                if use_depth:
                    continue
                if px == na:
                    prev = paq if pa == px else OF[j, s, O_AHEAD]
                    OF[j, s, O_AHEAD] = _level_change(
                        OF[j, s, O_AHEAD], OF[j, s, O_TR], prev, naq, V
                    )
                    OF[j, s, O_TR] = 0.0
                elif px < na:
                    OF[j, s, O_AHEAD] = 0.0
                    OF[j, s, O_TR] = 0.0
        elif kind == DEPTH:
            if eside == side and epx == px:
                OF[j, s, O_AHEAD] = _level_change(OF[j, s, O_AHEAD], OF[j, s, O_TR], eprev, eqty, V)
                OF[j, s, O_TR] = 0.0


@njit(cache=True, inline="always")
def _cancel(j, s, OI):
    OI[j, s, O_ST] = ST_NONE
    OI[j, s, O_RT] = -1


@njit(cache=True, inline="always")
def _replace(j, s, px, qty, ts, bid, bid_qty, ask, ask_qty, OF, OI, AC, V, FLT, FL):
    OI[j, s, O_RT] = -1
    if OI[j, s, O_ST] != ST_LIVE:
        return  # filled or gone meanwhile: the replace is refused
    typ = int(OF[j, s, O_TYPE])
    _arrive(
        j, s, typ, OF[j, s, O_SIDE], px, qty, ts, bid, bid_qty, ask, ask_qty, OF, OI, AC, V, FLT, FL
    )


@njit(cache=True, inline="always")
def _funding(j, i_ts, f, fund_ts, fund_rate, AC):
    """Funding due at or before ``i_ts``: cash −= rate · position · mid (longs pay when the
    rate is positive)."""
    while f < fund_ts.shape[0] and fund_ts[f] <= i_ts:
        pay = fund_rate[f] * AC[j, A_POS] * AC[j, A_MID]
        AC[j, A_CASH] -= pay
        AC[j, A_FUND] += pay
        f += 1
    return f


@njit(cache=True, inline="always")
def _sample(j, i_ts, k, sample_ts, EQ, AC):
    while k < sample_ts.shape[0] and sample_ts[k] <= i_ts:
        EQ[k, j] = AC[j, A_CASH] + AC[j, A_POS] * AC[j, A_MID]
        k += 1
    return k


@njit(cache=True, parallel=True)
def run_script(
    ts,
    kind,
    side,
    px,
    qty,
    prev,
    bid,
    bid_qty,
    ask,
    ask_qty,
    top0,
    c_arr,
    c_col,
    c_slot,
    c_op,
    c_side,
    c_px,
    c_qty,
    V,
    OF,
    OI,
    AC,
    FLT,
    FL,
    sample_ts,
    EQ,
    k0,
    fund_ts,
    fund_rate,
    f0,
):
    """Replay events with orders given in advance (``c_*``, sorted by arrival time ``c_arr``;
    ``c_col`` -1 = every column). ``top0``: the book (bid, bid_qty, ask, ask_qty) before the
    first event. Returns nothing; the state arrays are updated in place."""
    n = ts.shape[0]
    P = AC.shape[0]
    M = c_arr.shape[0]
    for j in prange(P):
        k = k0
        f = f0
        m = 0
        pb, pbq, pa, paq = top0[0], top0[1], top0[2], top0[3]
        for i in range(n):
            t = ts[i]
            k = _sample(j, t, k, sample_ts, EQ, AC)
            f = _funding(j, t, f, fund_ts, fund_rate, AC)
            while m < M and c_arr[m] <= t:
                if c_col[m] < 0 or c_col[m] == j:
                    s = c_slot[m]
                    op = c_op[m]
                    if op == CANCEL:
                        _cancel(j, s, OI)
                    elif op == REPLACE:
                        _replace(
                            j,
                            s,
                            c_px[m],
                            c_qty[m],
                            c_arr[m],
                            pb,
                            pbq,
                            pa,
                            paq,
                            OF,
                            OI,
                            AC,
                            V,
                            FLT,
                            FL,
                        )
                    else:
                        _arrive(
                            j,
                            s,
                            op,
                            c_side[m],
                            c_px[m],
                            c_qty[m],
                            c_arr[m],
                            pb,
                            pbq,
                            pa,
                            paq,
                            OF,
                            OI,
                            AC,
                            V,
                            FLT,
                            FL,
                        )
                m += 1
            nb, nbq, na, naq = bid[i], bid_qty[i], ask[i], ask_qty[i]
            _on_event(
                j,
                i,
                kind[i],
                side[i],
                px[i],
                qty[i],
                prev[i],
                t,
                nb,
                nbq,
                na,
                naq,
                pb,
                pbq,
                pa,
                paq,
                OF,
                OI,
                AC,
                V,
                FLT,
                FL,
            )
            if nb == nb and na == na:
                AC[j, A_MID] = 0.5 * (nb + na)
            pb, pbq, pa, paq = nb, nbq, na, naq


@njit(cache=True, inline="always")
def _send(j, s, t, OF, OI, AC, draws, lat_extra):
    """The entry latency of the column's next order (ns)."""
    m = int(AC[j, A_NORD])
    AC[j, A_NORD] = m + 1
    return t + draws[m % draws.shape[0]] + lat_extra


@njit(cache=True, parallel=True)
def run_mm(
    ts,
    kind,
    side,
    px,
    qty,
    prev,
    bid,
    bid_qty,
    ask,
    ask_qty,
    top0,
    feed,
    decide,
    FT,
    quote_kind,
    prm,
    V,
    draws,
    OF,
    OI,
    AC,
    FLT,
    FL,
    sample_ts,
    EQ,
    k0,
    fund_ts,
    fund_rate,
    f0,
    n_groups,
):
    """Replay events for a population of market makers (slot 0 = bid, slot 1 = ask).

    On each ``decide`` event the agent of column ``j`` sees the market as of that event
    (features ``FT[i]``: mid, sigma, A, k) and its position, computes its quotes with
    :func:`.quoting.quote_depths` and sends post-only orders of ``prm[j, PR_QTY]``: a new one
    where it has none, a replace where its price changed, a cancel where it stops quoting
    that side; an order with an action still in flight is left alone. Orders act at
    ``ts_i + feed_i + entry``."""
    n = ts.shape[0]
    P = AC.shape[0]
    tick = V[TICK]
    lot = V[LOT]
    mult = V[ENTRY_MULT]
    KK = np.full(P, k0, dtype=np.int64)
    FF = np.full(P, f0, dtype=np.int64)
    G = min(n_groups, P)
    for g in prange(G):
        for b0 in range(0, n, EVENT_BLOCK):
            b1 = min(n, b0 + EVENT_BLOCK)
            for j in range(g * P // G, (g + 1) * P // G):
                k = KK[j]
                f = FF[j]
                if b0 == 0:
                    pb, pbq, pa, paq = top0[0], top0[1], top0[2], top0[3]
                else:
                    pb, pbq, pa, paq = bid[b0 - 1], bid_qty[b0 - 1], ask[b0 - 1], ask_qty[b0 - 1]
                oq = prm[j, PR_QTY]
                if lot > 0.0:
                    oq = math.floor(oq / lot + 1e-9) * lot
                for i in range(b0, b1):
                    t = ts[i]
                    k = _sample(j, t, k, sample_ts, EQ, AC)
                    f = _funding(j, t, f, fund_ts, fund_rate, AC)
                    for s in range(2):
                        if OI[j, s, O_ST] == ST_FLIGHT and OI[j, s, O_T] <= t:
                            _arrive(
                                j,
                                s,
                                POST_ONLY,
                                1.0 - 2.0 * s,
                                OF[j, s, O_NPX],
                                OF[j, s, O_NQTY],
                                OI[j, s, O_T],
                                pb,
                                pbq,
                                pa,
                                paq,
                                OF,
                                OI,
                                AC,
                                V,
                                FLT,
                                FL,
                            )
                        rt = OI[j, s, O_RT]
                        if rt >= 0 and rt <= t:
                            if OF[j, s, O_NQTY] == 0.0:
                                _cancel(j, s, OI)
                            else:
                                _replace(
                                    j,
                                    s,
                                    OF[j, s, O_NPX],
                                    OF[j, s, O_NQTY],
                                    rt,
                                    pb,
                                    pbq,
                                    pa,
                                    paq,
                                    OF,
                                    OI,
                                    AC,
                                    V,
                                    FLT,
                                    FL,
                                )
                    nb, nbq, na, naq = bid[i], bid_qty[i], ask[i], ask_qty[i]
                    _on_event(
                        j,
                        i,
                        kind[i],
                        side[i],
                        px[i],
                        qty[i],
                        prev[i],
                        t,
                        nb,
                        nbq,
                        na,
                        naq,
                        pb,
                        pbq,
                        pa,
                        paq,
                        OF,
                        OI,
                        AC,
                        V,
                        FLT,
                        FL,
                    )
                    if nb == nb and na == na:
                        AC[j, A_MID] = 0.5 * (nb + na)
                    pb, pbq, pa, paq = nb, nbq, na, naq
                    if not decide[i] or not (nb == nb and na == na):
                        continue
                    mid = FT[i, 0]
                    q = AC[j, A_POS] / oq
                    bd, ad = quote_depths(quote_kind, prm, j, FT[i, 1], FT[i, 2], FT[i, 3], q)
                    t_dec = t + feed[i]
                    extra = int(mult * feed[i])
                    for s in range(2):
                        d = bd if s == 0 else ad
                        want = math.nan
                        if d == d:
                            if s == 0:
                                want = math.floor((mid - d * tick) / tick + 1e-9) * tick
                                want = min(want, na - tick)
                            else:
                                want = math.ceil((mid + d * tick) / tick - 1e-9) * tick
                                want = max(want, nb + tick)
                        st = OI[j, s, O_ST]
                        if st == ST_FLIGHT or OI[j, s, O_RT] >= 0:
                            continue
                        if st == ST_NONE:
                            if want == want:
                                OF[j, s, O_NPX] = want
                                OF[j, s, O_NQTY] = oq
                                OI[j, s, O_T] = _send(j, s, t_dec, OF, OI, AC, draws, extra)
                                OI[j, s, O_ST] = ST_FLIGHT
                        elif want != want:
                            OF[j, s, O_NQTY] = 0.0
                            OI[j, s, O_RT] = _send(j, s, t_dec, OF, OI, AC, draws, extra)
                        elif abs(want - OF[j, s, O_PX]) > 0.5 * tick:
                            OF[j, s, O_NPX] = want
                            OF[j, s, O_NQTY] = oq
                            OI[j, s, O_RT] = _send(j, s, t_dec, OF, OI, AC, draws, extra)
                KK[j] = k
                FF[j] = f
