"""Capital allocation between agents: fractional multivariate Kelly, and two baselines.

All inputs are **per-period** simple returns of each agent's out-of-sample track record,
``(T, N)`` (time, agents), e.g. the daily returns of every agent over the rounds played so
far. Weights are fractions of the tournament's capital (1.0 = all of it); they need not sum
to 1: what is not allocated stays in cash.

Kelly (:func:`kelly_weights`), step by step:

1. Keep the *eligible* agents (those that passed the gates) whose mean return is positive;
   every other agent gets exactly 0 ("negative-edge" agents are not used as hedges).
2. Estimate the per-period mean vector μ and covariance Σ of the kept agents (rows holding
   a NaN for any kept agent are dropped). Σ is the sample covariance (ddof=1), optionally
   shrunk toward a scaled identity: ``Σ_δ = (1 − δ)·S + δ·(tr S / n)·I`` with δ the
   Ledoit–Wolf (2004) intensity (``shrinkage="ledoit-wolf"``), a given float in [0, 1], or
   0 (``"none"``).
3. The growth-optimal (Kelly) weights maximise the quadratic approximation of the expected
   log growth ``g(f) = f'μ − ½ f'Σf``. Unconstrained, ``f = Σ⁻¹μ``. Long-only
   (``long_only=True``, the default) solves ``max g(f) s.t. f >= 0`` exactly: written as the
   non-negative least-squares problem ``min ||A f − b||²`` with ``A'A = Σ``, ``A'b = μ``
   and solved by Lawson–Hanson (``scipy.optimize.nnls``). Clipping ``Σ⁻¹μ`` at 0 is *not*
   the same when agents are correlated: dropping one agent changes the others' optimum.
4. Singular Σ (duplicate agents, fewer observations than agents, ``shrinkage="none"``):
   μ is projected onto the range of Σ, i.e. directions of zero estimated variance are
   ignored rather than levered without bound; unconstrained, this is the pseudo-inverse
   solution ``f = Σ⁺μ``. Long-only, a ridge of 1e-8 · (largest eigenvalue) then makes the
   solution unique, so identical agents get identical weights (non-singular Σ: no ridge).
5. Multiply by ``fraction`` (half Kelly by default), clip each weight to ``[−cap, cap]``,
   then scale all weights down together if the gross exposure ``Σ|f|`` exceeds
   ``gross_cap``.

With no eligible positive-edge agent, or fewer than 2 usable observations, the result is all
zeros (all cash).

References:
    J. L. Kelly (1956), "A New Interpretation of Information Rate"; E. O. Thorp (2006),
    "The Kelly Criterion in Blackjack, Sports Betting and the Stock Market" (multivariate
    ``f = Σ⁻¹μ``). O. Ledoit and M. Wolf (2004), "A well-conditioned estimator for
    large-dimensional covariance matrices", J. Multivariate Analysis 88(2), 365-411.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import nnls

__all__ = [
    "equal_weights",
    "inverse_vol_weights",
    "kelly_weights",
    "ledoit_wolf",
    "shrunk_covariance",
    "solve_kelly",
]


def _returns_2d(returns: ArrayLike) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise ValueError(f"returns must be (T, N) per-period returns, got shape {r.shape}")
    return r


def _eligible_mask(eligible: ArrayLike | None, n: int) -> np.ndarray:
    if eligible is None:
        return np.ones(n, dtype=bool)
    e = np.asarray(eligible)
    if e.shape != (n,):
        raise ValueError(f"eligible must be a bool mask of shape ({n},), got shape {e.shape}")
    return e.astype(bool)


def ledoit_wolf(returns: ArrayLike) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf (2004) shrinkage toward a scaled identity.

    With ``X`` the column-centred ``(n, p)`` data, ``S = X'X / n`` (ddof=0), ``m = tr S / p``:

        d² = ||S − m I||²_F / p
        b̄² = (1 / n²) Σ_k ||x_k x_k' − S||²_F / p = (Σ_k ||x_k||⁴ / n − ||S||²_F) / (n p)
        δ = min(b̄², d²) / d²,      Σ_LW = (1 − δ) S + δ m I

    Returns ``(Σ_LW, δ)``; the same numbers as ``sklearn.covariance.LedoitWolf`` (which uses
    this estimator, ddof=0). ``δ = 0`` when ``S`` is already a multiple of the identity.
    """
    x = _returns_2d(returns)
    n, p = x.shape
    if n < 1:
        raise ValueError("ledoit_wolf needs at least one observation")
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    m = np.trace(s) / p
    d2 = float(np.sum((s - m * np.eye(p)) ** 2) / p)
    sq_norms = np.sum(xc**2, axis=1)  # ||x_k||²
    b2_bar = float((np.sum(sq_norms**2) / n - np.sum(s**2)) / (n * p))
    b2 = min(b2_bar, d2)
    delta = 0.0 if d2 == 0.0 else b2 / d2
    return (1.0 - delta) * s + delta * m * np.eye(p), float(delta)


