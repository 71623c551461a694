"""Kelly allocation: closed-form cases, an independent bounded optimiser, sklearn's
Ledoit–Wolf on real Binance returns, singular covariances, gating and caps."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from quantarena.tournaments.allocation import (
    equal_weights,
    inverse_vol_weights,
    kelly_kkt_residual,
    kelly_weights,
    ledoit_wolf,
    shrunk_covariance,
    solve_capped_kelly,
    solve_kelly,
)

NOCAP = {"cap": None, "gross_cap": None}


@pytest.fixture(scope="module")
def alt_returns(sample_dir: Path) -> np.ndarray:
    """5-minute close-to-close returns of 8 Binance alt/BTC pairs (Jan 2018), (T, 8)."""
    files = sorted((sample_dir / "crypto_5m_binance").glob("*.feather"))
    closes = pd.concat(
        {f.name.split("_")[0]: pd.read_feather(f).set_index("date")["close"] for f in files},
        axis=1,
        sort=True,
    )
    r = closes.pct_change(fill_method=None).dropna().to_numpy()
    assert r.shape[1] == 8 and r.shape[0] > 5000
    return r


def _orthogonal_pair(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    a = np.tile([1.0, -1.0], n // 2)
    b = np.tile([1.0, 1.0, -1.0, -1.0], n // 4)
    assert a @ b == 0 and a.sum() == 0 and b.sum() == 0
    return a, b


def test_uncorrelated_two_assets_closed_form() -> None:
    a, b = _orthogonal_pair(8)
    r = np.column_stack([0.002 + 0.01 * a, 0.001 + 0.02 * b])  # sample correlation exactly 0
    var1 = 0.01**2 * 8 / 7  # ddof = 1
    var2 = 0.02**2 * 8 / 7
    f = kelly_weights(r, fraction=0.5, shrinkage="none", **NOCAP)
    assert f == pytest.approx([0.5 * 0.002 / var1, 0.5 * 0.001 / var2], rel=1e-12)
    full = kelly_weights(r, fraction=1.0, shrinkage="none", **NOCAP)
    assert full == pytest.approx(2 * f, rel=1e-12)


def test_correlated_two_assets_vs_hand_inverse() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 2))
    r = np.column_stack([0.01 * z[:, 0], 0.01 * (0.5 * z[:, 0] + 0.8 * z[:, 1])])
    r += [0.0015, 0.0012]
    mu = r.mean(axis=0)
    s11, s22 = r[:, 0].var(ddof=1), r[:, 1].var(ddof=1)
    s12 = np.sum((r[:, 0] - mu[0]) * (r[:, 1] - mu[1])) / 499
    det = s11 * s22 - s12**2
    hand = np.array([s22 * mu[0] - s12 * mu[1], -s12 * mu[0] + s11 * mu[1]]) / det
    assert np.all(hand > 0)  # interior optimum: long-only and unconstrained agree
    got = kelly_weights(r, fraction=0.25, shrinkage="none", **NOCAP)
    assert got == pytest.approx(0.25 * hand, rel=1e-9)
    assert kelly_weights(r, 0.25, "none", long_only=False, **NOCAP) == pytest.approx(
        0.25 * hand, rel=1e-9
    )


def test_long_only_is_not_clipping_when_correlated() -> None:
    """Two highly correlated agents, the second with a weaker edge: Σ⁻¹μ shorts the second.
    The long-only optimum is then the first alone at μ1/σ1² — not Σ⁻¹μ with the short
    clipped to zero."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((1000, 2))
    r = np.column_stack([0.01 * z[:, 0], 0.01 * (0.95 * z[:, 0] + 0.3122 * z[:, 1])])
    r += [0.002, 0.0008]
    mu = r.mean(axis=0)
    cov = np.cov(r, rowvar=False, ddof=1)
    unconstrained = np.linalg.solve(cov, mu)
    assert unconstrained[0] > 0 > unconstrained[1]
    got = kelly_weights(r, fraction=1.0, shrinkage="none", **NOCAP)
    assert got == pytest.approx([mu[0] / cov[0, 0], 0.0], rel=1e-9, abs=1e-12)
    clipped = np.clip(unconstrained, 0, None)
    assert abs(clipped[0] - got[0]) > 0.1 * got[0]  # clipping would be badly wrong
    # KKT for the dropped agent: its marginal gain at the optimum is not positive
    assert mu[1] - cov[1, 0] * got[0] <= 0
    # the unconstrained variant returns Σ⁻¹μ, short included
    assert kelly_weights(r, 1.0, "none", long_only=False, **NOCAP) == pytest.approx(
        unconstrained, rel=1e-9
    )


