"""PSR / DSR / PBO against the published example, Monte-Carlo, numerical integration and a
brute-force CSCV loop."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, stats

from quantarena.tournaments.overfitting import (
    SharpeStats,
    annualize_sharpe,
    deannualize_sharpe,
    deflated_sharpe,
    expected_max_sharpe,
    pbo,
    probabilistic_sharpe,
    sharpe_ratio,
    sharpe_stats,
    sharpe_std,
    trials_sharpe_variance,
)

# ---------------------------------------------------------------------------- DSR / PSR


def test_deflated_sharpe_paper_numerical_example() -> None:
    """Bailey & López de Prado (2014), "A numerical example": N = 100 trials, V[SR_n] = 1/2
    (annualised), best SR = 2.5 annualised, T = 1250 daily observations (250 a year),
    skewness −3, kurtosis 10. The paper reports SR0 ≈ 0.1132 (per day) and DSR ≈ 0.9004."""
    sr = deannualize_sharpe(2.5, 250)
    var = 0.5 / 250  # annualised variance → per-period
    sr0 = expected_max_sharpe(100, var)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe(SharpeStats(sr, 1250, -3.0, 10.0), n_trials=100, var_trials_sharpe=var)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    # same answer from a bare tuple
    assert deflated_sharpe((sr, 1250, -3.0, 10.0), 100, var) == pytest.approx(dsr, rel=1e-12)


def test_expected_max_sharpe_against_integration_and_monte_carlo() -> None:
    # E[max of N standard normals] by numerical integration vs the closed-form approximation
    for n in (10, 100, 1000):
        exact = integrate.quad(
            lambda x, n=n: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1), -12, 12
        )[0]
        assert expected_max_sharpe(n, 1.0) == pytest.approx(exact, rel=0.03)
    # N strategies of zero true Sharpe: the mean of the best estimated Sharpe
    rng = np.random.default_rng(1)
    reps, t, n = 400, 250, 100
    srs = np.empty((reps, n))
    for i in range(reps):
        r = rng.standard_normal((t, n)) * 0.01
        srs[i] = sharpe_ratio(r)
    simulated = srs.max(axis=1).mean()
    predicted = expected_max_sharpe(n, srs.var(ddof=1))
    se = srs.max(axis=1).std(ddof=1) / math.sqrt(reps)
    assert abs(simulated - predicted) < max(4 * se, 0.02 * simulated)
    # no selection, no inflation; a non-zero mean shifts the answer
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert expected_max_sharpe(50, 0.0, mean_sharpe=0.2) == pytest.approx(0.2)
    assert np.all(np.diff(expected_max_sharpe(np.array([2, 10, 100, 1000]), 1.0)) > 0)


def test_sharpe_std_matches_monte_carlo_for_skewed_returns() -> None:
    """σ(SR) with skewness/kurtosis vs the spread of SR estimates over simulated series
    drawn from a shifted exponential (skew 2, kurtosis 9) with true per-period SR 0.3."""
    rng = np.random.default_rng(7)
    reps, t, sr_true = 4000, 400, 0.3
    r = rng.exponential(1.0, (reps, t)) - 1.0 + sr_true
    est = sharpe_ratio(r, axis=1)
    mc = est.std(ddof=1)
    assert sharpe_std(sr_true, t, 2.0, 9.0) == pytest.approx(mc, rel=0.04)
    # the normal-returns formula would be far off here: the correction matters
    assert sharpe_std(sr_true, t, 0.0, 3.0) > 1.2 * mc


def test_psr_is_calibrated_under_the_null() -> None:
    """With true SR equal to the benchmark, PSR is ~Uniform(0, 1): P(PSR > 0.95) ≈ 5%."""
    rng = np.random.default_rng(3)
    sr_true, t = 0.05, 300
    r = rng.standard_normal((t, 4000)) + sr_true
    p = probabilistic_sharpe(r, sr_benchmark=sr_true)
    assert p.shape == (4000,)
    frac = float(np.mean(p > 0.95))
    assert abs(frac - 0.05) < 4 * math.sqrt(0.05 * 0.95 / 4000)
    assert abs(float(np.mean(p)) - 0.5) < 0.03


def test_psr_matches_scipy_moments_and_is_vectorised() -> None:
    rng = np.random.default_rng(11)
    r = rng.standard_t(df=5, size=(750, 3)) * 0.01 + 0.001
    s = sharpe_stats(r)
    for j in range(3):
        col = r[:, j]
        sr = col.mean() / col.std(ddof=1)
        g3 = stats.skew(col)
        g4 = stats.kurtosis(col, fisher=False)
        assert s.sr[j] == pytest.approx(sr, rel=1e-12)
        assert s.skew[j] == pytest.approx(g3, rel=1e-10)
        assert s.kurt[j] == pytest.approx(g4, rel=1e-10)
        z = (sr - 0.02) * math.sqrt(749) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
        assert probabilistic_sharpe(col, 0.02) == pytest.approx(stats.norm.cdf(z), rel=1e-10)
        assert probabilistic_sharpe(r, 0.02)[j] == pytest.approx(stats.norm.cdf(z), rel=1e-10)
    # DSR from returns == DSR from their stats; monotone in N
    d1 = deflated_sharpe(r, 20, 0.001)
    d2 = deflated_sharpe(s, 20, 0.001)
    assert np.allclose(d1, d2, rtol=1e-12)
    assert np.all(deflated_sharpe(r, 200, 0.001) < d1)
    # one trial: DSR is the PSR against zero
    assert np.allclose(deflated_sharpe(r, 1, 0.001), probabilistic_sharpe(r, 0.0))


def test_sharpe_edge_cases_and_units() -> None:
    assert sharpe_ratio(np.zeros(10)) == 0.0  # an agent that never traded
    assert math.isnan(sharpe_ratio(np.full(10, 0.01)))
    assert math.isnan(sharpe_std(0.1, 1))
    with pytest.raises(ValueError, match="at least 2"):
        sharpe_stats(np.array([0.01]))
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 1.0)
    assert annualize_sharpe(0.1, 365) == pytest.approx(0.1 * math.sqrt(365))
    assert deannualize_sharpe(annualize_sharpe(0.07, 8760), 8760) == pytest.approx(0.07)
    rng = np.random.default_rng(0)
    r = rng.standard_normal((500, 30))
    srs = r.mean(0) / r.std(0, ddof=1)
    assert trials_sharpe_variance(r) == pytest.approx(srs.var(ddof=1), rel=1e-12)


# ---------------------------------------------------------------------------------- PBO


def _bruteforce_pbo(perf: np.ndarray, s: int, metric) -> tuple[np.ndarray, float]:
    """CSCV written as the paper's loop: concatenate blocks, score, rank with scipy."""
    t, n = perf.shape
    block = t // s
    perf = perf[t - block * s :]
    blocks = [perf[i * block : (i + 1) * block] for i in range(s)]
    logits = []
    for combo in itertools.combinations(range(s), s // 2):
        is_rows = np.concatenate([blocks[i] for i in combo])
        oos_rows = np.concatenate([blocks[i] for i in range(s) if i not in combo])
        is_m, oos_m = metric(is_rows), metric(oos_rows)
        best = int(np.argmax(is_m))
        rank = stats.rankdata(oos_m, method="average")[best]
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    lg = np.array(logits)
    return lg, float(np.mean(lg <= 0))


def _sr(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=0) / x.std(axis=0, ddof=1)


def test_pbo_matches_bruteforce_small_case() -> None:
    rng = np.random.default_rng(5)
    perf = rng.normal(0.0005, 0.01, size=(43, 5))  # 43 rows, S = 4: oldest 3 rows dropped
    res = pbo(perf, n_splits=4)
    lg, p = _bruteforce_pbo(perf, 4, _sr)
    assert res.n_combinations == 6 and res.block_size == 10 and res.n_dropped == 3
    assert np.allclose(res.logits, lg, rtol=1e-10, atol=1e-12)
    assert res.pbo == p
    # a callable metric goes through the per-combination loop and agrees
    res_c = pbo(perf, n_splits=4, metric=_sr)
    assert np.allclose(res_c.logits, res.logits) and res_c.pbo == res.pbo


def test_pbo_bruteforce_with_ties_and_mean_metric() -> None:
    rng = np.random.default_rng(9)
    perf = rng.integers(-2, 3, size=(24, 6)).astype(float)  # small integers: many ties
    res = pbo(perf, n_splits=6, metric="mean")
    lg, p = _bruteforce_pbo(perf, 6, lambda x: x.mean(axis=0))
    assert res.n_combinations == math.comb(6, 3)
    assert np.allclose(res.logits, lg)
    assert res.pbo == p


def test_pbo_of_pure_noise_is_about_one_half() -> None:
    """N (even) skill-less configurations: the IS winner's OOS rank is uniform, PBO ≈ 0.5.
    One matrix's PBO has a spread of ~0.2, so average 100 seeded matrices (standard error
    ~0.02) and allow 0.08."""
    values = [
        pbo(np.random.default_rng(seed).normal(0.0, 0.01, (600, 20)), n_splits=12).pbo
        for seed in range(100)
    ]
    assert abs(np.mean(values) - 0.5) < 0.08


def test_pbo_of_persistent_edges_is_near_zero() -> None:
    rng = np.random.default_rng(2)
    n, t = 10, 2000
    drift = np.linspace(0.0, 0.2, n) * 0.01  # per-period Sharpe 0 ... 0.2, all persistent
    perf = rng.normal(0.0, 0.01, (t, n)) + drift
    res = pbo(perf, n_splits=16)
    assert res.pbo < 0.05
    assert np.median(res.logits) > 1.0
    assert res.prob_oos_loss == 0.0
    assert np.mean(res.is_best >= n - 3) > 0.9  # the best configurations win IS


def test_pbo_result_fields_and_errors() -> None:
    rng = np.random.default_rng(4)
    perf = rng.normal(0, 0.01, (320, 8))
    res = pbo(perf, n_splits=8)
    assert res.logits.shape == res.oos_rank.shape == res.is_best.shape == (70,)
    assert np.all((res.oos_rank > 0) & (res.oos_rank < 1))
    assert np.isfinite(res.degradation_slope)
    # each IS metric really is the best of its combination (checked on combination 0)
    blocks = perf.reshape(8, 40, 8)
    is_rows = blocks[[0, 1, 2, 3]].reshape(-1, 8)
    assert res.is_best[0] == int(np.argmax(_sr(is_rows)))
    assert res.is_performance[0] == pytest.approx(_sr(is_rows).max())
    with pytest.raises(ValueError, match="even"):
        pbo(perf, n_splits=7)
    with pytest.raises(ValueError, match="too few"):
        pbo(perf[:20], n_splits=16)
    with pytest.raises(ValueError, match="at least 2 configurations"):
        pbo(perf[:, :1])
    bad = perf.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pbo(bad)
    # deterministic
    assert np.array_equal(pbo(perf, 8).logits, res.logits)


def _sr_safe(x: np.ndarray) -> np.ndarray:
    """The per-period Sharpe with the module's conventions (idle column → 0), computed on the
    concatenated rows: an arithmetic independent of the per-block sums."""
    from quantarena.tournaments.overfitting import _safe_sharpe

    return _safe_sharpe(x.mean(axis=0), x.std(axis=0, ddof=1))


def test_pbo_compiled_loop_equals_the_direct_loop_on_a_population_with_ties() -> None:
    """A tournament-sized case (S = 16: 12,870 combinations) with what populations hold: idle
    parameter sets (all-zero returns, tied at Sharpe 0), duplicated sets, and sets that trade
    rarely. The compiled CSCV loop (each combination's metric computed once, reused as its
    complement's OOS metric) picks the same IS-best set and gives the same PBO as the
    per-combination loop over concatenated rows, and the brute force agrees."""
    rng = np.random.default_rng(13)
    perf = rng.normal(0.0002, 0.01, (364, 60))
    perf[:, :6] = 0.0  # idle sets
    perf[:, 6:10] = perf[:, 10:14]  # duplicates
    perf[:, 14:20] *= rng.random((364, 6)) < 0.05  # rarely in the market
    res = pbo(perf, n_splits=16)
    direct = pbo(perf, n_splits=16, metric=_sr_safe)
    assert res.n_combinations == 12_870 and res.n_dropped == 364 % 16
    assert np.array_equal(res.is_best, direct.is_best)
    assert res.pbo == direct.pbo
    assert np.allclose(res.logits, direct.logits, rtol=1e-12, atol=0)
    assert np.allclose(res.is_performance, direct.is_performance, rtol=1e-9, atol=1e-15)
    lg, p = _bruteforce_pbo(perf[:, 14:], 8, _sr)  # no idle columns: the paper's loop
    small = pbo(perf[:, 14:], n_splits=8)
    assert small.pbo == p and np.allclose(small.logits, lg, rtol=1e-10, atol=1e-12)
    # the mean metric with many exact ties (multiples of 1/128: every sum exact, in any order)
    coarse = np.round(perf * 12_800) / 128
    m = pbo(coarse, n_splits=16, metric="mean")
    md = pbo(coarse, n_splits=16, metric=lambda x: x.mean(axis=0))
    assert m.pbo == md.pbo and np.array_equal(m.is_best, md.is_best)
    assert np.array_equal(m.logits, md.logits)


def test_cscv_needs_complementary_rows() -> None:
    from quantarena.tournaments.cscv import cscv_select
    from quantarena.tournaments.overfitting import _combination_masks

    masks = _combination_masks(4)
    s = np.ones((4, 3))
    with pytest.raises(ValueError, match="complement"):
        cscv_select(masks[[1, 0, 2, 3, 4, 5]], s, s, s, 4, sharpe=True)
