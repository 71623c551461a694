"""CPU simulation kernel (Numba): one block of bars for a whole population.

``run_block`` replays bars ``[t0, t0 + B)`` for all ``P`` parameter sets in parallel
(``prange`` over parameter sets; each runs its bars in order), carrying the state arrays
``S`` / ``SA`` (see :mod:`quantarena.engine.layout`) across blocks. It is the reference
algorithm: :mod:`quantarena.engine.kernels_gpu` mirrors it line by line.

Per bar ``t`` and parameter set ``p`` (``fill="open"``):

1. fill at the open: each unmasked asset whose pending target (decided at the close of
   ``t - 1``) differs from the target last acted on trades to ``w * E_f / open`` shares,
   ``E_f`` = cash + shares valued at this bar's opens (all assets at once);
2. stops (if any) on held, unmasked assets, from open/high/low;
3. funding on held positions at the close;
4. mark equity at the close, update the return / drawdown / exposure accumulators;
5. process row ``t`` of the targets (NaN -> 0, clip to ``max_position``, scale to
   ``leverage``) into the pending target.

With ``fill="close"`` steps 1 and 5 merge into one step after 3: the processed target of
row ``t`` trades at the close of ``t``.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
from numba import njit, prange

from quantarena.engine.layout import (
    BEST,
    CASH,
    DIR,
    EPX,
    EQ_PREV,
    EQTY,
    ETS,
    EVAL,
    EXIT_RUIN,
    EXIT_SIGNAL,
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    EXIT_TRAILING,
    EXPO,
    FEES,
    FUND,
    GL,
    GP,
    INV_PEAK,
    LAST,
    LAST_PEAK_T,
    MAX_DD,
    MAX_DD_DUR,
    NREC,
    NTR,
    PEAK,
    PEND,
    R_ASSET,
    R_DIR,
    R_ENTRY_PX,
    R_ENTRY_T,
    R_EXIT_PX,
    R_EXIT_T,
    R_PARAM,
    R_PNL,
    R_REASON,
    R_RET,
    R_SIZE,
    RUINED,
    SH,
    SUM_D2,
    SUM_R,
    SUM_R2,
    SUM_TRET,
    TCOST,
    TROUGH,
    TURN,
    WINS,
    XQTY,
    XVAL,
)
from quantarena.engine.layout import stamp as _layout_stamp
from quantarena.engine.signal_rules import fused_value
from quantarena.engine.signal_rules import stamp as _rules_stamp

# Numba's on-disk cache is keyed on this file alone, yet the layout constants are compiled
# into the kernels: a change in layout.py must change this file too, hence this stamp.
_LAYOUT_STAMP = "d8ee73e3f757"
if _layout_stamp() != _LAYOUT_STAMP:  # pragma: no cover - guards future edits
    raise RuntimeError(
        f"quantarena/engine/layout.py changed: set _LAYOUT_STAMP = {_layout_stamp()!r} in "
        "kernels_cpu.py (this also invalidates Numba's cache of the old kernels)"
    )
# the same for the signal rules inlined into the fused kernels
_RULES_STAMP = "57f8cf5d9fca"
if _rules_stamp() != _RULES_STAMP:  # pragma: no cover - guards future edits
    raise RuntimeError(
        f"quantarena/engine/signal_rules.py changed: set _RULES_STAMP = {_rules_stamp()!r} in "
        "kernels_cpu.py and in strategies/kernels.py (this also invalidates Numba's cache)"
    )


@njit(cache=True, inline="always", error_model="numpy")
def _open_trade(SA, a, p, t, side, q, fpx, fee):
    SA[EVAL, a, p] = q * fpx
    SA[EQTY, a, p] = q
    SA[XVAL, a, p] = 0.0
    SA[XQTY, a, p] = 0.0
    SA[TCOST, a, p] = fee
    SA[DIR, a, p] = side
    SA[ETS, a, p] = t
    SA[BEST, a, p] = fpx
    SA[EPX, a, p] = fpx


@njit(cache=True, inline="always", error_model="numpy")
def _close_trade(S, SA, p, a, t, reason, rec_on, offs, RF, RI):
    d = SA[DIR, a, p]
    ev = SA[EVAL, a, p]
    pnl = d * (SA[XVAL, a, p] - ev) - SA[TCOST, a, p]
    ret = pnl / ev if ev > 0.0 else 0.0
    S[NTR, p] += 1.0
    if pnl > 0.0:
        S[WINS, p] += 1.0
        S[GP, p] += pnl
    else:
        S[GL, p] -= pnl
    S[SUM_TRET, p] += ret
    if rec_on:
        k = offs[p] + np.int64(S[NREC, p])
        if k < RF.shape[0]:
            RF[k, R_ENTRY_T] = SA[ETS, a, p]
            RF[k, R_EXIT_T] = t
            RF[k, R_DIR] = d
            RF[k, R_SIZE] = SA[EQTY, a, p]
            RF[k, R_ENTRY_PX] = SA[EPX, a, p]
            xq = SA[XQTY, a, p]
            RF[k, R_EXIT_PX] = SA[XVAL, a, p] / xq if xq > 0.0 else np.nan
            RF[k, R_PNL] = pnl
            RF[k, R_RET] = ret
            RI[k, R_PARAM] = p
            RI[k, R_ASSET] = a
            RI[k, R_REASON] = reason
        S[NREC, p] += 1.0
    SA[DIR, a, p] = 0.0


@njit(cache=True, error_model="numpy")
def _fill(
    S,
    SA,
    p,
    a,
    t,
    dsh,
    px,
    eref,
    reason,
    cash,
    fee_r,
    slip_r,
    imp_k,
    imp_a,
    imp_max,
    bar_notional,
    rec_on,
    offs,
    RF,
    RI,
):
    """Trade ``dsh`` shares of asset ``a`` at base price ``px``; returns the new cash."""
    side = 1.0 if dsh > 0.0 else -1.0
    q = abs(dsh)
    adj = slip_r
    if imp_k > 0.0:
        if bar_notional > 0.0:
            ib = imp_k * (q * px / bar_notional) ** imp_a
            if ib > imp_max:
                ib = imp_max
        else:
            ib = imp_max
        adj += ib
    fpx = px * (1.0 + side * adj * 1e-4)
    notional = q * fpx
    fee = notional * fee_r * 1e-4
    cash -= dsh * fpx + fee
    if eref > 0.0:
        S[TURN, p] += notional / eref
    S[FEES, p] += fee
    sh0 = SA[SH, a, p]
    sh1 = sh0 + dsh
    if sh0 == 0.0:
        _open_trade(SA, a, p, t, side, q, fpx, fee)
    elif (sh0 > 0.0) == (dsh > 0.0):  # add to the position
        SA[EVAL, a, p] += notional
        SA[EQTY, a, p] += q
        SA[TCOST, a, p] += fee
        SA[EPX, a, p] = SA[EVAL, a, p] / SA[EQTY, a, p]
    elif sh1 != 0.0 and (sh1 > 0.0) == (sh0 > 0.0):  # partial exit
        SA[XVAL, a, p] += notional
        SA[XQTY, a, p] += q
        SA[TCOST, a, p] += fee
    else:  # full exit, or a flip through zero
        qc = abs(sh0)
        fc = fee * (qc / q)
        SA[XVAL, a, p] += qc * fpx
        SA[XQTY, a, p] += qc
        SA[TCOST, a, p] += fc
        _close_trade(S, SA, p, a, t, reason, rec_on, offs, RF, RI)
        if sh1 != 0.0:
            _open_trade(SA, a, p, t, side, abs(sh1), fpx, fee - fc)
    SA[SH, a, p] = sh1
    return cash


@njit(cache=True, inline="always", error_model="numpy")
def _order(tgt, sh, px, lot, mnot):
    """Shares to trade from ``sh`` toward the target quantity ``tgt`` at price ``px`` under
    the exchange filters (:mod:`quantarena.engine.filters`): ``tgt`` rounded toward zero to
    a multiple of ``lot``; 0 (no trade) when the trade is worth less than ``mnot`` and does
    not close the position. ``lot = mnot = 0``: exactly ``tgt - sh``."""
    if lot > 0.0:
        q = np.floor(abs(tgt) / lot + 1e-9) * lot
        tgt = q if tgt > 0.0 else -q
    dsh = tgt - sh
    if mnot > 0.0 and tgt != 0.0 and abs(dsh) * px < mnot:
        return 0.0
    return dsh


# the same code, inlined in the fast kernel
_fill_inl = njit(inline="always", error_model="numpy")(_fill.py_func)


@njit(cache=True, inline="always", error_model="numpy")
def _changed(SA, p, t, A, mask):
    """True when an unmasked asset's pending target differs from the one last acted on."""
    for a in range(A):
        if mask[t, a] and SA[PEND, a, p] != SA[LAST, a, p]:
            return True
    return False