def test_long_only_matches_bounded_optimiser_on_real_returns(alt_returns: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    for trial in range(4):
        rows = rng.choice(alt_returns.shape[0], size=600, replace=False)
        r = alt_returns[np.sort(rows)]
        for shrink in ("none", "ledoit-wolf"):
            f = kelly_weights(r, fraction=1.0, shrinkage=shrink, **NOCAP)
            mu = r.mean(axis=0)
            keep = mu > 0
            cov, _ = shrunk_covariance(r[:, keep], shrink)
            m = mu[keep]

            def neg(x: np.ndarray, m: np.ndarray = m, cov: np.ndarray = cov) -> float:
                return -(x @ m - 0.5 * x @ cov @ x)

            def grad(x: np.ndarray, m: np.ndarray = m, cov: np.ndarray = cov) -> np.ndarray:
                return -(m - cov @ x)

            ref = minimize(
                neg,
                np.zeros(m.size),
                jac=grad,
                method="L-BFGS-B",
                bounds=[(0, None)] * m.size,
                options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000},
            )
            assert np.all(f[~keep] == 0), trial
            ours = -neg(f[keep])
            assert ours >= -ref.fun - 1e-9 * abs(ref.fun)  # at least as good
            assert ours == pytest.approx(-ref.fun, rel=1e-6)
            assert f[keep] == pytest.approx(ref.x, rel=1e-3, abs=1e-3 * np.abs(ref.x).max())


def test_ledoit_wolf_matches_sklearn(alt_returns: np.ndarray) -> None:
    skl = pytest.importorskip("sklearn.covariance")
    for r in (alt_returns, alt_returns[:6], alt_returns[:200, :5]):
        cov, delta = ledoit_wolf(r)
        ref = skl.LedoitWolf().fit(r)
        assert delta == pytest.approx(ref.shrinkage_, rel=1e-10, abs=1e-14)
        assert np.allclose(cov, ref.covariance_, rtol=1e-10, atol=1e-20)
    assert 0 < ledoit_wolf(alt_returns[:6])[1] <= 1  # T < N: strong shrinkage
    # kelly uses the same intensity on the ddof=1 covariance
    cov1, d1 = shrunk_covariance(alt_returns, "ledoit-wolf")
    s = np.cov(alt_returns, rowvar=False, ddof=1)
    mid = np.trace(s) / 8
    assert d1 == pytest.approx(ledoit_wolf(alt_returns)[1])
    assert np.allclose(cov1, (1 - d1) * s + d1 * mid * np.eye(8))
    cov_f, d_f = shrunk_covariance(alt_returns, 0.3)
    assert d_f == 0.3 and np.allclose(cov_f, 0.7 * s + 0.3 * mid * np.eye(8))


