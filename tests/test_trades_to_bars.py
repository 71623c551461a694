"""Trades → time, volume and dollar bars, on the real XRP/ETH aggTrades file, checked
against pandas and a plain-Python reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantarena.data.loaders import load_file
from quantarena.data.read import TradeArrays
from quantarena.data.resample import resample_table
from quantarena.data.trades_to_bars import dollar_bars, time_bars, volume_bars

MIN = 60_000_000_000


@pytest.fixture(scope="module")
def xrp(sample_dir: Path) -> pa.Table:
    return load_file(sample_dir / "XRPETH-aggTrades-2019-10-11_13.csv").table


def reference_threshold_bars(price, qty, threshold, dollars):
    """One trade at a time: accumulate since the last bar; the crossing trade closes it."""
    bars, acc, start = [], 0.0, 0
    for i in range(len(qty)):
        acc += price[i] * qty[i] if dollars else qty[i]
        if acc >= threshold:
            p = price[start : i + 1]
            bars.append((start, i, p[0], max(p), min(p), p[-1], float(np.sum(qty[start : i + 1]))))
            acc, start = 0.0, i + 1
    return bars, start


def test_time_bars_match_pandas(xrp: pa.Table) -> None:
    bars = time_bars(xrp, "1m")
    df = xrp.to_pandas()
    df["bucket"] = df["ts"] // MIN * MIN
    df["notional"] = df["price"] * df["qty"]
    df["buy"] = np.where(df["side"] > 0, df["qty"], 0.0)
    g = df.groupby("bucket", sort=True)
    want = g.agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"),
        close=("price", "last"), volume=("qty", "sum"), quote_volume=("notional", "sum"),
        trades=("price", "size"), taker_buy_volume=("buy", "sum"),
    )  # fmt: skip
    assert bars.num_rows == len(want)
    np.testing.assert_array_equal(bars.column("ts").to_numpy(), want.index.to_numpy())
    for col in ("open", "high", "low", "close", "trades"):
        np.testing.assert_array_equal(bars.column(col).to_numpy(), want[col].to_numpy())
    for col in ("volume", "quote_volume", "taker_buy_volume"):
        np.testing.assert_allclose(bars.column(col).to_numpy(), want[col].to_numpy(), rtol=1e-12)
    assert set(bars.column("symbol").to_pylist()) == {"XRPETH"}


def test_time_bars_compose_with_resampling(xrp: pa.Table) -> None:
    via_1m = resample_table(time_bars(xrp, "1m"), "1h", from_="1m")
    direct = time_bars(xrp, "1h")
    assert via_1m.num_rows == direct.num_rows
    for col in ("ts", "open", "high", "low", "close", "trades"):
        assert via_1m.column(col).to_pylist() == direct.column(col).to_pylist()
    np.testing.assert_allclose(
        via_1m.column("volume").to_numpy(), direct.column("volume").to_numpy(), rtol=1e-12
    )


@pytest.mark.parametrize("dollars", [False, True])
def test_threshold_bars_match_reference(xrp: pa.Table, dollars: bool) -> None:
    price, qty = xrp.column("price").to_numpy(), xrp.column("qty").to_numpy()
    threshold = 2.0 if dollars else 1500.0  # ETH per bar / XRP per bar
    build = dollar_bars if dollars else volume_bars
    bars = build(xrp, threshold, with_close_ts=True)
    ref, rest = reference_threshold_bars(price, qty, threshold, dollars)
    assert bars.num_rows == len(ref) > 100
    ts = xrp.column("ts").to_numpy()
    np.testing.assert_array_equal(bars.column("ts").to_numpy(), ts[[r[0] for r in ref]])
    np.testing.assert_array_equal(bars.column("close_ts").to_numpy(), ts[[r[1] for r in ref]])
    for k, col in enumerate(("open", "high", "low", "close"), start=2):
        np.testing.assert_array_equal(bars.column(col).to_numpy(), [r[k] for r in ref])
    np.testing.assert_allclose(bars.column("volume").to_numpy(), [r[6] for r in ref], rtol=1e-12)
    assert bars.column("trades").to_numpy().sum() == rest
    partial = build(xrp, threshold, include_partial=True)
    assert partial.num_rows == bars.num_rows + (rest < len(qty))
    assert partial.column("trades").to_numpy().sum() == len(qty)


@settings(max_examples=60, deadline=None)
@given(
    qty=st.lists(st.integers(1, 50), min_size=1, max_size=200),
    threshold=st.integers(1, 120),
)
def test_volume_bar_properties(qty: list[int], threshold: int) -> None:
    n = len(qty)
    q = np.asarray(qty, dtype=np.float64)
    trades = TradeArrays(
        symbol="T",
        ts=np.arange(n, dtype=np.int64) * 1_000_000,
        price=np.linspace(1.0, 2.0, n),
        qty=q,
        side=np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int8),
        trade_id=np.arange(n, dtype=np.int64),
    )
    bars = volume_bars(trades, threshold, include_partial=True)
    vol = bars.column("volume").to_numpy()
    counts = bars.column("trades").to_numpy()
    assert counts.sum() == n and vol.sum() == q.sum()
    ends = np.cumsum(counts) - 1
    complete = vol[:-1] if vol[-1] < threshold else vol
    assert np.all(complete >= threshold)  # each complete bar reached the threshold …
    last_q = q[ends][: complete.size]
    assert np.all(complete - last_q < threshold)  # … only with its closing trade
    ref, _ = reference_threshold_bars(trades.price, q, threshold, False)
    assert len(ref) == complete.size


def test_bad_threshold_and_empty(xrp: pa.Table) -> None:
    with pytest.raises(ValueError, match="positive"):
        volume_bars(xrp, 0)
    empty = time_bars(xrp.slice(0, 0), "1m")
    assert empty.num_rows == 0
    assert "close_ts" in volume_bars(xrp.slice(0, 0), 10, with_close_ts=True).schema.names
    # sides: taker buys (side +1) only count toward taker_buy_volume
    df = xrp.to_pandas()
    tb = time_bars(xrp, "1d")
    assert np.isclose(
        tb.column("taker_buy_volume").to_numpy().sum(), df.loc[df.side > 0, "qty"].sum()
    )
    assert pd.Timestamp(tb.column("ts")[0].as_py(), tz="UTC") == pd.Timestamp(
        "2019-10-11", tz="UTC"
    )
