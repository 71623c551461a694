"""Overfitting statistics: probabilistic and deflated Sharpe ratios, and PBO by CSCV.

Units: every Sharpe ratio in this module is **per period and not annualised** (mean over
standard deviation of the per-bar or per-day returns the caller passes), because that is the
unit the formulas are derived in. Convert with :func:`annualize_sharpe` /
:func:`deannualize_sharpe` (``SR_ann = SR * sqrt(periods_per_year)``). Variances of Sharpe
ratios (``var_sharpe``) must be in the same per-period units (``V_ann = V * periods_per_year``).

Kurtosis is the *non-excess* (Pearson) kurtosis: 3 for normal returns.

References:
    D. H. Bailey and M. López de Prado (2012), "The Sharpe Ratio Efficient Frontier",
    Journal of Risk 15(2) — the probabilistic Sharpe ratio (PSR).

    D. H. Bailey and M. López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for
    Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
    40(5), 94-107 — the expected maximum Sharpe ratio and the deflated Sharpe ratio (DSR).

    D. H. Bailey, J. M. Borwein, M. López de Prado and Q. J. Zhu (2017), "The Probability of
    Backtest Overfitting", Journal of Computational Finance 20(4), 39-69 — PBO estimated by
    combinatorially symmetric cross-validation (CSCV).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _st

__all__ = [
    "EULER_GAMMA",
    "PBOResult",
    "SharpeStats",
    "annualize_sharpe",
    "deannualize_sharpe",
    "deflated_sharpe",
    "expected_max_sharpe",
    "pbo",
    "probabilistic_sharpe",
    "probabilistic_sharpe_z",
    "sharpe_ratio",
    "sharpe_stats",
    "sharpe_std",
    "trials_sharpe_variance",
]

#: The Euler–Mascheroni constant γ ≈ 0.5772.
EULER_GAMMA = float(np.euler_gamma)


class SharpeStats(NamedTuple):
    """What the PSR/DSR formulas need of a return series (scalars, or arrays over columns).

    Attributes:
        sr: per-period (non-annualised) Sharpe ratio, mean / std (ddof=1).
        n_obs: number of return observations T.
        skew: sample skewness γ3 (biased moment estimator, as ``scipy.stats.skew``).
        kurt: sample non-excess kurtosis γ4 (3 for normal; ``scipy.stats.kurtosis(fisher=False)``).
    """

    sr: float | np.ndarray
    n_obs: int | np.ndarray
    skew: float | np.ndarray = 0.0
    kurt: float | np.ndarray = 3.0


def _scalar(x: np.ndarray) -> float | np.ndarray:
    x = np.asarray(x)
    return float(x) if x.ndim == 0 else x


def _safe_sharpe(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """mean/std with the convention: zero variance and zero mean → 0 (an idle agent),
    zero variance and non-zero mean → NaN (undefined)."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = mean / std
    # std may come out as a few ulps instead of exactly 0 for a constant series
    flat = ~(std > 1e-14 * np.maximum(np.abs(mean), 1e-300))
    return np.where(flat, np.where(mean == 0, 0.0, np.nan), sr)


def sharpe_ratio(returns: ArrayLike, axis: int = 0) -> float | np.ndarray:
    """Per-period (non-annualised) Sharpe ratio ``mean / std`` (ddof=1) along ``axis``.

    Returns are simple per-period excess returns (subtract the risk-free rate first if it is
    not negligible). A series with zero variance has Sharpe 0 if its mean is 0 (an agent that
    never traded), NaN otherwise. NaN returns propagate.
    """
    r = np.asarray(returns, dtype=np.float64)
    return _scalar(_safe_sharpe(r.mean(axis=axis), r.std(axis=axis, ddof=1)))