def test_singular_covariance_duplicates_and_too_few_rows(alt_returns: np.ndarray) -> None:
    base = alt_returns[:2000, [1, 2, 3]]
    base = base - base.mean(axis=0) + [0.0004, 0.0003, 0.0002]  # all positive-edge
    dup = np.column_stack([base, base[:, 0]])  # agent 3 is a copy of agent 0
    one = kelly_weights(base, 1.0, "none", **NOCAP)
    two = kelly_weights(dup, 1.0, "none", **NOCAP)
    assert np.all(np.isfinite(two))
    assert two[0] == pytest.approx(two[3], rel=1e-6)  # identical agents, identical weights
    assert two[0] + two[3] == pytest.approx(one[0], rel=1e-6)
    assert two[1:3] == pytest.approx(one[1:3], rel=1e-6)
    # unconstrained: the pseudo-inverse solution
    pinv = np.linalg.pinv(np.cov(dup, rowvar=False)) @ dup.mean(axis=0)
    assert kelly_weights(dup, 1.0, "none", long_only=False, **NOCAP) == pytest.approx(
        pinv, rel=1e-6
    )
    # fewer rows than agents: rank-deficient, must not crash or blow up
    rng = np.random.default_rng(3)
    few = rng.normal(0.001, 0.01, (3, 10))
    for shrink in ("none", "ledoit-wolf"):
        w = kelly_weights(few, shrinkage=shrink)
        assert np.all(np.isfinite(w)) and np.all(w >= 0)
        assert w.max() <= 0.5 + 1e-12 and w.sum() <= 1.0 + 1e-12
    # a single usable row, or constant returns: cash
    assert np.all(kelly_weights(few[:1]) == 0)
    assert np.all(kelly_weights(np.full((50, 3), 0.001), shrinkage="none") == 0)


def test_gating_negative_edge_and_caps() -> None:
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2000, 4))
    r = 0.01 * z + [0.001, 0.0008, -0.0005, 0.0006]
    # agent 2 has a negative edge but is made a hedge of agent 0: still gets 0
    r[:, 2] = -0.7 * (r[:, 0] - 0.001) + 0.003 * z[:, 2] - 0.0001
    w = kelly_weights(r, **NOCAP)
    assert w[2] == 0.0 and np.all(w[[0, 1, 3]] > 0)
    # gated out: exactly zero, the rest re-optimised without it
    elig = np.array([True, False, True, True])
    wg = kelly_weights(r, eligible=elig, **NOCAP)
    assert wg[1] == 0.0 and wg[2] == 0.0
    sub = kelly_weights(r[:, [0, 3]], **NOCAP)
    assert wg[[0, 3]] == pytest.approx(sub, rel=1e-12)
    # all gated out → cash
    assert np.all(kelly_weights(r, eligible=np.zeros(4, bool)) == 0)
    assert np.all(kelly_weights(-np.abs(r)) == 0)  # nobody has an edge
    # caps binding: the capped problem's optimum (checked against the exact active-set
    # enumeration), not the clipped-then-scaled weights
    raw = kelly_weights(r, fraction=1.0, **NOCAP)
    assert raw.max() > 0.3 and raw.sum() > 1.0
    capped = kelly_weights(r, fraction=1.0, cap=0.3, gross_cap=None)
    assert capped == pytest.approx(np.minimum(raw, 0.3))  # every positive agent over the cap
    both = kelly_weights(r, fraction=1.0, cap=0.3, gross_cap=0.5)
    assert both.sum() == pytest.approx(0.5)
    keep = [0, 1, 3]
    mu = r[:, keep].mean(axis=0)
    cov, _ = shrunk_covariance(r[:, keep])
    assert both[keep] == pytest.approx(_reference(mu, cov, 0.3, 0.5), abs=1e-7)
    assert both[2] == 0.0
    small = kelly_weights(r, fraction=1e-4, cap=0.3, gross_cap=1.0)
    assert small == pytest.approx(raw * 1e-4)  # caps not binding: untouched
    with pytest.raises(ValueError, match="eligible"):
        kelly_weights(r, eligible=np.ones(3, bool))


def test_nan_rows_are_dropped() -> None:
    rng = np.random.default_rng(6)
    r = rng.normal(0.001, 0.01, (300, 3))
    with_nan = r.copy()
    with_nan[10, 1] = np.nan
    assert kelly_weights(with_nan) == pytest.approx(kelly_weights(np.delete(r, 10, axis=0)))


