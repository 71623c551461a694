"""Numba kernels (CPU) behind the indicators and the agents' signals.

Imported lazily (first use) so that importing :mod:`quantarena.strategies` stays cheap.
All kernels are compiled with ``cache=True``; none uses ``fastmath`` (results are exact
IEEE arithmetic, identical run to run and for any prefix of the data).

Layouts:

* indicator stacks are ``(T, C, W)`` float64: time, column (asset), window;
* signal blocks are ``(n, A, P)`` float32 (``n = t1 - t0`` bars) written in place;
* carried positions of path-dependent agents are ``(A, P)`` float32.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

from quantarena.engine.signal_rules import cross_rule, donchian_rule, voltarget_rule, zscore_rule
from quantarena.engine.signal_rules import stamp as _rules_stamp

# Numba's on-disk cache is keyed on this file alone, yet the rules are inlined into the
# kernels below: a change in signal_rules.py must change this file too, hence this stamp.
_RULES_STAMP = "57f8cf5d9fca"
if _rules_stamp() != _RULES_STAMP:  # pragma: no cover - guards future edits
    raise RuntimeError(
        f"quantarena/engine/signal_rules.py changed: set _RULES_STAMP = {_rules_stamp()!r} in "
        "strategies/kernels.py and in engine/kernels_cpu.py (this also invalidates Numba's cache)"
    )

# ------------------------------------------------------------------------------ indicators


@nb.njit(cache=True, nogil=True)
def _window_moments(x, c, t, w):  # pragma: no cover - compiled
    """Exact two-pass mean and sum of squared deviations of x[t-w+1..t, c]."""
    s = 0.0
    for i in range(t - w + 1, t + 1):
        s += x[i, c]
    m = s / w
    m2 = 0.0
    for i in range(t - w + 1, t + 1):
        d = x[i, c] - m
        m2 += d * d
    return m, m2


GROUP = 8  # windows handled together by one task: their outputs share cache lines


@nb.njit(cache=True, parallel=True)
def rolling_moments(x, windows, ddof, want_std, mean_out, std_out):  # pragma: no cover
    """Rolling mean (and std) of each column of ``x`` (T, C) for each window.

    Add/remove (Welford-style) updates with an exact two-pass recompute every
    ``max(1024, w)`` rows bound the rounding drift; a window of identical values has std
    exactly 0. Rows before the window is full, or whose window holds a non-finite value,
    are NaN. Parallel over (column, group of 8 windows).
    """
    T, C = x.shape
    W = windows.shape[0]
    ng = (W + GROUP - 1) // GROUP
    for k in prange(C * ng):
        c = k // ng
        j0 = (k % ng) * GROUP
        j1 = min(j0 + GROUP, W)
        G = j1 - j0
        bad = np.zeros(G, np.int64)  # non-finite values inside each window
        m = np.zeros(G)
        m2 = np.zeros(G)
        fresh = np.ones(G, np.bool_)  # state must be recomputed before use
        same = 0  # length of the run of identical values ending at t
        for t in range(T):
            v = x[t, c]
            vok = np.isfinite(v)
            if t > 0 and v == x[t - 1, c]:
                same += 1
            else:
                same = 1
            for g in range(G):
                j = j0 + g
                w = windows[j]
                if not vok:
                    bad[g] += 1
                if t >= w and not np.isfinite(x[t - w, c]):
                    bad[g] -= 1
                if t < w - 1 or bad[g] > 0:
                    mean_out[t, c, j] = np.nan
                    if want_std:
                        std_out[t, c, j] = np.nan
                    fresh[g] = True
                    continue
                if fresh[g] or t % max(1024, w) == 0:
                    mm, mm2 = _window_moments(x, c, t, w)
                    m[g] = mm
                    m2[g] = mm2
                    fresh[g] = False
                else:
                    old = x[t - w, c]
                    m_new = m[g] + (v - old) / w
                    m2[g] = m2[g] + (v - old) * (v - m_new + old - m[g])
                    m[g] = m_new
                mean_out[t, c, j] = m[g]
                if want_std:
                    if w - ddof <= 0:
                        std_out[t, c, j] = np.nan
                    elif same >= w:
                        std_out[t, c, j] = 0.0
                    else:
                        var = m2[g] / (w - ddof)
                        std_out[t, c, j] = np.sqrt(var) if var > 0.0 else 0.0


@nb.njit(cache=True, parallel=True)
def sma_stack(x, windows, out):  # pragma: no cover - compiled
    """Simple moving average of each column of ``x`` (T, C) for each window → out (T, C, W).

    Running sums of the series centred on its first finite value (causal), refreshed by an
    exact sum every ``max(1024, w)`` rows so rounding cannot drift; NaN before the window is
    full or while it holds a non-finite value. Parallel over (column, group of 8 windows).
    """
    T, C = x.shape
    W = windows.shape[0]
    ng = (W + GROUP - 1) // GROUP
    for k in prange(C * ng):
        c = k // ng
        j0 = (k % ng) * GROUP
        j1 = min(j0 + GROUP, W)
        G = j1 - j0
        x0 = 0.0
        for t in range(T):
            if np.isfinite(x[t, c]):
                x0 = x[t, c]
                break
        s = np.zeros(G)
        bad = np.zeros(G, np.int64)
        fresh = np.ones(G, np.bool_)
        for t in range(T):
            v = x[t, c]
            vok = np.isfinite(v)
            for g in range(G):
                j = j0 + g
                w = windows[j]
                if not vok:
                    bad[g] += 1
                old_ok = True
                if t >= w:
                    old_ok = np.isfinite(x[t - w, c])
                    if not old_ok:
                        bad[g] -= 1
                if t < w - 1 or bad[g] > 0:
                    out[t, c, j] = np.nan
                    fresh[g] = True
                    continue
                if fresh[g] or t % max(1024, w) == 0:
                    acc = 0.0
                    for i in range(t - w + 1, t + 1):
                        acc += x[i, c] - x0
                    s[g] = acc
                    fresh[g] = False
                else:
                    s[g] += v - x[t - w, c]
                out[t, c, j] = s[g] / w + x0


@nb.njit(cache=True, parallel=True)
def ema_stack(x, windows, out):  # pragma: no cover - compiled
    """EMA (alpha = 2/(w+1)) of each column for each window, seeded with the simple mean of
    the first ``w`` finite values; a non-finite input restarts the seeding."""
    T, C = x.shape
    W = windows.shape[0]
    for k in prange(C * W):
        c = k // W
        j = k % W
        w = windows[j]
        a = 2.0 / (w + 1.0)
        run = 0
        acc = 0.0
        e = np.nan
        for t in range(T):
            v = x[t, c]
            if not np.isfinite(v):
                run = 0
                acc = 0.0
                e = np.nan
                out[t, c, j] = np.nan
            elif run < w:
                run += 1
                acc += v
                if run == w:
                    e = acc / w
                    out[t, c, j] = e
                else:
                    out[t, c, j] = np.nan
            else:
                e = a * v + (1.0 - a) * e
                out[t, c, j] = e


@nb.njit(cache=True, nogil=True)
def _sma_row_finite(x, c, w, o):  # pragma: no cover - compiled
    """``sma_time_last``'s row for a column ``c`` of ``x`` with no NaN: NaN for rows before
    the window is full, then the running sum (refreshed by an exact sum every
    ``max(1024, w)`` rows) — what the general loop computes when nothing is NaN."""
    T = x.shape[0]
    period = max(1024, w)
    lim = min(w - 1, T)
    for t in range(lim):
        o[t] = np.nan
    if T == 0 or w - 1 >= T:
        return
    x0 = x[0, c]
    t = w - 1
    phase = t % period
    acc = 0.0
    for i in range(0, w):  # the first full window: an exact sum
        acc += x[i, c] - x0
    s = acc
    o[t] = s / w + x0
    for t in range(w, T):
        phase += 1
        if phase == period:
            phase = 0
        if phase == 0:
            acc = 0.0
            for i in range(t - w + 1, t + 1):
                acc += x[i, c] - x0
            s = acc
        else:
            s += x[t, c] - x[t - w, c]
        o[t] = s / w + x0


@nb.njit(cache=True, parallel=True)
def sma_time_last(x, windows, out):  # pragma: no cover - compiled
    """:func:`sma_stack` written time-last: out (C, W, T), ``out[c, j]`` the ``windows[j]``-bar
    SMA of column ``c``. The same operations per (column, window), so the values equal
    ``sma_stack``'s bit for bit; each task writes one contiguous row (no transpose needed by
    the fused kernels, which read this layout). Parallel over (column, window); a column
    without NaN takes a loop free of the NaN bookkeeping (the same operations on its rows)."""
    T, C = x.shape
    W = windows.shape[0]
    finite = np.ones(C, np.bool_)
    for c in range(C):
        for t in range(T):
            if not np.isfinite(x[t, c]):
                finite[c] = False
                break
    for k in prange(C * W):
        c = k // W
        j = k % W
        w = windows[j]
        o = out[c, j]
        if finite[c]:
            _sma_row_finite(x, c, w, o)
            continue
        x0 = 0.0
        for t in range(T):
            if np.isfinite(x[t, c]):
                x0 = x[t, c]
                break
        s = 0.0
        bad = 0
        fresh = True
        period = max(1024, w)
        phase = -1  # t % period, kept by counting (no division per row)
        for t in range(T):
            phase += 1
            if phase == period:
                phase = 0
            v = x[t, c]
            if not np.isfinite(v):
                bad += 1
            if t >= w:
                if not np.isfinite(x[t - w, c]):
                    bad -= 1
            if t < w - 1 or bad > 0:
                o[t] = np.nan
                fresh = True
                continue
            if fresh or phase == 0:
                acc = 0.0
                for i in range(t - w + 1, t + 1):
                    acc += x[i, c] - x0
                s = acc
                fresh = False
            else:
                s += v - x[t - w, c]
            o[t] = s / w + x0


@nb.njit(cache=True, parallel=True)
def ema_time_last(x, windows, out):  # pragma: no cover - compiled
    """:func:`ema_stack` written time-last: out (C, W, T); the same values bit for bit."""
    T, C = x.shape
    W = windows.shape[0]
    for k in prange(C * W):
        c = k // W
        j = k % W
        w = windows[j]
        o = out[c, j]
        a = 2.0 / (w + 1.0)
        run = 0
        acc = 0.0
        e = np.nan
        for t in range(T):
            v = x[t, c]
            if not np.isfinite(v):
                run = 0
                acc = 0.0
                e = np.nan
                o[t] = np.nan
            elif run < w:
                run += 1
                acc += v
                if run == w:
                    e = acc / w
                    o[t] = e
                else:
                    o[t] = np.nan
            else:
                e = a * v + (1.0 - a) * e
                o[t] = e


@nb.njit(cache=True, parallel=True)
def extreme_stack(x, windows, take_max, out):  # pragma: no cover - compiled
    """Rolling max (``take_max``) or min over rows t-w+1..t of each column for each window
    (van Herk / Gil-Werman: prefix and suffix extremes of w-row blocks, exact). NaN before
    the window is full or when it holds a non-finite value."""
    T, C = x.shape
    W = windows.shape[0]
    for k in prange(C * W):
        c = k // W
        j = k % W
        w = windows[j]
        fill = -np.inf if take_max else np.inf
        g = np.empty(T)
        h = np.empty(T)
        for b0 in range(0, T, w):
            b1 = min(b0 + w, T)
            acc = fill
            for t in range(b0, b1):
                v = x[t, c]
                if np.isfinite(v):
                    if take_max:
                        acc = max(acc, v)
                    else:
                        acc = min(acc, v)
                g[t] = acc
            acc = fill
            for t in range(b1 - 1, b0 - 1, -1):
                v = x[t, c]
                if np.isfinite(v):
                    if take_max:
                        acc = max(acc, v)
                    else:
                        acc = min(acc, v)
                h[t] = acc
        bad = 0
        for t in range(T):
            if not np.isfinite(x[t, c]):
                bad += 1
            if t >= w and not np.isfinite(x[t - w, c]):
                bad -= 1
            if t < w - 1 or bad > 0:
                out[t, c, j] = np.nan
            else:
                a = h[t - w + 1]
                b = g[t]
                out[t, c, j] = max(a, b) if take_max else min(a, b)


# ---------------------------------------------------------------------------------- signals
# Each block kernel applies a rule of :mod:`quantarena.engine.signal_rules` (the same inlined
# code the engine's fused replay runs), so blocks and fused replays agree bit for bit.


@nb.njit(cache=True, parallel=True)
def cross_block(ma, fi, si, scale, long_only, t0, t1, out):  # pragma: no cover - compiled
    """Moving-average crossover: out[t-t0, a, p] = +scale where ma[t, a, fi[p]] >
    ma[t, a, si[p]], -scale (0 if long_only) where below, 0 when equal or NaN."""
    A = ma.shape[1]
    P = fi.shape[0]
    n = t1 - t0
    pos = np.float32(scale)
    neg = np.float32(0.0) if long_only else np.float32(-scale)
    for k in prange(n * A):
        i = k // A
        a = k % A
        row = ma[t0 + i, a]
        o = out[i, a]
        for p in range(P):
            o[p] = cross_rule(row[fi[p]], row[si[p]], pos, neg)


@nb.njit(cache=True, parallel=True)
def zscore_block(z, wi, entry, exit_, scale, long_only, t0, t1, carry, out):  # pragma: no cover
    """Mean reversion with hysteresis, sequential in time, parallel over parameter chunks.

    For each bar: z > entry → short (-1), z < -entry → long (+1), |z| < exit → flat,
    otherwise keep the previous position; NaN z → flat. ``carry`` (A, P) holds the position
    at bar t0-1 on entry and at t1-1 on return. Output = position * scale.
    """
    A = z.shape[1]
    P = wi.shape[0]
    n = t1 - t0
    CH = 64
    nch = (P + CH - 1) // CH
    for k in prange(A * nch):
        a = k // nch
        p0 = (k % nch) * CH
        p1 = min(p0 + CH, P)
        for i in range(n):
            row = z[t0 + i, a]
            for p in range(p0, p1):
                cur = zscore_rule(row[wi[p]], carry[a, p], entry[p], exit_[p], long_only)
                carry[a, p] = cur
                out[i, a, p] = np.float32(cur * scale)


@nb.njit(cache=True, parallel=True)
def donchian_block(close, hi, lo, wi, ei, scale, long_only, t0, t1, carry, out):  # pragma: no cover
    """Donchian breakout, sequential in time, parallel over parameter chunks.

    ``hi[t, a, j]`` / ``lo[t, a, j]`` are the highest high / lowest low of the PRIOR
    ``window_j`` bars (rows t-w .. t-1). Flat: close > entry-high → long, close < entry-low
    → short. Long: close < entry-low → short, else close < exit-low → flat. Short mirrors.
    NaN channels or close → flat. ``carry`` (A, P) as in :func:`zscore_block`.
    """
    A = close.shape[1]
    P = wi.shape[0]
    n = t1 - t0
    CH = 64
    nch = (P + CH - 1) // CH
    for k in prange(A * nch):
        a = k // nch
        p0 = (k % nch) * CH
        p1 = min(p0 + CH, P)
        for i in range(n):
            t = t0 + i
            c = close[t, a]
            hrow = hi[t, a]
            lrow = lo[t, a]
            for p in range(p0, p1):
                cur = donchian_rule(c, hrow[wi[p]], lrow[wi[p]], hrow[ei[p]], lrow[ei[p]],
                                    carry[a, p], long_only)  # fmt: skip
                carry[a, p] = cur
                out[i, a, p] = np.float32(cur * scale)


@nb.njit(cache=True, parallel=True)
def voltarget_block(
    ret, vol, li, vi, target, band, scale, long_only, t0, t1, carry, out
):  # pragma: no cover
    """Volatility-targeted trend: out = sign(ret[t, a, li[p]]) * scale *
    min(1, target[p] / vol[t, a, vi[p]]); NaN inputs or a zero return → 0; zero vol → full
    ``scale``; negative sign → 0 when long_only. With ``band[p] > 0`` the previous target
    (``carry`` (A, P), as in :func:`zscore_block`) is kept while the new one moves by at most
    ``band * scale`` without changing sign (:func:`~quantarena.engine.signal_rules.voltarget_rule`)."""
    A = ret.shape[1]
    P = li.shape[0]
    n = t1 - t0
    CH = 64
    nch = (P + CH - 1) // CH
    for k in prange(A * nch):
        a = k // nch
        p0 = (k % nch) * CH
        p1 = min(p0 + CH, P)
        for i in range(n):
            r = ret[t0 + i, a]
            s = vol[t0 + i, a]
            for p in range(p0, p1):
                w = voltarget_rule(r[li[p]], s[vi[p]], target[p], scale, long_only, carry[a, p],
                                   band[p])  # fmt: skip
                carry[a, p] = w
                out[i, a, p] = w