# The kernels below are compiled twice: as written, reading targets from blocks
# (``_target`` = :func:`_target_block`, ``_advance`` a no-op), and as the fused variants made
# by :func:`_fused_variant` at the end of this module (``_target`` = :func:`_target_fused`):
# one source, and the block path carries none of the fused rules' code.


@njit(cache=True, inline="always", error_model="numpy")
def _target_block(pos, i, t, a, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw):
    """The raw target of set ``p``, asset ``a``, decided at the close of bar ``t``: row ``i``
    of the block ``pos``."""
    return np.float64(pos[i, a, p])


@njit(cache=True, inline="always", error_model="numpy")
def _target_fused(pos, i, t, a, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw):
    """The same target computed by the fused rule ``sk`` (:mod:`quantarena.engine.signal_rules`)
    from indicator row ``t + so``; updates ``carry`` and stores the value in ``raw``."""
    v = fused_value(sk, t + so, a, p, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry)
    raw[a, p] = v
    return np.float64(v)


_target = _target_block


@njit(cache=True, inline="always", error_model="numpy")
def _advance(pos, i, t, A, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw):
    """A ruined set's targets are not acted on: nothing to do with blocks."""
    return


@njit(cache=True, inline="always", error_model="numpy")
def _advance_fused(pos, i, t, A, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw):
    """Evaluate the fused rule without acting on it (a ruined set: the rule's state moves on
    exactly as an agent's blocks would)."""
    for a in range(A):
        _target_fused(pos, i, t, a, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw)