def test_baselines(alt_returns: np.ndarray) -> None:
    assert equal_weights([True, False, True, True]) == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])
    assert np.all(equal_weights([False, False]) == 0)
    r = alt_returns[:1000].copy()
    elig = np.array([True] * 6 + [False, True])
    w = inverse_vol_weights(r, elig)
    sd = pd.DataFrame(r).std().to_numpy()  # pandas: ddof=1
    expect = np.where(elig, 1 / sd, 0)
    assert w == pytest.approx(expect / expect.sum())
    assert w.sum() == pytest.approx(1.0)
    r[:, 0] = 0.0  # an agent that never traded gets nothing
    w0 = inverse_vol_weights(r, elig)
    assert w0[0] == 0 and w0.sum() == pytest.approx(1.0)


def test_solve_kelly_direct() -> None:
    cov = np.array([[0.04, 0.0], [0.0, 0.01]])
    assert solve_kelly([0.02, 0.01], cov) == pytest.approx([0.5, 1.0])
    assert solve_kelly([0.02, -0.01], cov) == pytest.approx([0.5, 0.0])
    assert solve_kelly([0.02, -0.01], cov, long_only=False) == pytest.approx([0.5, -1.0])
    assert np.all(solve_kelly([0.1, 0.1], np.zeros((2, 2))) == 0)
    with pytest.raises(ValueError, match="cov must be"):
        solve_kelly([0.1, 0.2], np.eye(3))


# --------------------------------------------------------------------------- capped Kelly


def _reference(
    mu: np.ndarray, q: np.ndarray, cap: float, gross: float, long_only: bool = True
) -> np.ndarray:
    """Exact optimum of max f'mu - 1/2 f'Qf s.t. the caps, by enumerating every active set.

    Each weight is at -cap, 0, +cap or free (with a sign); the gross constraint is active or
    not. On each face the stationary point solves a linear system (with the gross multiplier
    when active); the best feasible one is the optimum (Q positive definite)."""
    n = mu.size
    states = ("zero", "cap", "free+") if long_only else ("zero", "cap", "-cap", "free+", "free-")
    best, best_val = None, -np.inf
    for combo in itertools.product(states, repeat=n):
        fixed = np.array([c in ("zero", "cap", "-cap") for c in combo])
        fx = np.array([{"cap": cap, "-cap": -cap}.get(c, 0.0) for c in combo])
        sgn = np.array([1.0 if c == "free+" else -1.0 for c in combo])
        free = ~fixed
        for active in (False, True):
            f = fx.copy()
            k = int(free.sum())
            rhs = mu[free] - q[np.ix_(free, fixed)] @ fx[fixed]
            if active:
                a = np.zeros((k + 1, k + 1))
                a[:k, :k] = q[np.ix_(free, free)]
                a[:k, k] = sgn[free]
                a[k, :k] = sgn[free]
                b = np.r_[rhs, gross - np.abs(fx[fixed]).sum()]
            else:
                a, b = q[np.ix_(free, free)], rhs
            if k == 0 and not active:
                sol = np.zeros(0)
            else:
                try:
                    sol = np.linalg.solve(a, b)
                except np.linalg.LinAlgError:
                    continue
            f[free] = sol[:k]
            lo = 0.0 if long_only else -cap
            if np.any(f < lo - 1e-12) or np.any(f > cap + 1e-12):
                continue
            if np.any(f[free] * sgn[free] < -1e-12) or np.abs(f).sum() > gross + 1e-12:
                continue
            val = f @ mu - 0.5 * f @ q @ f
            if val > best_val:
                best, best_val = f, val
    return best


def _two_hot_agents() -> tuple[np.ndarray, np.ndarray]:
    """Three agents: 0 and 1 both want far more than the cap, 1 with twice 0's edge."""
    mu = np.array([0.002, 0.004, 0.0005])
    sd = np.array([0.01, 0.01, 0.012])
    corr = np.array([[1.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 1.0]])
    return mu, corr * np.outer(sd, sd)


