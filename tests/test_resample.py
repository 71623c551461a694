"""Resampling: property tests against a plain-Python reference and pandas, plus the real
BTC-PERP file."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantarena.data.loaders import load_file
from quantarena.data.resample import (
    MONDAY_ORIGIN_NS,
    resample_bars,
    resample_frame,
    resample_table,
)

MIN = 60_000_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00Z (a Monday)


@st.composite
def bar_series(draw: st.DrawFn, max_bars: int = 300) -> dict[str, np.ndarray]:
    """1-minute bars with random gaps, random (consistent) OHLC and volumes."""
    n = draw(st.integers(1, max_bars))
    steps = draw(st.lists(st.integers(1, 90), min_size=n, max_size=n))
    offset = draw(st.integers(-3 * DAY // MIN, 3 * DAY // MIN))
    ts = T0 + (offset + np.cumsum(steps)) * MIN
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    o = 100 * np.exp(rng.normal(0, 0.01, n))
    c = 100 * np.exp(rng.normal(0, 0.01, n))
    h = np.maximum(o, c) * (1 + rng.random(n) * 0.01)
    lo = np.minimum(o, c) * (1 - rng.random(n) * 0.01)
    v = np.round(rng.random(n) * 10, 3)
    return {"ts": ts.astype(np.int64), "open": o, "high": h, "low": lo, "close": c, "volume": v}


def reference(bars: dict[str, np.ndarray], to_ns: int, origin: int = 0) -> dict[str, list]:
    """Plain-Python resampling, one bar at a time."""
    buckets: OrderedDict[int, dict] = OrderedDict()
    for i in range(bars["ts"].size):
        b = (int(bars["ts"][i]) - origin) // to_ns * to_ns + origin
        if b not in buckets:
            buckets[b] = {
                "open": bars["open"][i], "high": bars["high"][i], "low": bars["low"][i],
                "close": bars["close"][i], "volume": 0.0, "count": 0,
            }  # fmt: skip
        g = buckets[b]
        g["high"] = max(g["high"], bars["high"][i])
        g["low"] = min(g["low"], bars["low"][i])
        g["close"] = bars["close"][i]
        g["volume"] += bars["volume"][i]
        g["count"] += 1
    out: dict[str, list] = {"ts": list(buckets)}
    for k in ("open", "high", "low", "close", "volume", "count"):
        out[k] = [g[k] for g in buckets.values()]
    return out


def run(bars: dict[str, np.ndarray], to: int | str, **kw) -> object:
    return resample_bars(
        bars["ts"], bars["open"], bars["high"], bars["low"], bars["close"], bars["volume"],
        MIN, to, **kw,
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(bars=bar_series(), to_min=st.sampled_from([1, 2, 5, 15, 60, 240, 1440]))
def test_matches_reference(bars: dict[str, np.ndarray], to_min: int) -> None:
    r = run(bars, to_min * MIN)
    ref = reference(bars, to_min * MIN)
    np.testing.assert_array_equal(r.ts, ref["ts"])
    for k in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(r, k), ref[k])
    np.testing.assert_allclose(r.volume, ref["volume"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(r.count, ref["count"])


@settings(max_examples=40, deadline=None)
@given(bars=bar_series(), to=st.sampled_from(["5min", "1h", "4h", "1D"]))
def test_matches_pandas(bars: dict[str, np.ndarray], to: str) -> None:
    df = pd.DataFrame({k: v for k, v in bars.items() if k != "ts"})
    df.index = pd.to_datetime(bars["ts"])  # naive UTC: pandas honours origin for days then
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    want = df.resample(to, label="left", closed="left", origin="epoch").agg(agg)
    want = want[df["open"].resample(to, origin="epoch").count() > 0]  # pandas invents empty buckets
    r = run(bars, to.replace("min", "m").lower())
    np.testing.assert_array_equal(r.ts, want.index.as_unit("ns").asi8)
    for k in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(r, k), want[k].to_numpy())
    np.testing.assert_allclose(r.volume, want["volume"].to_numpy(), rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(bars=bar_series())
def test_invariants_and_composition(bars: dict[str, np.ndarray]) -> None:
    r = run(bars, "1h")
    assert np.all(np.diff(r.ts) > 0) and np.all(r.ts % HOUR == 0)
    assert np.all(r.high >= np.maximum(r.open, r.close)) and np.all(
        r.low <= np.minimum(r.open, r.close)
    )
    assert r.count.sum() == bars["ts"].size
    assert np.isclose(r.volume.sum(), bars["volume"].sum(), rtol=1e-12)
    # no empty bucket is invented: every bucket holds a bar
    assert np.all(r.count >= 1)
    # 1m → 15m → 1h equals 1m → 1h
    m15 = run(bars, "15m")
    two = resample_bars(m15.ts, m15.open, m15.high, m15.low, m15.close, m15.volume, "15m", "1h")
    np.testing.assert_array_equal(two.ts, r.ts)
    for k in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(two, k), getattr(r, k))
    np.testing.assert_allclose(two.volume, r.volume, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(bars=bar_series(max_bars=200))
def test_two_dimensional_equals_columns(bars: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    scale = rng.random(3) + 0.5
    cols = {k: bars[k][:, None] * scale for k in ("open", "high", "low", "close", "volume")}
    r2 = resample_bars(bars["ts"], *cols.values(), MIN, 4 * HOUR)
    for j in range(3):
        r1 = resample_bars(bars["ts"], *(c[:, j] for c in cols.values()), MIN, 4 * HOUR)
        np.testing.assert_array_equal(r2.close[:, j], r1.close)
        np.testing.assert_array_equal(r2.high[:, j], r1.high)
        np.testing.assert_array_equal(r2.volume[:, j], r1.volume)


def test_weeks_start_on_monday() -> None:
    ts = T0 + np.arange(0, 20 * DAY, DAY, dtype=np.int64) - 3 * DAY  # Fri 2023-12-29 onwards
    ones = np.ones(ts.size)
    r = resample_bars(ts, ones, ones, ones, ones, ones, "1d", "1w")
    days = [pd.Timestamp(t, tz="UTC").day_name() for t in r.ts]
    assert set(days) == {"Monday"}
    assert r.count.tolist() == [3, 7, 7, 3]
    assert MONDAY_ORIGIN_NS % DAY == 0 and pd.Timestamp(MONDAY_ORIGIN_NS).day_name() == "Monday"


def test_errors() -> None:
    ts = T0 + np.arange(4, dtype=np.int64) * 5 * MIN
    x = np.ones(4)
    with pytest.raises(ValueError, match="whole multiple of 5m"):
        resample_bars(ts, x, x, x, x, x, "5m", "7m")
    with pytest.raises(ValueError, match="whole multiple"):
        resample_bars(ts, x, x, x, x, x, "5m", "1m")
    with pytest.raises(ValueError, match="crosses"):
        resample_bars(ts + 48 * MIN, x, x, x, x, x, "5m", "1h")  # the 00:58 bar ends 01:03
    with pytest.raises(ValueError, match="strictly increasing"):
        resample_bars(ts[::-1], x, x, x, x, x, "5m", "1h")
    empty = resample_bars(ts[:0], x[:0], x[:0], x[:0], x[:0], x[:0], "5m", "1h")
    assert len(empty) == 0


def test_real_file_table_and_frame(btc_1m_csv: Path, sample_dir: Path) -> None:
    loaded = load_file(btc_1m_csv)
    t1h = resample_table(loaded.table, "1h")
    df = loaded.table.to_pandas()
    df.index = pd.to_datetime(df.pop("ts"), utc=True)
    want = (
        df.resample("1h")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last"})
        .dropna()
    )
    assert t1h.num_rows == len(want) == 1 + 31 * 24 + 6  # 2021-12-31 23h → 2022-02-01 05h
    np.testing.assert_array_equal(t1h.column("close").to_numpy(), want["close"].to_numpy())
    assert t1h.column("quote_volume").null_count == t1h.num_rows  # unknown stays unknown
    # a Binance kline table: optional columns are summed
    kl = load_file(sample_dir / "ADABTC-1m-2021-11-28.csv").table
    k5 = resample_table(kl, "5m")
    assert k5.column("trades").to_pylist() == [
        sum(kl.column("trades").to_pylist()[i : i + 5]) for i in (0, 5, 10)
    ]
    # DataFrame helper: DatetimeIndex in, DatetimeIndex out; symbol column grouped
    out = resample_frame(df[["open", "high", "low", "close", "volume"]], "1d")
    assert isinstance(out.index, pd.DatetimeIndex) and str(out.index.tz) == "UTC"
    assert out.index[0] == pd.Timestamp("2021-12-31", tz="UTC")
    np.testing.assert_allclose(
        out["volume"].to_numpy(), df["volume"].resample("1D").sum().to_numpy(), rtol=1e-12
    )
    long = pd.concat([df.assign(symbol="A"), df.assign(symbol="B", close=df["close"] * 2)])
    both = resample_frame(
        long.reset_index(names="t").assign(ts=lambda d: d["t"].astype("int64")), "1d"
    )
    assert list(both["symbol"].unique()) == ["A", "B"]
    a, b = both[both["symbol"] == "A"], both[both["symbol"] == "B"]
    np.testing.assert_array_equal(b["close"].to_numpy(), 2 * a["close"].to_numpy())