@njit(cache=True, inline="always", error_model="numpy")
def _process_row(
    pos, i, t, p, A, mp, lev, SA, dst, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw
):
    """Row ``i`` (bar ``t``) of the targets for ``p``: NaN -> 0, clip to ±mp, scale so
    sum|w| <= lev; written into ``SA[dst, :, p]``."""
    gross = 0.0
    for a in range(A):
        w = _target(pos, i, t, a, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw)
        if w != w:
            w = 0.0
        elif w > mp:
            w = mp
        elif w < -mp:
            w = -mp
        SA[dst, a, p] = w
        gross += abs(w)
    if gross > lev:
        sc = lev / gross
        for a in range(A):
            SA[dst, a, p] = SA[dst, a, p] * sc


@njit(cache=True, error_model="numpy")
def _rebalance(
    S,
    SA,
    p,
    t,
    A,
    prices,
    mask,
    vol,
    close,
    cash,
    fee_r,
    slip_r,
    imp_k,
    imp_a,
    imp_max,
    lot,
    mnot,
    rec_on,
    offs,
    RF,
    RI,
):
    """Trade every unmasked asset whose PEND differs from LAST to PEND of equity at ``prices``
    (call only when :func:`_changed`)."""
    ef = cash
    for a in range(A):
        sh = SA[SH, a, p]
        if sh != 0.0:
            ef += sh * prices[t, a]
    for a in range(A):
        if mask[t, a] and SA[PEND, a, p] != SA[LAST, a, p]:
            w = SA[PEND, a, p]
            px = prices[t, a]
            if px > 0.0 and ef > 0.0:
                dsh = _order(w * ef / px, SA[SH, a, p], px, lot[a], mnot[a])
                if dsh != 0.0:
                    cash = _fill(
                        S,
                        SA,
                        p,
                        a,
                        t,
                        dsh,
                        px,
                        ef,
                        EXIT_SIGNAL,
                        cash,
                        fee_r,
                        slip_r,
                        imp_k,
                        imp_a,
                        imp_max,
                        vol[t, a] * close[t, a],
                        rec_on,
                        offs,
                        RF,
                        RI,
                    )
            SA[LAST, a, p] = w
    return cash


@njit(cache=True, inline="always", error_model="numpy")
def _levels(sh, e, b, slp, tpp, trp):
    """Stop level, its exit reason, and take-profit level of a position (long if sh > 0)."""
    if sh > 0.0:
        l_sl = e * (1.0 - slp)
        l_tr = b * (1.0 - trp)
        s_lvl = l_sl
        s_rs = EXIT_STOP_LOSS
        if l_tr > l_sl:
            s_lvl = l_tr
            s_rs = EXIT_TRAILING
        t_lvl = e * (1.0 + tpp)
    else:
        l_sl = e * (1.0 + slp)
        l_tr = b * (1.0 + trp)
        s_lvl = l_sl
        s_rs = EXIT_STOP_LOSS
        if l_tr < l_sl:
            s_lvl = l_tr
            s_rs = EXIT_TRAILING
        t_lvl = e * (1.0 - tpp)
    return s_lvl, s_rs, t_lvl


