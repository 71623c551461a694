"""The shipped agents' per-bar signal rules, and :class:`FusedSignal`, which lets the bar
engine compute an agent's targets inside its replay loop.

One source of truth: the agents' block kernels (:mod:`quantarena.strategies.kernels`) and
the engine's fused kernel (:mod:`quantarena.engine.kernels_cpu`) call the same inlined rule
functions below, so a fused replay and a generic one (target blocks built, then replayed)
see bit-identical targets. Each rule maps one bar's indicator values (and, for the
path-dependent rules, the position carried from the previous bar) to a target weight
rounded to float32 — the dtype of the agents' target blocks.

A :class:`FusedSignal` names a rule (``kind``) and the shared indicators it reads, laid out
time-last (``(A, W, T)``) so that a parameter set's replay streams its own columns. The
engine never imports the agents: an agent builds its :class:`FusedSignal`
(``Agent.fused``) and the engine only runs the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit

#: ``FusedSignal.kind`` values (0 means: no fused rule, targets come from blocks)
KIND_BLOCKS = 0
KIND_CROSS = 1
KIND_ZSCORE = 2
KIND_DONCHIAN = 3
KIND_VOLTARGET = 4
KINDS = {
    "cross": KIND_CROSS,
    "zscore": KIND_ZSCORE,
    "donchian": KIND_DONCHIAN,
    "voltarget": KIND_VOLTARGET,
}


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


@dataclass
class FusedSignal:
    """An agent's targets as a rule the engine evaluates bar by bar (CPU backend).

    Attributes:
        kind: one of :data:`KINDS`' values.
        offset: indicator row of the replay's first bar (``bars[0]``).
        x0: ``(A, T')`` float64 per-asset series (Donchian: the close), or ``(1, 1)``.
        x1, x2: ``(A, W, T')`` float64 indicator stacks, time last, or ``(1, 1, 1)``.
        i1, i2: ``(P,)`` int64 columns of ``x1`` / ``x2`` each set reads.
        f1, f2: ``(P,)`` float64 per-set numbers (thresholds, targets, bands).
        scale: the agent's ``max_position`` (the size of a full signal).
        long_only: shorts become flat.
        carry: ``(A, P)`` float32 state of path-dependent rules at the bar before ``bars[0]``
            (position -1/0/+1, or the last target for vol-target's band); zeros otherwise.
        finish: called after a replay with ``(carry, raw)``: the state and the raw targets
            (``(A, P)`` float32) of the replay's last bar; lets the agent continue from there.
    """

    kind: int
    offset: int
    x0: np.ndarray
    x1: np.ndarray
    x2: np.ndarray
    i1: np.ndarray
    i2: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    scale: float
    long_only: bool
    carry: np.ndarray
    finish: Callable[[np.ndarray, np.ndarray], None] | None = None

    @property
    def n_params(self) -> int:
        return int(self.i1.shape[0])

    @property
    def n_rows(self) -> int:
        """Indicator rows available (``T'``)."""
        return int(self.x1.shape[2]) if self.kind != KIND_DONCHIAN else int(self.x0.shape[1])


def time_last(stack: np.ndarray) -> np.ndarray:
    """``(T, A, W)`` or ``(T, W)`` indicator stack → C-contiguous ``(A, W, T)`` float64."""
    s = np.asarray(stack, dtype=np.float64)
    if s.ndim == 2:
        s = s[:, None, :]
    return np.ascontiguousarray(s.transpose(1, 2, 0))


def empty_x0() -> np.ndarray:
    return np.zeros((1, 1), np.float64)


def empty_x() -> np.ndarray:
    return np.zeros((1, 1, 1), np.float64)


def stamp() -> str:
    """A short hash of this file (the kernels compiled from it check it, as they check
    :func:`quantarena.engine.layout.stamp`: Numba's cache sees only the caller's file)."""
    import hashlib  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    return hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:12]
