"""Fused signal + replay: :class:`FusedSignal`, an agent's targets as a rule the bar engine
evaluates inside its replay loop (CPU), instead of target blocks built and then replayed.

A :class:`FusedSignal` names a rule (``kind``, one of :data:`KINDS`; the rules are in
:mod:`quantarena.engine.signal_rules`) and the shared indicators it reads, laid out time-last
(``(A, W, T)``) so that a parameter set's replay streams its own columns. The engine never
imports the agents: a shipped agent builds its :class:`FusedSignal` (``Agent.fused``) and the
engine only runs the rule. No Numba here (importing this module is cheap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
        finish: called after a replay with ``(carry, raw, t_end)``: the rule's state and the
            raw targets (``(A, P)`` float32) at indicator row ``t_end - 1``, the replay's last
            bar; lets the agent continue from there.
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
    s = np.asarray(stack)
    if s.ndim == 2:
        s = s[:, None, :]
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    from quantarena.engine.transpose import time_last_copy  # Numba: loaded on first use

    return time_last_copy(s)


def empty_x0() -> np.ndarray:
    return np.zeros((1, 1), np.float64)


def empty_x() -> np.ndarray:
    return np.zeros((1, 1, 1), np.float64)