@njit(cache=True, inline="always", error_model="numpy")
def _stop_hit(sh, o, h, lw, s_lvl, s_rs, t_lvl):
    """``(price, reason)`` of a stop / take-profit exit inside the bar, reason -1 if none.

    Gap-through at the open fills at the open; otherwise the stop wins over the
    take-profit when both levels lie inside the bar."""
    px = 0.0
    reason = -1
    if sh > 0.0:
        if o <= s_lvl:
            px = o
            reason = s_rs
        elif o >= t_lvl:
            px = o
            reason = EXIT_TAKE_PROFIT
        elif lw <= s_lvl:
            px = s_lvl
            reason = s_rs
        elif h >= t_lvl:
            px = t_lvl
            reason = EXIT_TAKE_PROFIT
    else:
        if o >= s_lvl:
            px = o
            reason = s_rs
        elif o <= t_lvl:
            px = o
            reason = EXIT_TAKE_PROFIT
        elif h >= s_lvl:
            px = s_lvl
            reason = s_rs
        elif lw <= t_lvl:
            px = t_lvl
            reason = EXIT_TAKE_PROFIT
    return px, reason


@njit(cache=True, error_model="numpy")
def _multi_param(
    p,
    t0,
    B,
    pos,
    sk,
    so,
    X0,
    X1,
    X2,
    I1,
    I2,
    F1,
    F2,
    ssc,
    slo,
    carry,
    raw,
    op,
    hi,
    lo,
    cl,
    vol,
    mask,
    fund,
    has_fund,
    maxpos,
    lev,
    fee_r,
    slip_r,
    imp_k,
    imp_a,
    imp_max,
    lot,
    mnot,
    sl,
    tp,
    tr,
    has_stops,
    fill_close,
    S,
    SA,
    rec_ret,
    rec_eq,
    rec_pos,
    rec_on,
    offs,
    RF,
    RI,
):
    """Replay bars ``t0 .. t0 + pos.shape[0] - 1`` for parameter set ``p`` (any ``A``).

    ``pos``: ``(B, A, P)`` raw target weights (float64); ``op..mask``: full ``(T, A)``
    panel arrays (prices finite: the driver zeroes NaN on masked cells); ``fund``: ``(T, A)``
    funding rate per bar; ``maxpos``, ``sl``, ``tp``, ``tr``: ``(P,)``; ``S``, ``SA``: state
    (updated in place); ``rec_*``: ``(B, P)`` / ``(B, A, P)`` outputs or empty;
    ``RF``/``RI``: trade records written at ``offs[p]`` onwards when ``rec_on``.
    """
    A = SA.shape[1]
    do_ret = rec_ret.shape[0] > 0
    do_eq = rec_eq.shape[0] > 0
    do_pos = rec_pos.shape[0] > 0
    mp = maxpos[p]
    cash = S[CASH, p]
    eprev = S[EQ_PREV, p]
    peak = S[PEAK, p]
    invpeak = S[INV_PEAK, p]
    lp = S[LAST_PEAK_T, p]
    trough = S[TROUGH, p]
    maxdd = S[MAX_DD, p]
    maxddur = S[MAX_DD_DUR, p]
    sr = S[SUM_R, p]
    sr2 = S[SUM_R2, p]
    sd2 = S[SUM_D2, p]
    expo = S[EXPO, p]
    ruined = S[RUINED, p] != 0.0
    slp = sl[p]
    tpp = tp[p]
    trp = tr[p]
    for i in range(B):
        t = t0 + i
        if ruined:
            if do_ret:
                rec_ret[i, p] = 0.0
            if do_eq:
                rec_eq[i, p] = eprev
            if do_pos:
                for a in range(A):
                    rec_pos[i, a, p] = 0.0
            _advance(pos, i, t, A, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw)
            continue
        # 1. fill the previous close's targets at this open
        if not fill_close and _changed(SA, p, t, A, mask):
            cash = _rebalance(
                S,
                SA,
                p,
                t,
                A,
                op,
                mask,
                vol,
                cl,
                cash,
                fee_r,
                slip_r,
                imp_k,
                imp_a,
                imp_max,
                lot,
                mnot,
                rec_on,
                offs,
                RF,
                RI,
            )
        # 2. stops inside the bar
        if has_stops:
            for a in range(A):
                sh = SA[SH, a, p]
                if sh != 0.0 and mask[t, a]:
                    s_lvl, s_rs, t_lvl = _levels(sh, SA[EPX, a, p], SA[BEST, a, p], slp, tpp, trp)
                    px, reason = _stop_hit(sh, op[t, a], hi[t, a], lo[t, a], s_lvl, s_rs, t_lvl)
                    if reason >= 0:
                        cash = _fill(
                            S,
                            SA,
                            p,
                            a,
                            t,
                            -sh,
                            px,
                            eprev,
                            reason,
                            cash,
                            fee_r,
                            slip_r,
                            imp_k,
                            imp_a,
                            imp_max,
                            vol[t, a] * cl[t, a],
                            rec_on,
                            offs,
                            RF,
                            RI,
                        )
        # 3. funding on positions held at the close
        if has_fund:
            for a in range(A):
                sh = SA[SH, a, p]
                if sh != 0.0:
                    f = fund[t, a] * sh * cl[t, a]
                    cash -= f
                    SA[TCOST, a, p] += f
                    S[FUND, p] += f
        # 3b. fill="close": this row's targets trade at this close
        if fill_close:
            _process_row(
                pos,
                i,
                t,
                p,
                A,
                mp,
                lev,
                SA,
                PEND,
                sk,
                so,
                X0,
                X1,
                X2,
                I1,
                I2,
                F1,
                F2,
                ssc,
                slo,
                carry,
                raw,
            )
            if _changed(SA, p, t, A, mask):
                cash = _rebalance(
                    S,
                    SA,
                    p,
                    t,
                    A,
                    cl,
                    mask,
                    vol,
                    cl,
                    cash,
                    fee_r,
                    slip_r,
                    imp_k,
                    imp_a,
                    imp_max,
                    lot,
                    mnot,
                    rec_on,
                    offs,
                    RF,
                    RI,
                )
        # 4. mark to the close
        eq = cash
        held = 0.0
        for a in range(A):
            sh = SA[SH, a, p]
            eq += sh * cl[t, a]
            if sh != 0.0:
                held = 1.0
        r = (eq - eprev) / eprev
        sr += r
        sr2 += r * r
        m = min(r, 0.0)
        sd2 += m * m
        expo += held
        if eq >= peak:
            if trough < peak:
                dd = 1.0 - trough * invpeak
                if dd > maxdd:
                    maxdd = dd
                dur = t - lp - 1.0
                if dur > maxddur:
                    maxddur = dur
            peak = eq
            invpeak = 1.0 / eq
            lp = t
            trough = eq
        elif eq < trough:
            trough = eq
        if eq <= 0.0:
            # ruin: close everything at this close, free of costs, and stay flat
            for a in range(A):
                sh = SA[SH, a, p]
                if sh != 0.0:
                    cash = _fill(
                        S,
                        SA,
                        p,
                        a,
                        t,
                        -sh,
                        cl[t, a],
                        0.0,
                        EXIT_RUIN,
                        cash,
                        0.0,
                        0.0,
                        0.0,
                        imp_a,
                        0.0,
                        0.0,
                        rec_on,
                        offs,
                        RF,
                        RI,
                    )
            ruined = True
        if has_stops:
            for a in range(A):
                sh = SA[SH, a, p]
                c = cl[t, a]
                if sh > 0.0:
                    if c > SA[BEST, a, p]:
                        SA[BEST, a, p] = c
                elif sh < 0.0:
                    if c < SA[BEST, a, p]:
                        SA[BEST, a, p] = c
        if do_ret:
            rec_ret[i, p] = r
        if do_eq:
            rec_eq[i, p] = eq
        if do_pos:
            for a in range(A):
                sh = SA[SH, a, p]
                rec_pos[i, a, p] = sh * cl[t, a] / eq if (sh != 0.0 and eq != 0.0) else 0.0
        eprev = eq
        # 5. targets decided at this close, to fill at the next open
        if not fill_close:
            if ruined:
                _advance(pos, i, t, A, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw)
            else:
                _process_row(
                    pos,
                    i,
                    t,
                    p,
                    A,
                    mp,
                    lev,
                    SA,
                    PEND,
                    sk,
                    so,
                    X0,
                    X1,
                    X2,
                    I1,
                    I2,
                    F1,
                    F2,
                    ssc,
                    slo,
                    carry,
                    raw,
                )
    S[CASH, p] = cash
    S[EQ_PREV, p] = eprev
    S[PEAK, p] = peak
    S[INV_PEAK, p] = invpeak
    S[LAST_PEAK_T, p] = lp
    S[TROUGH, p] = trough
    S[MAX_DD, p] = maxdd
    S[MAX_DD_DUR, p] = maxddur
    S[SUM_R, p] = sr
    S[SUM_R2, p] = sr2
    S[SUM_D2, p] = sd2
    S[EXPO, p] = expo
    S[RUINED, p] = 1.0 if ruined else 0.0


