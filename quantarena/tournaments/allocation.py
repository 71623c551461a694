"""Capital allocation between agents: fractional multivariate Kelly, and two baselines.

All inputs are **per-period** simple returns of each agent's out-of-sample track record,
``(T, N)`` (time, agents), e.g. the daily returns of every agent over the rounds played so
far. Weights are fractions of the tournament's capital (1.0 = all of it); they need not sum
to 1: what is not allocated stays in cash.

Kelly (:func:`kelly_weights`), step by step:

1. Keep the *eligible* agents (those that passed the gates) — long-only, only those whose
   mean return is positive; every other agent gets exactly 0 ("negative-edge" agents are
   not used as hedges). Long-short (``long_only=False``) keeps every eligible agent.
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
5. Fraction and caps (:func:`solve_capped_kelly`): the weights solve

       max  f'μ − ½ f'Σf / c
       s.t. 0 <= f_i <= cap, Σ f_i <= gross_cap          (long-only)
            |f_i| <= cap,    Σ |f_i| <= gross_cap        (long_only=False)

   with ``c = fraction`` (half Kelly by default; without caps ``f = c·Σ⁻¹μ``, or the NNLS
   solution times c). This is *not* clipping ``c·Σ⁻¹μ`` at the cap and scaling down to the
   gross cap: that turns every agent over the cap into an equal weight, whatever their
   edges, and ignores how removing weight from one agent changes the others' optimum. The
   problem is a small convex QP, solved with SLSQP and checked against its KKT conditions
   (:func:`kelly_kkt_residual`).

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
    "kelly_kkt_residual",
    "solve_capped_kelly",
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


def _preprocess(mu: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(μ_r, Q)``: μ projected onto range(Σ) and Σ plus a ridge of 1e-8 · (largest
    eigenvalue) where Σ is singular (the module docstring's step 4); ``Q = 0`` when Σ has no
    variance at all."""
    q = (cov + cov.T) / 2.0
    w, v = np.linalg.eigh(q)
    top = float(w.max()) if mu.size else 0.0
    if mu.size == 0 or top <= 0.0:
        return np.zeros_like(mu), np.zeros_like(q)
    keep = w > top * 1e-12
    mu_r = v[:, keep] @ (v[:, keep].T @ mu)
    if keep.all():
        return mu_r, q
    w_reg = np.maximum(w, 0.0) + top * 1e-8
    return mu_r, (v * w_reg) @ v.T


