"""ML features: each one against an independent pandas computation, causality, the label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.strategies.ml.features import (
    DEFAULT_SPEC,
    FeatureSpec,
    compute_features,
    next_returns,
)

SPEC = FeatureSpec(
    lags=(1, 3, 8), vol_windows=(5, 20), rsi_window=14, volume_window=30, ma_windows=(10, 50)
)


@pytest.fixture(scope="module")
def btc(btc_1m_csv: Path) -> pd.DataFrame:
    df = pd.read_csv(btc_1m_csv, parse_dates=["timestamp"]).set_index("timestamp")
    return df.iloc[:3000]


@pytest.fixture(scope="module")
def feats(btc: pd.DataFrame) -> np.ndarray:
    return compute_features(btc["close"].to_numpy(), btc["volume"].to_numpy(), np, SPEC)


def col(feats: np.ndarray, name: str) -> np.ndarray:
    return feats[:, 0, SPEC.names.index(name)]


def assert_same(got: np.ndarray, expected: pd.Series, rtol: float = 1e-9, atol: float = 1e-12):
    exp = expected.to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(exp))
    np.testing.assert_allclose(got, exp, rtol=rtol, atol=atol, equal_nan=True)


def test_shape_and_names(feats: np.ndarray) -> None:
    assert feats.shape == (3000, 1, SPEC.n_features) and feats.dtype == np.float64
    assert SPEC.names == [
        "ret_1",
        "ret_3",
        "ret_8",
        "vol_5",
        "vol_20",
        "rsi_14",
        "volz_30",
        "dist_10",
        "dist_50",
    ]
    # every feature defined from row `warmup` on, and some feature undefined just before it
    assert np.isfinite(feats[SPEC.warmup :]).all()
    assert not np.isfinite(feats[SPEC.warmup - 1]).all()


@pytest.mark.parametrize("k", [1, 3, 8])
def test_lagged_log_returns(btc: pd.DataFrame, feats: np.ndarray, k: int) -> None:
    expected = np.log(btc["close"]) - np.log(btc["close"].shift(k))
    assert_same(col(feats, f"ret_{k}"), expected)


@pytest.mark.parametrize("w", [5, 20])
def test_rolling_volatility(btc: pd.DataFrame, feats: np.ndarray, w: int) -> None:
    r1 = np.log(btc["close"]).diff()
    assert_same(col(feats, f"vol_{w}"), r1.rolling(w).std(ddof=0), rtol=1e-7, atol=1e-12)


def test_rsi(btc: pd.DataFrame, feats: np.ndarray) -> None:
    d = btc["close"].diff()
    g = d.clip(lower=0).rolling(14).mean()
    lo = (-d).clip(lower=0).rolling(14).mean()
    expected = (100 * g / (g + lo)).where(g + lo > 0, 50.0).where(g.notna())
    assert_same(col(feats, "rsi_14"), expected, rtol=1e-7, atol=1e-7)
    got = col(feats, "rsi_14")
    assert np.nanmin(got) >= 0 and np.nanmax(got) <= 100


def test_volume_zscore(btc: pd.DataFrame, feats: np.ndarray) -> None:
    lv = np.log1p(btc["volume"])
    m, s = lv.rolling(30).mean(), lv.rolling(30).std(ddof=0)
    expected = ((lv - m) / s).where(s > 1e-12, 0.0).where(s.notna())
    assert_same(col(feats, "volz_30"), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("w", [10, 50])
def test_distance_from_moving_average(btc: pd.DataFrame, feats: np.ndarray, w: int) -> None:
    expected = np.log(btc["close"] / btc["close"].rolling(w).mean())
    assert_same(col(feats, f"dist_{w}"), expected, rtol=1e-7, atol=1e-12)


def test_causal_prefix_gives_identical_rows(btc: pd.DataFrame, feats: np.ndarray) -> None:
    c, v = btc["close"].to_numpy(), btc["volume"].to_numpy()
    for cut in (60, 777, 2500):
        head = compute_features(c[: cut + 1], v[: cut + 1], np, SPEC)
        np.testing.assert_array_equal(head, feats[: cut + 1])
    # changing the future leaves the past untouched
    c2, v2 = c.copy(), v.copy()
    c2[1500:] *= 1.3
    v2[1500:] = 0.0
    alt = compute_features(c2, v2, np, SPEC)
    np.testing.assert_array_equal(alt[:1500], feats[:1500])
    assert not np.array_equal(alt[1500:], feats[1500:], equal_nan=True)


def test_several_assets_are_independent_columns(btc: pd.DataFrame) -> None:
    c = btc["close"].to_numpy()
    v = btc["volume"].to_numpy()
    both = compute_features(np.c_[c, c[::-1]], np.c_[v, v[::-1]], np, DEFAULT_SPEC)
    one = compute_features(c[::-1], v[::-1], np, DEFAULT_SPEC)
    assert both.shape == (3000, 2, DEFAULT_SPEC.n_features)
    np.testing.assert_array_equal(both[:, 1:], one)


def test_next_returns_is_the_following_bar() -> None:
    c = np.array([100.0, 110.0, 99.0, 99.0])
    nr = next_returns(c)
    np.testing.assert_allclose(nr[:3, 0], [np.log(1.1), np.log(0.9), 0.0])
    assert np.isnan(nr[3, 0])


def test_without_volume_and_bad_input() -> None:
    c = 100 + np.arange(200.0)
    f = compute_features(c, None, np, SPEC)
    assert np.isnan(f[:, 0, SPEC.names.index("volz_30")]).all()
    with pytest.raises(ValueError, match="volume shape"):
        compute_features(c, np.ones(10), np, SPEC)
    with pytest.raises(ValueError, match="lags"):
        FeatureSpec(lags=(0, 2))
