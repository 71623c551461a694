"""The CSCV loop of :func:`quantarena.tournaments.overfitting.pbo` for its built-in metrics, in
one compiled pass (imported by ``pbo`` when first needed: Numba loads on demand).

For each of the C = binom(S, S/2) combinations of S/2 in-sample blocks (rows of ``combos``,
in :func:`itertools.combinations` order, so combination ``C − 1 − c`` is the complement of
``c``: its in-sample blocks are ``c``'s out-of-sample ones), the metric of every
configuration over the blocks of ``c`` is computed once, from per-block sums, and serves both
as ``c``'s in-sample metric and as the complement's out-of-sample one. Per combination it
keeps the in-sample best configuration and its relative out-of-sample rank; no
(combinations × configurations) matrix is built.

Arithmetic: the block sums of a combination are added in block order starting from 0.0, the
metric as in ``pbo``'s NumPy formula (mean = Σ/h, centred variance max(Σ² − h·m_c², 0)/(h − 1),
Sharpe = mean/std with the :func:`~quantarena.tournaments.overfitting._safe_sharpe`
conventions). A NaN metric counts as −inf (the worst), in-sample ties go to the lowest column,
out-of-sample ties get the average rank.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["cscv_select"]


@njit(cache=True, nogil=True, error_model="numpy")
def _metric_row(
    blocks: np.ndarray,
    s0: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    half: float,
    sharpe: bool,
    out: np.ndarray,
) -> None:
    n = s0.shape[1]
    for j in range(n):
        a = 0.0
        b = 0.0
        c = 0.0
        for k in blocks:
            a += s0[k, j]
            b += s1[k, j]
            c += s2[k, j]
        mean = a / half
        if not sharpe:
            out[j] = mean
            continue
        mc = b / half
        var = c - half * (mc * mc)
        if var < 0.0:  # np.maximum(var, 0.0) (a NaN stays NaN)
            var = 0.0
        std = np.sqrt(var / (half - 1.0))
        scale = abs(mean)
        if scale < 1e-300:  # np.maximum(|mean|, 1e-300) (a NaN stays NaN)
            scale = 1e-300
        if std > 1e-14 * scale:
            out[j] = mean / std
        elif mean == 0.0:
            out[j] = 0.0  # flat, no mean: an idle configuration
        else:
            out[j] = np.nan


@njit(cache=True, nogil=True, error_model="numpy")
def _select(
    is_row: np.ndarray,
    oos_row: np.ndarray,
    c: int,
    best: np.ndarray,
    omega: np.ndarray,
    is_perf: np.ndarray,
    oos_perf: np.ndarray,
) -> None:
    n = is_row.shape[0]
    b = 0
    bv = is_row[0]
    if bv != bv:
        bv = -np.inf
    for j in range(1, n):
        v = is_row[j]
        if v > bv:  # NaN never is
            bv = v
            b = j
    ov = oos_row[b]
    if ov != ov:
        ov = -np.inf
    below = 0
    equal = 0
    for j in range(n):
        w = oos_row[j]
        if w != w:
            w = -np.inf
        if w < ov:
            below += 1
        elif w == ov:
            equal += 1
    best[c] = b
    omega[c] = (below + (equal + 1) / 2.0) / (n + 1)
    is_perf[c] = bv
    oos_perf[c] = ov


@njit(cache=True, nogil=True, error_model="numpy")
def _cscv(
    combos: np.ndarray,
    s0: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    half: float,
    sharpe: bool,
    best: np.ndarray,
    omega: np.ndarray,
    is_perf: np.ndarray,
    oos_perf: np.ndarray,
) -> None:
    n_comb = combos.shape[0]
    n = s0.shape[1]
    row_a = np.empty(n)
    row_b = np.empty(n)
    for c in range(n_comb // 2):
        d = n_comb - 1 - c  # the complement of c
        _metric_row(combos[c], s0, s1, s2, half, sharpe, row_a)
        _metric_row(combos[d], s0, s1, s2, half, sharpe, row_b)
        _select(row_a, row_b, c, best, omega, is_perf, oos_perf)
        _select(row_b, row_a, d, best, omega, is_perf, oos_perf)


def cscv_select(
    masks: np.ndarray, s0: np.ndarray, s1: np.ndarray, s2: np.ndarray, half: int, sharpe: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per combination (row of ``masks``, ``(C, S)`` bool, in-sample blocks; row ``C − 1 − c``
    must be the complement of row ``c``): the in-sample best configuration, its relative
    out-of-sample rank ω̄ in (0, 1), and its in-sample and out-of-sample metric (−inf for
    NaN). ``s0``: ``(S, N)`` per-block sums of the returns; ``s1``, ``s2``: per-block sums of
    the column-centred returns and of their squares; ``half``: rows in S/2 blocks;
    ``sharpe``: the per-period Sharpe ratio (else the mean). Holds O(N) memory beyond the
    outputs, whatever C."""
    n_comb = masks.shape[0]
    if n_comb % 2 or not np.array_equal(masks[::-1], ~masks):
        raise ValueError("masks: row C - 1 - c must be the complement of row c")
    combos = np.ascontiguousarray(np.nonzero(masks)[1].reshape(n_comb, -1), dtype=np.int64)
    best = np.empty(n_comb, dtype=np.int64)
    omega = np.empty(n_comb)
    is_perf = np.empty(n_comb)
    oos_perf = np.empty(n_comb)
    f64 = np.float64
    _cscv(
        combos,
        np.ascontiguousarray(s0, dtype=f64),
        np.ascontiguousarray(s1, dtype=f64),
        np.ascontiguousarray(s2, dtype=f64),
        float(half),
        bool(sharpe),
        best,
        omega,
        is_perf,
        oos_perf,
    )
    return best, omega, is_perf, oos_perf