def kelly_kkt_residual(
    f: ArrayLike,
    mu: ArrayLike,
    cov: ArrayLike,
    *,
    cap: float | None = None,
    gross_cap: float | None = None,
    long_only: bool = True,
) -> float:
    """Largest violation of the KKT conditions of the capped Kelly problem at ``f``
    (0 at the exact optimum): primal feasibility, and for long-only, with the gradient
    ``g = μ − Σf`` and the gross-cap multiplier ``λ`` (0 unless ``Σf_i = gross_cap``),
    ``g_i − λ <= 0`` where ``f_i = 0``, ``= 0`` where ``0 < f_i < cap`` and ``>= 0`` where
    ``f_i = cap``; long-short, the same with ``λ·sign(f_i)`` and ``|g_i| <= λ`` where
    ``f_i = 0``. Relative to ``max|μ|``; ``λ`` is fitted by least squares on the free weights.
    """
    f = np.asarray(f, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    q = np.asarray(cov, dtype=np.float64)
    scale = max(float(np.max(np.abs(mu))) if mu.size else 0.0, 1e-300)
    c = np.inf if cap is None else float(cap)
    gc = np.inf if gross_cap is None else float(gross_cap)
    tol = 1e-9 * max(1.0, c if np.isfinite(c) else 1.0)
    g = (mu - q @ f) / scale
    a = np.abs(f)
    lo = -np.inf if long_only else -c
    viol = [float(np.max(np.maximum(lo - f, 0.0) / max(c, 1.0), initial=0.0))]
    viol.append(float(np.max(np.maximum(f - c, 0.0) / max(c, 1.0), initial=0.0)))
    if long_only:
        viol.append(max(0.0, float(-f.min(initial=0.0))))
    gross = float(a.sum())
    viol.append(max(0.0, gross - gc) / max(gc, 1.0) if np.isfinite(gc) else 0.0)
    at_zero = a <= tol
    at_cap = a >= c - tol
    free = ~at_zero & ~at_cap
    sgn = np.sign(f)
    lam = 0.0
    if np.isfinite(gc) and gross >= gc - tol * max(gc, 1.0):
        # λ from the free weights (g_i = λ·sign f_i there), else the largest consistent value
        if free.any():
            lam = max(0.0, float(np.mean(g[free] * sgn[free])))
        else:
            cands = (
                [g[at_zero].max(initial=0.0)]
                if long_only
                else [np.abs(g[at_zero]).max(initial=0.0)]
            )
            lam = max(0.0, float(max(cands)))
    if long_only:
        viol.append(float(np.max(np.maximum(g[at_zero] - lam, 0.0), initial=0.0)))
        viol.append(float(np.max(np.abs(g[free] - lam), initial=0.0)))
        viol.append(float(np.max(np.maximum(lam - g[at_cap & ~at_zero], 0.0), initial=0.0)))
    else:
        viol.append(float(np.max(np.maximum(np.abs(g[at_zero]) - lam, 0.0), initial=0.0)))
        viol.append(float(np.max(np.abs(g[free] - lam * sgn[free]), initial=0.0)))
        capped = at_cap & ~at_zero
        viol.append(float(np.max(np.maximum(lam - g[capped] * sgn[capped], 0.0), initial=0.0)))
    return float(max(viol))


def solve_capped_kelly(
    mu: ArrayLike,
    cov: ArrayLike,
    *,
    fraction: float = 1.0,
    cap: float | None = None,
    gross_cap: float | None = None,
    long_only: bool = True,
) -> np.ndarray:
    """Fractional Kelly weights under caps, solved as the constrained problem:

        max  f'μ − ½ f'Σf / c
        s.t. 0 <= f_i <= cap, Σ f_i <= gross_cap            (long_only)
             −cap <= f_i <= cap, Σ |f_i| <= gross_cap       (long-short)

    with ``c = fraction`` (without caps, ``f = c · Σ⁻¹μ``: fractional Kelly). Long-short is
    solved in the split ``f = p − n``, ``0 <= p, n <= cap``, ``Σ(p + n) <= gross_cap``, which
    has the same feasible ``f``. The solver is SLSQP (``scipy.optimize``) on the problem
    scaled to unit size, started from the clipped-and-scaled weights; the result must meet
    :func:`kelly_kkt_residual` to 1e-6 or a second solve (``trust-constr``) is tried, and a
    ``RuntimeError`` is raised if neither does. Singular Σ: as :func:`solve_kelly`.
    """
    from scipy.optimize import Bounds, LinearConstraint, minimize

    mu = np.asarray(mu, dtype=np.float64).ravel()
    q0 = np.asarray(cov, dtype=np.float64)
    n = mu.size
    if q0.shape != (n, n):
        raise ValueError(f"cov must be ({n}, {n}) to match mu, got {q0.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(q0))):
        raise ValueError("mu and cov must be finite")
    if not fraction > 0 or n == 0:
        return np.zeros(n)
    mu_r, q = _preprocess(mu, q0)
    if not np.any(q):
        return np.zeros(n)
    q = q / fraction  # max f'μ − ½ f'(Σ/c) f
    c = np.inf if cap is None else float(cap)
    gc = np.inf if gross_cap is None else float(gross_cap)
    # the optimum without caps (c·Σ⁻¹μ, or the NNLS weights long-only): if it meets the caps,
    # it is the answer; otherwise, clipped and scaled, the solver's (feasible) start
    f0 = solve_kelly(mu_r, q, long_only=long_only)
    if np.all(np.abs(f0) <= c) and np.abs(f0).sum() <= gc:
        return f0
    f0 = np.clip(f0, 0.0 if long_only else -c, c)
    if np.abs(f0).sum() > gc:
        f0 = f0 * (gc / np.abs(f0).sum())
    if c == 0 or gc == 0:
        return np.zeros(n)
    # scale: variables in units of the largest feasible weight, objective to O(1)
    size = min(c, gc)
    if not np.isfinite(size):
        size = max(float(np.abs(f0).max()), 1e-300)
    k = 1.0 / max(float(np.abs(mu_r).max()) * size, float(np.abs(np.diag(q)).max()) * size**2)
    if long_only:
        m = np.eye(n)
    else:
        m = np.hstack([np.eye(n), -np.eye(n)])  # f = M x, x = (p, n)
    qs = k * size**2 * (m.T @ q @ m)
    ms = k * size * (m.T @ mu_r)
    ub = np.full(m.shape[1], c / size)
    cons = []
    if np.isfinite(gc):
        cons = [LinearConstraint(np.ones((1, m.shape[1])), -np.inf, gc / size)]
    x0 = np.r_[np.maximum(f0, 0.0), np.maximum(-f0, 0.0)] if not long_only else f0
    x0 = np.nan_to_num(x0 / size)

    def fun(x: np.ndarray) -> float:
        return float(0.5 * x @ qs @ x - ms @ x)

    def jac(x: np.ndarray) -> np.ndarray:
        return qs @ x - ms

    bounds = Bounds(np.zeros(m.shape[1]), ub)
    best = None
    for method, opts in (
        ("SLSQP", {"ftol": 1e-12, "maxiter": 1000}),
        ("trust-constr", {"gtol": 1e-12, "xtol": 1e-14, "maxiter": 5000}),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = minimize(
                fun, x0, jac=jac, hess=(lambda x: qs) if method == "trust-constr" else None,
                bounds=bounds, constraints=cons, method=method, options=opts,
            )  # fmt: skip
        x = np.clip(res.x, 0.0, ub)
        f = (m @ x) * size
        if np.isfinite(gc) and np.abs(f).sum() > gc:
            f = f * (gc / np.abs(f).sum())
        f = np.where(np.abs(f) < 1e-12 * size, 0.0, f)
        r = kelly_kkt_residual(f, mu_r, q, cap=cap, gross_cap=gross_cap, long_only=long_only)
        if best is None or r < best[1]:
            best = (f, r)
        if r <= 1e-6:
            return f
    raise RuntimeError(
        f"capped Kelly: no solver met the optimality conditions (KKT residual {best[1]:.2e})"
    )


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
        long_only: ``True``: weights in ``[0, cap]`` over the positive-edge agents;
            ``False``: weights in ``[−cap, cap]`` over all eligible agents (a negative-edge
            agent may be sold short, a correlated one used as a hedge).

    Returns:
        ``(N,)`` weights: fractions of capital; 0 for ineligible agents (and, long-only,
        negative-edge ones).
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
    keep = mu > 0 if long_only else mu != 0
    if not keep.any():
        return out
    cols, sub, mu = cols[keep], sub[:, keep], mu[keep]
    cov, _ = shrunk_covariance(sub, shrinkage)
    if cap is None and gross_cap is None:
        f = solve_kelly(mu, cov, long_only=long_only) * fraction
    else:
        f = solve_capped_kelly(
            mu, cov, fraction=fraction, cap=cap, gross_cap=gross_cap, long_only=long_only
        )
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
