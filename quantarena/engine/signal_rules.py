"""The shipped agents' per-bar signal rules (Numba, inlined into the kernels that use them).

One source of truth: the agents' block kernels (:mod:`quantarena.strategies.kernels`) and
the engine's fused kernel (:mod:`quantarena.engine.kernels_cpu`) call the same inlined rule
functions below, so a fused replay and a generic one (target blocks built, then replayed)
see bit-identical targets. Each rule maps one bar's indicator values (and, for the
path-dependent rules, the position carried from the previous bar) to a target weight
rounded to float32 — the dtype of the agents' target blocks.

:func:`fused_value` evaluates the rule a :class:`~quantarena.engine.fused.FusedSignal`
names (its ``kind``) on its time-last indicators.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from quantarena.engine.fused import KIND_CROSS, KIND_DONCHIAN, KIND_ZSCORE


@njit(cache=True, inline="always")
def cross_rule(f, s, pos32, neg32):  # pragma: no cover - compiled
    """Crossover: ``pos32`` where the fast MA ``f`` > the slow MA ``s``, ``neg32`` where below,
    0 when equal or NaN. Branch-free (float32)."""
    return pos32 * np.float32(f > s) + neg32 * np.float32(f < s)


@njit(cache=True, inline="always")
def zscore_rule(v, cur, entry, exit_, long_only):  # pragma: no cover - compiled
    """Mean-reversion hysteresis: the position (-1, 0, +1) after a bar with z-score ``v``,
    ``cur`` the position before it."""
    cur = np.float64(cur)
    if not np.isfinite(v):
        cur = 0.0
    elif v > entry:
        cur = 0.0 if long_only else -1.0
    elif v < -entry:
        cur = 1.0
    elif abs(v) < exit_:
        cur = 0.0
    return cur


@njit(cache=True, inline="always")
def donchian_rule(c, eh, el, xh, xl, cur, long_only):  # pragma: no cover - compiled
    """Donchian breakout: the position (-1, 0, +1) after a bar closing at ``c`` with entry
    channel ``eh``/``el`` and exit channel ``xh``/``xl`` (prior bars), ``cur`` before it."""
    cur = np.float64(cur)
    if not (np.isfinite(c) and np.isfinite(eh) and np.isfinite(el)):
        cur = 0.0
    elif cur == 0.0:
        if c > eh:
            cur = 1.0
        elif c < el:
            cur = -1.0
    elif cur > 0.0:
        if c < el:
            cur = -1.0
        elif c < xl:
            cur = 0.0
    else:
        if c > eh:
            cur = 1.0
        elif c > xh:
            cur = 0.0
    if long_only and cur < 0.0:
        cur = 0.0
    return cur


@njit(cache=True, inline="always")
def voltarget_rule(x, v, target, scale, long_only, prev, band):  # pragma: no cover - compiled
    """Volatility-targeted trend: ``sign(x) * scale * min(1, target / v)`` (float32); NaN
    inputs or ``x == 0`` → 0; ``v == 0`` → full ``scale``; shorts → 0 when ``long_only``.

    Rebalance band: with ``band > 0`` the previous target ``prev`` is kept while the new one
    has the same sign and differs from it by at most ``band * scale`` (so the engine, which
    trades only when a target changes, does not trade); a move to flat or across zero always
    goes through. ``band == 0`` is the plain rule."""
    w = np.float32(0.0)
    if np.isfinite(x) and np.isfinite(v) and x != 0.0:
        f = 1.0
        if v > 0.0:
            f = min(1.0, target / v)
        if x > 0.0:
            w = np.float32(scale * f)
        elif not long_only:
            w = np.float32(-scale * f)
    if band > 0.0 and w != 0.0 and prev != 0.0 and (w > 0.0) == (prev > 0.0):
        if abs(np.float64(w) - np.float64(prev)) <= band * scale:
            w = np.float32(prev)
    return w


@njit(cache=True, inline="always")
def fused_value(
    kind, t, a, p, X0, X1, X2, I1, I2, F1, F2, scale, long_only, carry
):  # pragma: no cover
    """The target (float32) of parameter set ``p``, asset ``a``, at indicator row ``t``
    (``X*`` time-last, see :class:`FusedSignal`); path-dependent rules update ``carry``."""
    if kind == KIND_CROSS:
        pos32 = np.float32(scale)
        neg32 = np.float32(0.0) if long_only else np.float32(-scale)
        return cross_rule(X1[a, I1[p], t], X1[a, I2[p], t], pos32, neg32)
    if kind == KIND_ZSCORE:
        cur = zscore_rule(X1[a, I1[p], t], carry[a, p], F1[p], F2[p], long_only)
        carry[a, p] = cur
        return np.float32(cur * scale)
    if kind == KIND_DONCHIAN:
        j = I1[p]
        k = I2[p]
        cur = donchian_rule(
            X0[a, t], X1[a, j, t], X2[a, j, t], X1[a, k, t], X2[a, k, t], carry[a, p], long_only
        )
        carry[a, p] = cur
        return np.float32(cur * scale)
    # KIND_VOLTARGET
    w = voltarget_rule(X1[a, I1[p], t], X2[a, I2[p], t], F1[p], scale, long_only, carry[a, p],
                       F2[p])  # fmt: skip
    carry[a, p] = w
    return w


def stamp() -> str:
    """A short hash of this file and of :mod:`quantarena.engine.fused` (whose kind numbers
    are compiled in): the kernels compiled from the rules check it, as they check
    :func:`quantarena.engine.layout.stamp`, since Numba's cache sees only the caller's file."""
    import hashlib  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    here = Path(__file__)
    data = here.read_bytes() + (here.parent / "fused.py").read_bytes()
    return hashlib.sha1(data).hexdigest()[:12]
