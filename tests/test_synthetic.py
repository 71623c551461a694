"""Synthetic market: determinism, OHLC consistency and the model's statistical properties
(loose bounds, several standard errors wide, on fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from quantarena.data.schema import BAR_SCHEMA
from quantarena.data.synthetic import (
    YEAR_NS,
    markov_regimes,
    simulate_market,
    synthetic_bars,
    synthetic_panel,
)

DT = 60e9 / YEAR_NS  # one minute in years


@pytest.fixture(scope="module")
def market():
    return simulate_market(6, 200_000, "1m", seed=11)


def test_deterministic_and_seed_sensitive() -> None:
    a = simulate_market(3, 5_000, seed=7)
    b = simulate_market(3, 5_000, seed=7, threads=1)  # threading does not change numbers
    c = simulate_market(3, 5_000, seed=8)
    for k in ("open", "high", "low", "close", "volume", "regime", "jumps"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert not np.allclose(a.close, c.close)
    # a symbol's path does not depend on how many symbols are simulated
    d = simulate_market(5, 5_000, seed=7)
    np.testing.assert_array_equal(d.close[:3], a.close)


def test_ohlc_consistency_and_layout(market) -> None:
    o, h, lo, c, v = market.open, market.high, market.low, market.close, market.volume
    assert np.all(h >= np.maximum(o, c)) and np.all(lo <= np.minimum(o, c))
    assert np.all(lo > 0) and np.all(v > 0) and np.all(np.isfinite(h))
    np.testing.assert_array_equal(o[:, 1:], c[:, :-1])  # continuous market
    assert market.ts[0] == 1_704_067_200_000_000_000  # 2024-01-01T00:00Z
    assert np.all(np.diff(market.ts) == 60_000_000_000)
    assert market.symbols == [f"SYN{j:03d}" for j in range(6)]


def test_table_and_panel_views() -> None:
    m = simulate_market(3, 1_000, "5m", start="2023-06-01", seed=2)
    t = synthetic_bars(3, 1_000, "5m", start="2023-06-01", seed=2)
    assert t.schema.equals(BAR_SCHEMA) and t.num_rows == 3_000
    assert t.column("symbol").to_pylist()[999:1001] == ["SYN000", "SYN001"]
    np.testing.assert_array_equal(t.column("close").to_numpy(), m.close.reshape(-1))
    p = synthetic_panel(3, 1_000, "5m", start="2023-06-01", seed=2)
    assert p.close.shape == (1_000, 3) and p.close.flags.c_contiguous and p.mask.all()
    np.testing.assert_array_equal(p.close, m.close.T)
    assert p.interval_ns == 300_000_000_000


def _diffusive(market) -> tuple[np.ndarray, np.ndarray]:
    """Log returns of bars without jumps (bar 0 excluded: its open is the start price)."""
    r = np.log(market.close / market.open)[:, 1:]
    keep = market.jumps[:, 1:] == 0
    return r, keep


def test_regime_volatility_ratio(market) -> None:
    r, keep = _diffusive(market)
    turb = np.broadcast_to(market.regime[1:] == 1, r.shape)
    assert turb.sum() > 20_000  # both regimes well sampled (~5 cycles of 25 days)
    vol_calm = r[keep & ~turb].std() / np.sqrt(DT)
    vol_turb = r[keep & turb].std() / np.sqrt(DT)
    assert vol_calm == pytest.approx(0.6, rel=0.02)
    assert vol_turb / vol_calm == pytest.approx(3.0, rel=0.03)


def test_jump_count_near_expectation(market) -> None:
    expected = 25.0 * DT * market.close.size  # Poisson mean over all symbol-bars
    assert abs(market.jumps.sum() - expected) < 4 * np.sqrt(expected)
    heavy = simulate_market(2, 50_000, seed=3, jumps_per_year=2_000.0, jump_std=0.05)
    lam = 2_000.0 * DT * heavy.close.size
    assert abs(heavy.jumps.sum() - lam) < 4 * np.sqrt(lam)
    # jump bars carry the jump: their returns are far wider than diffusive ones
    r = np.log(heavy.close / heavy.open)
    assert r[heavy.jumps == 1].std() > 5 * r[heavy.jumps == 0].std()


def test_cross_correlation(market) -> None:
    r, keep = _diffusive(market)
    ok = keep.all(axis=0)
    corr = np.corrcoef(r[:, ok])
    off = corr[~np.eye(corr.shape[0], dtype=bool)]
    assert np.all(np.abs(off - 0.5) < 0.03)
    indep = simulate_market(2, 50_000, seed=5, correlation=0.0, jumps_per_year=0)
    assert abs(np.corrcoef(np.log(indep.close / indep.open))[0, 1]) < 0.03


def test_high_low_follow_brownian_extremes() -> None:
    """For Brownian motion over a bar with sd s, E[max - open] = s * sqrt(2 / pi)."""
    m = simulate_market(2, 100_000, seed=9, jumps_per_year=0, turbulent_vol_multiplier=1.0)
    s = 0.6 * np.sqrt(DT)
    up = np.log(m.high / m.open) / s
    down = -np.log(m.low / m.open) / s
    assert up.mean() == pytest.approx(np.sqrt(2 / np.pi), rel=0.01)
    assert down.mean() == pytest.approx(np.sqrt(2 / np.pi), rel=0.01)
    # Parkinson's range estimator recovers the variance to a few percent
    park = (np.log(m.high / m.low) ** 2).mean() / (4 * np.log(2))
    assert park / s**2 == pytest.approx(1.0, abs=0.05)


def test_volume_rises_with_moves_and_turbulence(market) -> None:
    r, keep = _diffusive(market)
    logv = np.log(market.volume[:, 1:])
    turb = np.broadcast_to(market.regime[1:] == 1, r.shape)
    # within the calm regime, bigger moves trade more
    rho, p = stats.spearmanr(np.abs(r[keep & ~turb]), logv[keep & ~turb])
    assert rho > 0.2 and p < 1e-6
    # the turbulent regime trades more: log(2) from the multiplier plus the |z| effect,
    # which is the same per unit of sd in both regimes
    diff = logv[keep & turb].mean() - logv[keep & ~turb].mean()
    assert diff == pytest.approx(np.log(2.0), abs=0.03)


def test_regime_durations() -> None:
    rng = np.random.default_rng(0)
    path = markov_regimes(rng, 2_000_000, 1 / 400, 1 / 100)
    edges = np.flatnonzero(np.diff(path)) + 1
    runs = np.diff(np.r_[0, edges, path.size])
    states = path[np.r_[0, edges]]
    calm, turb = runs[states == 0][:-1], runs[states == 1][:-1]
    assert path[0] == 0
    assert calm.mean() == pytest.approx(400, rel=0.1)
    assert turb.mean() == pytest.approx(100, rel=0.1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_symbols"):
        simulate_market(0, 10)
    with pytest.raises(ValueError, match="correlation"):
        simulate_market(2, 10, correlation=1.0)
    with pytest.raises(ValueError, match="interval"):
        simulate_market(2, 10, interval="fortnight")