def sharpe_stats(returns: ArrayLike, axis: int = 0) -> SharpeStats:
    """The :class:`SharpeStats` of ``returns`` along ``axis`` (vectorised over the others)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[axis] < 2:
        raise ValueError(f"returns need at least 2 observations, got {r.shape[axis]}")
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = _st.skew(r, axis=axis, bias=True)
        kurt = _st.kurtosis(r, axis=axis, fisher=False, bias=True)
    sr = _safe_sharpe(r.mean(axis=axis), r.std(axis=axis, ddof=1))
    flat = sr == 0
    skew = np.where(flat, 0.0, skew)  # moments of a constant series: take the normal ones
    kurt = np.where(flat, 3.0, kurt)
    return SharpeStats(_scalar(sr), r.shape[axis], _scalar(skew), _scalar(kurt))


def _as_stats(x: ArrayLike | SharpeStats) -> SharpeStats:
    if isinstance(x, SharpeStats):
        return x
    if isinstance(x, tuple) and len(x) in (2, 4):
        return SharpeStats(*x)
    return sharpe_stats(x)


def sharpe_std(
    sr: ArrayLike, n_obs: ArrayLike, skew: ArrayLike = 0.0, kurt: ArrayLike = 3.0
) -> float | np.ndarray:
    """Standard error of the per-period Sharpe estimate under non-normal i.i.d. returns
    (Mertens 2002; Bailey & López de Prado 2012, eq. 5):

        σ(SR) = sqrt((1 − γ3·SR + (γ4 − 1)/4 · SR²) / (T − 1))

    NaN where ``T <= 1`` or the bracket is not positive.
    """
    sr = np.asarray(sr, dtype=np.float64)
    t = np.asarray(n_obs, dtype=np.float64)
    g3 = np.asarray(skew, dtype=np.float64)
    g4 = np.asarray(kurt, dtype=np.float64)
    var = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(var / (t - 1.0))
    return _scalar(np.where((t > 1) & (var > 0), out, np.nan))


def probabilistic_sharpe_z(
    returns_or_stats: ArrayLike | SharpeStats, sr_benchmark: ArrayLike = 0.0
) -> float | np.ndarray:
    """The z-statistic of the PSR, ``(SR − SR*) / σ(SR)`` (see :func:`sharpe_std`).

    Unlike the PSR probability it does not saturate at 1, so it ranks strong agents apart.
    ``sr_benchmark`` is per-period.
    """
    s = _as_stats(returns_or_stats)
    se = np.asarray(sharpe_std(s.sr, s.n_obs, s.skew, s.kurt))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.asarray(s.sr, dtype=np.float64) - np.asarray(sr_benchmark)) / se
    return _scalar(z)


def probabilistic_sharpe(
    returns_or_stats: ArrayLike | SharpeStats, sr_benchmark: ArrayLike = 0.0
) -> float | np.ndarray:
    """Probabilistic Sharpe ratio (Bailey & López de Prado, 2012):

        PSR(SR*) = Φ( (SR − SR*) · sqrt(T − 1) / sqrt(1 − γ3·SR + (γ4 − 1)/4 · SR²) )

    the probability that the true Sharpe ratio exceeds ``sr_benchmark`` SR*, given the
    observed per-period SR over T observations with skewness γ3 and kurtosis γ4.

    Args:
        returns_or_stats: per-period returns ``(T,)`` or ``(T, P)`` (one PSR per column), or
            :class:`SharpeStats` / a tuple ``(sr, n_obs[, skew, kurt])``.
        sr_benchmark: SR*, per-period (not annualised).
    """
    z = probabilistic_sharpe_z(returns_or_stats, sr_benchmark)
    return _scalar(_st.norm.cdf(z))


def expected_max_sharpe(
    n_trials: ArrayLike, var_sharpe: ArrayLike, mean_sharpe: ArrayLike = 0.0
) -> float | np.ndarray:
    """Expected maximum of ``n_trials`` Sharpe estimates drawn from N(mean, var)
    (Bailey & López de Prado 2014, eq. 6; "False Strategy" theorem):

        E[max SR] ≈ mean + sqrt(V) · ((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))

    γ is the Euler–Mascheroni constant. Units follow ``var_sharpe`` (per-period V gives a
    per-period result). With ``N = 1`` there is no selection and the result is ``mean``.
    """
    n = np.asarray(n_trials, dtype=np.float64)
    if np.any(n < 1):
        raise ValueError(f"n_trials must be >= 1, got {n_trials!r}")
    v = np.asarray(var_sharpe, dtype=np.float64)
    if np.any(v < 0):
        raise ValueError(f"var_sharpe must be >= 0, got {var_sharpe!r}")
    g = EULER_GAMMA
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (1.0 - g) * _st.norm.ppf(1.0 - 1.0 / n) + g * _st.norm.ppf(1.0 - 1.0 / (n * math.e))
    z = np.where(n > 1, z, 0.0)
    return _scalar(np.asarray(mean_sharpe, dtype=np.float64) + np.sqrt(v) * z)


def deflated_sharpe(
    returns_or_stats: ArrayLike | SharpeStats,
    n_trials: ArrayLike,
    var_trials_sharpe: ArrayLike,
) -> float | np.ndarray:
    """Deflated Sharpe ratio (Bailey & López de Prado 2014, eq. 7-8): the PSR against the
    Sharpe ratio the best of ``n_trials`` skill-less trials would show by luck,

        DSR = PSR(SR0),   SR0 = sqrt(V[SR_n]) · ((1 − γ)Φ⁻¹(1 − 1/N) + γΦ⁻¹(1 − 1/(N·e)))

    i.e. the probability that the selected strategy's true Sharpe is positive after
    correcting for selection among N trials, track length and non-normal returns.

    Args:
        returns_or_stats: per-period returns of the selected strategy ``(T,)`` or ``(T, P)``,
            or :class:`SharpeStats` / ``(sr, n_obs, skew, kurt)`` with per-period ``sr``.
        n_trials: N, the number of (independent) configurations tried.
        var_trials_sharpe: V, the variance of the trials' **per-period** Sharpe ratios
            (annualised variance / periods_per_year); see :func:`trials_sharpe_variance`.

    Returns:
        A probability in [0, 1] (an array for ``(T, P)`` returns).
    """
    sr0 = expected_max_sharpe(n_trials, var_trials_sharpe)
    return probabilistic_sharpe(returns_or_stats, sr0)


def trials_sharpe_variance(returns: ArrayLike) -> float:
    """V[SR_n]: variance (ddof=1) of the per-period Sharpe ratios of the columns of
    ``returns`` ``(T, N)`` (one column per trial). NaN Sharpe ratios are ignored."""
    sr = np.atleast_1d(sharpe_ratio(np.asarray(returns, dtype=np.float64), axis=0))
    sr = sr[np.isfinite(sr)]
    return float(np.var(sr, ddof=1)) if sr.size > 1 else 0.0


def annualize_sharpe(sr: ArrayLike, periods_per_year: float) -> float | np.ndarray:
    """``SR_ann = SR * sqrt(periods_per_year)`` (i.i.d. returns)."""
    return _scalar(np.asarray(sr, dtype=np.float64) * math.sqrt(periods_per_year))


def deannualize_sharpe(sr_ann: ArrayLike, periods_per_year: float) -> float | np.ndarray:
    """``SR = SR_ann / sqrt(periods_per_year)``: the per-period Sharpe the formulas here use."""
    return _scalar(np.asarray(sr_ann, dtype=np.float64) / math.sqrt(periods_per_year))


# --------------------------------------------------------------------------------------
# Probability of backtest overfitting (CSCV)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PBOResult:
    """Result of :func:`pbo`. Arrays have one entry per CSCV combination (C of them).

    Attributes:
        pbo: probability of backtest overfitting, the fraction of combinations whose IS-best
            configuration ranks at or below the OOS median (logit <= 0).
        logits: λ_c = ln(ω̄_c / (1 − ω̄_c)).
        oos_rank: ω̄_c, the IS-best configuration's relative OOS rank in (0, 1)
            (average rank among N, divided by N + 1; higher = better).
        is_best: index of the IS-best configuration per combination.
        is_performance, oos_performance: the metric of that configuration IS and OOS.
        prob_oos_loss: fraction of combinations where the IS-best has an OOS metric < 0.
        degradation_slope, degradation_intercept: least-squares fit
            ``oos_performance ≈ intercept + slope * is_performance`` (the paper's
            "performance degradation"; a negative slope is a warning sign).
        n_combinations, n_splits, block_size, n_dropped: C = binom(S, S/2), S, rows per
            block, and the oldest rows dropped so that S divides the rest.
    """

    pbo: float
    logits: np.ndarray
    oos_rank: np.ndarray
    is_best: np.ndarray
    is_performance: np.ndarray
    oos_performance: np.ndarray
    prob_oos_loss: float
    degradation_slope: float
    degradation_intercept: float
    n_combinations: int
    n_splits: int
    block_size: int
    n_dropped: int


def _combination_masks(n_splits: int) -> np.ndarray:
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)))
    mask = np.zeros((combos.shape[0], n_splits), dtype=bool)
    mask[np.arange(combos.shape[0])[:, None], combos] = True
    return mask


def _relative_rank(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Average rank (1 = lowest) of ``values[c, chosen[c]]`` within row c, over N + 1."""
    v = values[np.arange(values.shape[0]), chosen][:, None]
    below = (values < v).sum(axis=1)
    equal = (values == v).sum(axis=1)
    rank = below + (equal + 1) / 2.0
    return rank / (values.shape[1] + 1)


