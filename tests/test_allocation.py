"""Kelly allocation: closed-form cases, an independent bounded optimiser, sklearn's
Ledoit–Wolf on real Binance returns, singular covariances, gating and caps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from quantarena.tournaments.allocation import (
    equal_weights,
    inverse_vol_weights,
    kelly_weights,
    ledoit_wolf,
    shrunk_covariance,
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
    # caps binding: per-agent cap, then gross scaled to the gross cap
    raw = kelly_weights(r, fraction=1.0, **NOCAP)
    assert raw.max() > 0.3 and raw.sum() > 1.0
    capped = kelly_weights(r, fraction=1.0, cap=0.3, gross_cap=None)
    assert capped == pytest.approx(np.minimum(raw, 0.3))
    both = kelly_weights(r, fraction=1.0, cap=0.3, gross_cap=0.5)
    assert both.sum() == pytest.approx(0.5)
    assert both == pytest.approx(np.minimum(raw, 0.3) * 0.5 / np.minimum(raw, 0.3).sum())
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