def test_capped_kelly_solves_the_capped_problem_not_clip_and_scale() -> None:
    mu, cov = _two_hot_agents()
    raw = solve_kelly(mu, cov) * 0.5
    assert np.sum(raw > 0.5) >= 2  # two agents over the cap
    f = solve_capped_kelly(mu, cov, fraction=0.5, cap=0.5, gross_cap=0.6)
    clipped = np.clip(raw, 0, 0.5)
    clipped *= 0.6 / clipped.sum()
    # clip-then-scale makes the two hot agents equal; the optimum favours the better one
    assert clipped[0] == pytest.approx(clipped[1])
    assert f[1] > f[0] + 0.1
    ref = _reference(mu, cov / 0.5, 0.5, 0.6)
    np.testing.assert_allclose(f, ref, atol=1e-8)
    assert kelly_kkt_residual(f, mu, cov / 0.5, cap=0.5, gross_cap=0.6) < 1e-6
    assert kelly_kkt_residual(clipped, mu, cov / 0.5, cap=0.5, gross_cap=0.6) > 1e-2

    def g(w: np.ndarray) -> float:
        return float(w @ mu - 0.5 * w @ cov @ w / 0.5)

    assert g(f) > g(clipped)
    # a fine grid over [0, cap]^2 (agent 2 held at its optimum) finds nothing better
    grid = np.linspace(0, 0.5, 501)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    w = np.stack([a.ravel(), b.ravel(), np.full(a.size, f[2])], axis=1)
    ok = w.sum(axis=1) <= 0.6 + 1e-12
    vals = w[ok] @ mu - 0.5 * np.einsum("ij,jk,ik->i", w[ok], cov / 0.5, w[ok])
    assert vals.max() <= g(f) + 1e-12
    np.testing.assert_allclose(w[ok][np.argmax(vals), :2], f[:2], atol=1e-3)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("long_only", [True, False])
def test_capped_kelly_matches_active_set_enumeration(seed: int, long_only: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 3
    a = rng.standard_normal((n, n))
    cov = (a @ a.T + 0.3 * np.eye(n)) * 1e-4
    mu = rng.normal(0.0, 0.002, n)
    mu[0] = abs(mu[0]) + 1e-4  # at least one positive edge
    cap, gross, frac = 0.4, 0.7, 0.5
    f = solve_capped_kelly(mu, cov, fraction=frac, cap=cap, gross_cap=gross, long_only=long_only)
    ref = _reference(mu, cov / frac, cap, gross, long_only)
    np.testing.assert_allclose(f, ref, atol=1e-7)
    if long_only:
        assert np.all(f >= 0)
    assert np.all(np.abs(f) <= cap + 1e-12) and np.abs(f).sum() <= gross + 1e-9


def test_long_only_reaches_the_solver() -> None:
    """long_only=False allows short weights within -cap..cap and sum |f| <= gross."""
    rng = np.random.default_rng(8)
    z = rng.standard_normal((3000, 3))
    r = 0.01 * z + [0.001, 0.0006, -0.0008]
    r[:, 1] += 0.008 * z[:, 0]  # agent 1 correlated with agent 0
    lo = kelly_weights(r, fraction=0.5, cap=0.5, gross_cap=1.0, long_only=True)
    ls = kelly_weights(r, fraction=0.5, cap=0.5, gross_cap=1.0, long_only=False)
    assert lo[2] == 0.0 and np.all(lo >= 0)
    assert ls[2] < -0.05  # the negative-edge agent is sold short
    assert np.all(np.abs(ls) <= 0.5 + 1e-12) and np.abs(ls).sum() <= 1.0 + 1e-9
    mu = r.mean(axis=0)
    cov, _ = shrunk_covariance(r)
    np.testing.assert_allclose(ls, _reference(mu, cov / 0.5, 0.5, 1.0, False), atol=1e-7)
    # no caps: the unconstrained fractional Kelly 0.5 * Σ⁻¹μ
    free = kelly_weights(r, fraction=0.5, cap=None, gross_cap=None, long_only=False)
    np.testing.assert_allclose(free, 0.5 * np.linalg.solve(cov, mu), rtol=1e-9)