# fmt: off
@njit(cache=True, error_model="numpy")
def _single_group(g, t0, B, pos, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw,
                  op, hi, lo, cl, vol, mask, maxpos, lev, fee_r, slip_r, imp_k, imp_a, imp_max,
                  lot, mnot, sl, tp, tr, has_stops, S, SA, rec_ret, rec_eq, rec_on, offs, RF,
                  RI):
    """The common case, fast, for parameter sets ``g * G .. g * G + G - 1``: one asset,
    ``fill="open"``, no funding, positions not recorded (stops allowed).

    Same arithmetic in the same order as :func:`_multi_param`, hence bit-identical results
    (a test holds them equal). The hot state lives in registers, the stop levels are
    recomputed only when the entry or the trailing anchor changes; fills go through the same
    helpers. Bars run in tiles of ``SUB`` so the strided weight reads of the group's ``G``
    sets (one 64-byte line of float64) stay in L1.
    """
    P = S.shape[1]
    do_ret = rec_ret.shape[0] > 0
    do_eq = rec_eq.shape[0] > 0
    SUB = 512
    for i0 in range(0, B, SUB):
        i1 = min(B, i0 + SUB)
        for p in range(g * G, min(P, g * G + G)):
            mp = maxpos[p]
            cash = S[CASH, p]
            eprev = S[EQ_PREV, p]
            peak = S[PEAK, p]
            invpeak = S[INV_PEAK, p]
            lp = S[LAST_PEAK_T, p]
            trough = S[TROUGH, p]
            maxdd = S[MAX_DD, p]
            maxddur = S[MAX_DD_DUR, p]
            sr = S[SUM_R, p]
            sr2 = S[SUM_R2, p]
            sd2 = S[SUM_D2, p]
            expo = S[EXPO, p]
            ruined = S[RUINED, p] != 0.0
            sh = SA[SH, 0, p]
            last = SA[LAST, 0, p]
            pend = SA[PEND, 0, p]
            slp = sl[p]
            tpp = tp[p]
            trp = tr[p]
            best = SA[BEST, 0, p]
            s_lvl = 0.0
            s_rs = EXIT_STOP_LOSS
            t_lvl = 0.0
            if has_stops and sh != 0.0:
                s_lvl, s_rs, t_lvl = _levels(sh, SA[EPX, 0, p], best, slp, tpp, trp)
            for i in range(i0, i1):
                t = t0 + i
                if ruined:
                    if do_ret:
                        rec_ret[i, p] = 0.0
                    if do_eq:
                        rec_eq[i, p] = eprev
                    _advance(pos, i, t, 1, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry,
                             raw)
                    continue
                # 1. fill at the open (_rebalance for one asset, inlined)
                if pend != last and mask[t, 0]:
                    px = op[t, 0]
                    ef = cash + sh * px
                    if px > 0.0 and ef > 0.0:
                        dsh = _order(pend * ef / px, sh, px, lot[0], mnot[0])
                        if dsh != 0.0:
                            cash = _fill_inl(S, SA, p, 0, t, dsh, px, ef, EXIT_SIGNAL, cash,
                                             fee_r, slip_r, imp_k, imp_a, imp_max,
                                             vol[t, 0] * cl[t, 0], rec_on, offs, RF, RI)
                            sh = SA[SH, 0, p]
                            if has_stops and sh != 0.0:
                                best = SA[BEST, 0, p]
                                s_lvl, s_rs, t_lvl = _levels(sh, SA[EPX, 0, p], best, slp, tpp,
                                                             trp)
                    last = pend
                    SA[LAST, 0, p] = last
                # 2. stops inside the bar
                if has_stops and sh != 0.0 and mask[t, 0]:
                    px, reason = _stop_hit(sh, op[t, 0], hi[t, 0], lo[t, 0], s_lvl, s_rs, t_lvl)
                    if reason >= 0:
                        cash = _fill(S, SA, p, 0, t, -sh, px, eprev, reason, cash, fee_r, slip_r,
                                     imp_k, imp_a, imp_max, vol[t, 0] * cl[t, 0], rec_on, offs,
                                     RF, RI)
                        sh = SA[SH, 0, p]
                # 4. mark to the close
                c = cl[t, 0]
                eq = cash + sh * c
                r = (eq - eprev) / eprev
                sr += r
                sr2 += r * r
                m = min(r, 0.0)
                sd2 += m * m
                if sh != 0.0:
                    expo += 1.0
                if eq >= peak:
                    if trough < peak:
                        dd = 1.0 - trough * invpeak
                        if dd > maxdd:
                            maxdd = dd
                        dur = t - lp - 1.0
                        if dur > maxddur:
                            maxddur = dur
                    peak = eq
                    invpeak = 1.0 / eq
                    lp = t
                    trough = eq
                elif eq < trough:
                    trough = eq
                if eq <= 0.0:
                    if sh != 0.0:
                        cash = _fill(S, SA, p, 0, t, -sh, c, 0.0, EXIT_RUIN, cash, 0.0, 0.0, 0.0,
                                     imp_a, 0.0, 0.0, rec_on, offs, RF, RI)
                        sh = 0.0
                    ruined = True
                # trailing anchor: the best close so far
                if has_stops and sh != 0.0:
                    if sh > 0.0:
                        if c > best:
                            best = c
                            SA[BEST, 0, p] = best
                            s_lvl, s_rs, t_lvl = _levels(sh, SA[EPX, 0, p], best, slp, tpp, trp)
                    elif c < best:
                        best = c
                        SA[BEST, 0, p] = best
                        s_lvl, s_rs, t_lvl = _levels(sh, SA[EPX, 0, p], best, slp, tpp, trp)
                if do_ret:
                    rec_ret[i, p] = r
                if do_eq:
                    rec_eq[i, p] = eq
                eprev = eq
                # 5. targets decided at this close
                w = _target(pos, i, t, 0, p, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry,
                            raw)
                if w != w:
                    w = 0.0
                elif w > mp:
                    w = mp
                elif w < -mp:
                    w = -mp
                if abs(w) > lev:
                    w = w * (lev / abs(w))
                pend = w
            S[CASH, p] = cash
            S[EQ_PREV, p] = eprev
            S[PEAK, p] = peak
            S[INV_PEAK, p] = invpeak
            S[LAST_PEAK_T, p] = lp
            S[TROUGH, p] = trough
            S[MAX_DD, p] = maxdd
            S[MAX_DD_DUR, p] = maxddur
            S[SUM_R, p] = sr
            S[SUM_R2, p] = sr2
            S[SUM_D2, p] = sd2
            S[EXPO, p] = expo
            S[RUINED, p] = 1.0 if ruined else 0.0
            SA[PEND, 0, p] = pend