def _cscv_callable(
    masks: np.ndarray, x: np.ndarray, block: int, metric: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pbo`'s CSCV loop for a user's ``metric`` (called twice per combination):
    per combination the IS-best column, its relative OOS rank and its IS and OOS metric."""
    n_splits, n = masks.shape[1], x.shape[1]
    blocks = x.reshape(n_splits, block, n)
    c = masks.shape[0]
    best = np.empty(c, dtype=np.int64)
    omega = np.empty(c)
    is_best_perf = np.empty(c)
    oos_best_perf = np.empty(c)
    chunk = max(1, 1_000_000 // n)  # bounds memory at a few (chunk, N) float arrays
    for lo in range(0, c, chunk):
        hi = min(c, lo + chunk)
        ms = masks[lo:hi]
        is_m = np.empty((ms.shape[0], n))
        oos_m = np.empty((ms.shape[0], n))
        for k, mk in enumerate(ms):
            is_m[k] = np.asarray(metric(blocks[mk].reshape(-1, n)), dtype=np.float64)
            oos_m[k] = np.asarray(metric(blocks[~mk].reshape(-1, n)), dtype=np.float64)
        is_m = np.where(np.isnan(is_m), -np.inf, is_m)
        oos_m = np.where(np.isnan(oos_m), -np.inf, oos_m)
        b = np.argmax(is_m, axis=1)
        rows = np.arange(hi - lo)
        best[lo:hi] = b
        omega[lo:hi] = _relative_rank(oos_m, b)
        is_best_perf[lo:hi] = is_m[rows, b]
        oos_best_perf[lo:hi] = oos_m[rows, b]
    return best, omega, is_best_perf, oos_best_perf


def pbo(
    perf: ArrayLike,
    n_splits: int = 16,
    metric: Literal["sharpe", "mean"] | Callable[[np.ndarray], np.ndarray] = "sharpe",
) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation
    (Bailey, Borwein, López de Prado & Zhu, 2017).

    1. Drop the oldest ``T mod S`` rows and split the rest of ``perf`` ``(T, N)`` into S
       consecutive blocks of equal size.
    2. For each of the C = binom(S, S/2) ways to pick S/2 blocks as in-sample (the rest,
       in time order, is out-of-sample): pick n* = the configuration with the best IS
       metric, and find its relative OOS rank ω̄ ∈ (0, 1).
    3. λ = ln(ω̄ / (1 − ω̄)); PBO = fraction of combinations with λ <= 0.

    Args:
        perf: ``(T, N)`` per-period returns of N configurations (parameter sets, agents).
        n_splits: S, even, >= 2. C(16, 8) = 12,870 combinations.
        metric: ``"sharpe"`` (per-period mean/std, ddof=1) or ``"mean"`` — both computed
            for all combinations at once from per-block sums — or a callable taking a
            ``(rows, N)`` array and returning ``(N,)`` scores (higher = better), called
            twice per combination.

    A NaN metric counts as the worst. IS ties go to the lowest column index; OOS ties get
    the average rank.
    """
    x = np.asarray(perf, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"perf must be a (T, N) matrix of per-period returns, got shape {x.shape}")
    t, n = x.shape
    if n < 2:
        raise ValueError(f"perf needs at least 2 configurations (columns), got {n}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even number >= 2, got {n_splits}")
    block = t // n_splits
    min_block = 1 if metric == "mean" or callable(metric) else 2
    if block < min_block:
        raise ValueError(
            f"perf has {t} rows: too few for n_splits={n_splits}"
            f" (need at least {min_block * n_splits}) — use fewer splits or more history"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("perf holds NaN or inf returns — fill (e.g. with 0) or drop them first")
    dropped = t - block * n_splits
    x = x[dropped:]
    masks = _combination_masks(n_splits)
    c = masks.shape[0]
    half = block * (n_splits // 2)
    if metric in ("sharpe", "mean"):
        from quantarena.tournaments.cscv import cscv_select

        # per-block sums; the variance uses column-centred data (no cancellation), the mean
        # raw sums (so equal-mean configurations tie exactly, as in a direct computation);
        # each combination's metric is computed once and is its complement's OOS metric
        xc = x - x.mean(axis=0)
        s0 = x.reshape(n_splits, block, n).sum(axis=1)  # (S, N)
        s1 = xc.reshape(n_splits, block, n).sum(axis=1)
        s2 = (xc**2).reshape(n_splits, block, n).sum(axis=1)
        best, omega, is_best_perf, oos_best_perf = cscv_select(
            masks, s0, s1, s2, half, sharpe=metric == "sharpe"
        )
    elif callable(metric):
        best, omega, is_best_perf, oos_best_perf = _cscv_callable(masks, x, block, metric)
    else:
        raise ValueError(f"metric must be 'sharpe', 'mean' or a callable, got {metric!r}")
    logits = np.log(omega / (1.0 - omega))
    fin = np.isfinite(is_best_perf) & np.isfinite(oos_best_perf)
    if fin.sum() >= 2 and np.ptp(is_best_perf[fin]) > 0:
        slope, intercept = np.polyfit(is_best_perf[fin], oos_best_perf[fin], 1)
    else:
        slope, intercept = float("nan"), float("nan")
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        logits=logits,
        oos_rank=omega,
        is_best=best,
        is_performance=is_best_perf,
        oos_performance=oos_best_perf,
        prob_oos_loss=float(np.mean(oos_best_perf < 0)),
        degradation_slope=float(slope),
        degradation_intercept=float(intercept),
        n_combinations=int(c),
        n_splits=int(n_splits),
        block_size=int(block),
        n_dropped=int(dropped),
    )