def shrunk_covariance(
    returns: ArrayLike, shrinkage: str | float = "ledoit-wolf"
) -> tuple[np.ndarray, float]:
    """Sample covariance (ddof=1) of ``returns`` ``(T, N)`` shrunk toward ``(tr S / N)·I``.

    ``shrinkage``: ``"ledoit-wolf"`` (intensity from :func:`ledoit_wolf`), ``"none"`` (0) or
    a float δ in [0, 1]. Returns ``(Σ_δ, δ)``.
    """
    x = _returns_2d(returns)
    n, p = x.shape
    if n < 2:
        raise ValueError(f"covariance needs at least 2 observations, got {n}")
    s = np.atleast_2d(np.cov(x, rowvar=False, ddof=1))
    if isinstance(shrinkage, str):
        key = shrinkage.lower().replace("_", "-")
        if key in ("ledoit-wolf", "lw"):
            _, delta = ledoit_wolf(x)
        elif key == "none":
            delta = 0.0
        else:
            raise ValueError(
                f"shrinkage must be 'ledoit-wolf', 'none' or a float in [0, 1], got {shrinkage!r}"
            )
    else:
        delta = float(shrinkage)
        if not 0.0 <= delta <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
    target = np.trace(s) / p * np.eye(p)
    return (1.0 - delta) * s + delta * target, delta