# fmt: on


G = 8  # parameter sets per group of the fast kernel


@njit(parallel=True, cache=True, error_model="numpy")
def run_block_multi(
    t0,
    B,
    pos,
    sk,
    so,
    X0,
    X1,
    X2,
    I1,
    I2,
    F1,
    F2,
    ssc,
    slo,
    carry,
    raw,
    op,
    hi,
    lo,
    cl,
    vol,
    mask,
    fund,
    has_fund,
    maxpos,
    lev,
    fee_r,
    slip_r,
    imp_k,
    imp_a,
    imp_max,
    lot,
    mnot,
    sl,
    tp,
    tr,
    has_stops,
    fill_close,
    S,
    SA,
    rec_ret,
    rec_eq,
    rec_pos,
    rec_on,
    offs,
    RF,
    RI,
):
    """The general kernel: every parameter set in parallel (see :func:`_multi_param`)."""
    for p in prange(S.shape[1]):
        # prange's index is unsigned: cast it, so the callee compiles once for the int64 that
        # its serial callers (the paper exchange) pass too
        _multi_param(
            np.int64(p),
            t0,
            B,
            pos,
            sk,
            so,
            X0,
            X1,
            X2,
            I1,
            I2,
            F1,
            F2,
            ssc,
            slo,
            carry,
            raw,
            op,
            hi,
            lo,
            cl,
            vol,
            mask,
            fund,
            has_fund,
            maxpos,
            lev,
            fee_r,
            slip_r,
            imp_k,
            imp_a,
            imp_max,
            lot,
            mnot,
            sl,
            tp,
            tr,
            has_stops,
            fill_close,
            S,
            SA,
            rec_ret,
            rec_eq,
            rec_pos,
            rec_on,
            offs,
            RF,
            RI,
        )


@njit(parallel=True, cache=True, error_model="numpy")
def run_block_single(t0, B, pos, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw,
                     op, hi, lo, cl, vol, mask, maxpos, lev, fee_r, slip_r, imp_k, imp_a, imp_max,
                     lot, mnot, sl, tp, tr, has_stops, S, SA, rec_ret, rec_eq, rec_on, offs, RF,
                     RI):  # fmt: skip
    """The fast one-asset kernel: groups of ``G`` parameter sets in parallel."""
    for g in prange((S.shape[1] + G - 1) // G):
        _single_group(np.int64(g), t0, B, pos, sk, so, X0, X1, X2, I1, I2, F1, F2, ssc, slo, carry, raw,
                      op, hi, lo, cl, vol, mask, maxpos, lev, fee_r, slip_r, imp_k, imp_a,
                      imp_max, lot, mnot, sl, tp, tr, has_stops, S, SA, rec_ret, rec_eq, rec_on,
                      offs, RF, RI)  # fmt: skip


def _fused_variant(disp: Any, name: str, **globs: Any) -> Any:
    """``disp`` (a Numba dispatcher of this module) compiled again with the module globals
    ``globs`` replaced, under its own name (and so its own entry in Numba's cache)."""
    fn = disp.py_func
    g = dict(fn.__globals__)
    g.update(globs)
    f = types.FunctionType(fn.__code__, g, name, fn.__defaults__, fn.__closure__)
    f.__qualname__ = name
    f.__doc__ = fn.__doc__
    opts = {k: v for k, v in disp.targetoptions.items() if k != "nopython"}
    return njit(cache=True, **opts)(f)


_process_row_fused = _fused_variant(_process_row, "_process_row_fused", _target=_target_fused)
_multi_param_fused = _fused_variant(
    _multi_param, "_multi_param_fused", _process_row=_process_row_fused, _advance=_advance_fused
)
_single_group_fused = _fused_variant(
    _single_group, "_single_group_fused", _target=_target_fused, _advance=_advance_fused
)
run_block_multi_fused = _fused_variant(
    run_block_multi, "run_block_multi_fused", _multi_param=_multi_param_fused
)
run_block_single_fused = _fused_variant(
    run_block_single, "run_block_single_fused", _single_group=_single_group_fused
)

#: tests set this to run the general kernel where the fast one would run
FORCE_GENERAL = False

_NO_X0 = np.zeros((1, 1), np.float64)
_NO_X = np.zeros((1, 1, 1), np.float64)
_NO_I = np.zeros(1, np.int64)
_NO_F = np.zeros(1, np.float64)
_NO_C = np.zeros((1, 1), np.float32)
#: the signal arguments of the block path (no fused rule)
NO_SIGNAL = (0, 0, _NO_X0, _NO_X, _NO_X, _NO_I, _NO_I, _NO_F, _NO_F, 0.0, False, _NO_C, _NO_C)


def _dispatch(t0, B, pos, sig, filt, op, hi, lo, cl, vol, mask, fund, has_fund, maxpos, lev,
              fee_r, slip_r, imp_k, imp_a, imp_max, sl, tp, tr, has_stops, fill_close, S, SA,
              rec_ret, rec_eq, rec_pos, rec_on, offs, RF, RI):  # fmt: skip
    if filt is None:
        lot = mnot = np.zeros(SA.shape[1])
    else:
        lot, mnot = filt
    fast = (
        SA.shape[1] == 1
        and not (has_fund or fill_close or rec_pos.shape[0] > 0)
        and not FORCE_GENERAL
    )
    fused = sig[0] != 0
    if fast:
        return (run_block_single_fused if fused else run_block_single)(
            t0, B, pos, *sig, op, hi, lo, cl, vol, mask, maxpos, lev, fee_r, slip_r, imp_k,
            imp_a, imp_max, lot, mnot, sl, tp, tr, has_stops, S, SA, rec_ret, rec_eq, rec_on,
            offs, RF, RI,
        )  # fmt: skip
    if pos.dtype != np.float64:
        pos = pos.astype(np.float64)
    return (run_block_multi_fused if fused else run_block_multi)(
        t0, B, pos, *sig, op, hi, lo, cl, vol, mask, fund, has_fund, maxpos, lev, fee_r,
        slip_r, imp_k, imp_a, imp_max, lot, mnot, sl, tp, tr, has_stops, fill_close, S, SA,
        rec_ret, rec_eq, rec_pos, rec_on, offs, RF, RI,
    )  # fmt: skip


def run_block(t0, pos, *rest, filters=None):
    """Replay one block of target weights ``pos`` ``(B, A, P)`` (the other arguments as
    :func:`run_block_multi`'s after the signal ones): the fast one-asset kernel when it
    applies (one asset, ``fill="open"``, no funding, positions not recorded; float32 or
    float64 weights), else the general one (float64 weights: float32 blocks are converted,
    so it is compiled once)."""
    return _dispatch(t0, pos.shape[0], pos, NO_SIGNAL, filters, *rest)


def run_block_fused(t0, B, sig, *rest, filters=None):
    """Replay bars ``[t0, t0 + B)`` computing the targets with the fused rule ``sig``: the
    tuple ``(kind, offset, X0, X1, X2, I1, I2, F1, F2, scale, long_only, carry, raw)`` of a
    :class:`~quantarena.engine.fused.FusedSignal` (``carry`` and ``raw`` are updated
    in place). Same kernels, same dispatch as :func:`run_block`."""
    return _dispatch(t0, B, _NO_X, sig, filters, *rest)  # the block argument is never read