def solve_kelly(mu: ArrayLike, cov: ArrayLike, long_only: bool = True) -> np.ndarray:
    """Full-Kelly weights maximising ``f'μ − ½ f'Σf`` (``f >= 0`` if ``long_only``).

    ``mu`` ``(n,)`` per-period mean returns, ``cov`` ``(n, n)`` their covariance. Singular
    ``cov`` is handled by projecting ``mu`` onto its range (pseudo-inverse convention) plus a
    tiny ridge for uniqueness (see the module docstring). No fraction or caps applied.
    """
    mu = np.asarray(mu, dtype=np.float64).ravel()
    q = np.asarray(cov, dtype=np.float64)
    n = mu.size
    if q.shape != (n, n):
        raise ValueError(f"cov must be ({n}, {n}) to match mu, got {q.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(q))):
        raise ValueError("mu and cov must be finite")
    q = (q + q.T) / 2.0
    w, v = np.linalg.eigh(q)
    top = float(w.max()) if n else 0.0
    if n == 0 or top <= 0.0:
        return np.zeros(n)  # no variance anywhere: nothing to size on
    keep = w > top * 1e-12
    vk = v[:, keep]
    mu_r = vk @ (vk.T @ mu)  # μ projected onto range(Σ)
    if not long_only:
        return vk @ ((vk.T @ mu) / w[keep])  # Σ⁺μ
    # min ||A f − b||², A = L' (Σ + εI = L L'), b = L⁻¹ μ_r  ⇔  max f'μ_r − ½ f'(Σ + εI) f
    # a ridge only where Σ is singular, to make the optimum unique (duplicates split evenly)
    # (1e-8: the least-squares problem's condition number is 1/1e-8, so duplicates split to
    # ~1e-7 relative, whatever NNLS implementation; the ridge moves weights by ~1e-8)
    w_reg = w if keep.all() else np.maximum(w, 0.0) + top * 1e-8
    a = (v * np.sqrt(w_reg)).T  # A'A = V diag(w_reg) V' = Σ + εI
    b = (v.T @ mu_r) / np.sqrt(w_reg)  # A'b = μ_r
    f, _ = nnls(a, b, maxiter=50 * n)
    return f


def kelly_weights(
    returns: ArrayLike,
    fraction: float = 0.5,
    shrinkage: str | float = "ledoit-wolf",
    cap: float | None = 0.5,
    gross_cap: float | None = 1.0,
    eligible: ArrayLike | None = None,
    long_only: bool = True,
) -> np.ndarray:
    """Fractional multivariate Kelly weights per agent (see the module docstring).

    Args:
        returns: ``(T, N)`` per-period OOS returns of the N agents up to now.
        fraction: Kelly fraction multiplying the full-Kelly weights (0.5 = half Kelly).
        shrinkage: ``"ledoit-wolf"``, ``"none"`` or a float in [0, 1] (covariance shrinkage
            toward a scaled identity).
        cap: largest absolute weight per agent, or ``None`` for no cap.
        gross_cap: largest total ``Σ|f|`` (1.0 = no leverage), or ``None``.
        eligible: ``(N,)`` bool mask of agents allowed capital (gated-in); default all.
        long_only: forbid negative weights (solve the constrained problem, not clip).

    Returns:
        ``(N,)`` weights: fractions of capital, 0 for ineligible and negative-edge agents.
    """
    r = _returns_2d(returns)
    t, n = r.shape
    if not fraction >= 0:
        raise ValueError(f"fraction must be >= 0, got {fraction}")
    if cap is not None and not cap >= 0:
        raise ValueError(f"cap must be >= 0 or None, got {cap}")
    if gross_cap is not None and not gross_cap >= 0:
        raise ValueError(f"gross_cap must be >= 0 or None, got {gross_cap}")
    elig = _eligible_mask(eligible, n)
    out = np.zeros(n)
    cols = np.flatnonzero(elig)
    if cols.size == 0:
        return out
    sub = r[:, cols]
    sub = sub[np.all(np.isfinite(sub), axis=1)]
    if sub.shape[0] < 2:
        return out
    mu = sub.mean(axis=0)
    pos = mu > 0
    if not pos.any():
        return out
    cols, sub, mu = cols[pos], sub[:, pos], mu[pos]
    cov, _ = shrunk_covariance(sub, shrinkage)
    f = solve_kelly(mu, cov, long_only=long_only) * fraction
    if cap is not None:
        f = np.clip(f, -cap, cap)
    gross = float(np.abs(f).sum())
    if gross_cap is not None and gross > gross_cap:
        f = f * (gross_cap / gross)
    out[cols] = f
    return out


def equal_weights(eligible: ArrayLike, gross_cap: float = 1.0) -> np.ndarray:
    """``gross_cap / k`` for each of the k eligible agents, 0 elsewhere (all 0 if none)."""
    e = np.asarray(eligible).astype(bool).ravel()
    k = int(e.sum())
    return np.where(e, gross_cap / k, 0.0) if k else np.zeros(e.size)


def inverse_vol_weights(
    returns: ArrayLike, eligible: ArrayLike | None = None, gross_cap: float = 1.0
) -> np.ndarray:
    """Weights ∝ 1/σ_i (per-period std, ddof=1, NaNs ignored) over eligible agents, summing
    to ``gross_cap``. Agents with zero or undefined volatility get 0 (they did not trade)."""
    r = _returns_2d(returns)
    n = r.shape[1]
    elig = _eligible_mask(eligible, n)
    out = np.zeros(n)
    if r.shape[0] < 2 or not elig.any():
        return out
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: std is NaN → 0
        sd = np.nanstd(r, axis=0, ddof=1)
        inv = np.where(elig & np.isfinite(sd) & (sd > 0), 1.0 / sd, 0.0)
    total = inv.sum()
    return inv * (gross_cap / total) if total > 0 else out
