"""Arbitrage agents on the two-instrument taker kernel: the rolling OLS against numpy's
polyfit, hand-built quote sequences for the cross-venue and pairs rules (latency, fees,
inventory caps), and the real Binance spot / USD-M overlap end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantarena.data.store import Store
from quantarena.engine.tick import from_rows
from quantarena.engine.tick import taker as K
from quantarena.strategies.arbitrage import CrossVenueArb, PairsArb
from quantarena.tick_backtest import tick_backtest


def test_rolling_pairs_matches_polyfit():
    rng = np.random.default_rng(0)
    mb = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 300)))
    ma = 50 * mb**1.3 * np.exp(rng.normal(0, 1e-3, 300)) / 100**1.3
    z, b = K.rolling_pairs(ma, mb, 40)
    assert np.isnan(z[:39]).all()
    for t in (39, 120, 299):
        x, y = np.log(mb[t - 39 : t + 1]), np.log(ma[t - 39 : t + 1])
        slope, icpt = np.polyfit(x, y, 1)
        s = y - slope * x
        assert b[t] == pytest.approx(slope, rel=1e-9)
        assert z[t] == pytest.approx((s[-1] - s.mean()) / s.std(ddof=1), rel=1e-9)


def _two(rows_a, rows_b):
    return [from_rows(rows_a, "A"), from_rows(rows_b, "B")]


def test_cross_venue_takes_both_sides_after_latency_and_caps_inventory():
    # B's bid 100.5 beats A's ask 100.0 by 50 bps; fees 5 + 5 bps; threshold 10 bps
    a = [
        ("quote", 0, 99.9, 1, 100.0, 1),
        ("quote", 20, 99.9, 1, 100.0, 1),
        ("quote", 40, 99.9, 1, 100.0, 1),
    ]
    b = [
        ("quote", 1, 100.5, 1, 100.6, 1),
        ("quote", 30, 100.5, 1, 100.6, 1),
        ("quote", 50, 100.5, 1, 100.6, 1),
    ]
    ag = CrossVenueArb(order_qty=1.0, latency_ms=(1e-5, 1e-5), taker_bps=(5.0, 5.0), capital=0.0)
    st = ag.run_ticks(_two(a, b), {"threshold_bps": [10.0, 10.0], "max_inventory": [1.0, 2.0]})
    # cap 1: one round (buy 1 A @100, sell 1 B @100.5); cap 2: two rounds
    np.testing.assert_allclose(st.account("position"), [1.0, 2.0])
    np.testing.assert_allclose(st.account("position_b"), [-1.0, -2.0])
    fee = (100.0 + 100.5) * 5e-4
    np.testing.assert_allclose(st.account("cash"), [0.5 - fee, 2 * (0.5 - fee)])
    # a threshold above the edge: nothing
    st = ag.run_ticks(_two(a, b), {"threshold_bps": [45.0], "max_inventory": [1.0]})
    assert st.account("n_fills")[0] == 0


def test_cross_venue_latency_gives_the_later_price():
    # decided at t=1 (B quotes 100.5); A's ask moves to 100.2 at t=5. A leg acts on the book as
    # it stood before the first event at or after its arrival
    a = [
        ("quote", 0, 99.9, 1, 100.0, 1),
        ("quote", 5, 100.1, 1, 100.2, 1),
        ("quote", 40, 100.1, 1, 100.2, 1),
    ]
    b = [("quote", 1, 100.5, 1, 100.6, 1), ("quote", 30, 100.5, 1, 100.6, 1)]
    kw = dict(order_qty=1.0, taker_bps=(0.0, 0.0), capital=0.0)
    fast = CrossVenueArb(
        latency_ms=(1e-6, 1e-6), **kw
    )  # 1 ns: acts at the t=5 event on the old book
    slow = CrossVenueArb(latency_ms=(2e-5, 2e-5), **kw)  # 20 ns: acts at t=30, A's ask is 100.2
    p = {"threshold_bps": [10.0], "max_inventory": [1.0]}
    assert fast.run_ticks(_two(a, b), p).account("cash")[0] == pytest.approx(0.5)
    assert slow.run_ticks(_two(a, b), p).account("cash")[0] == pytest.approx(0.3)


def test_pairs_enters_on_a_spread_spike_and_exits():
    # A and B move together (1 s steps); A spikes up at t=100 s and comes back at t=110 s
    rows_a, rows_b = [], []
    rng = np.random.default_rng(1)
    level = 100.0
    for s in range(160):
        level *= np.exp(rng.normal(0, 2e-4))
        pa = level * (1.01 if 100 <= s < 110 else 1.0) * np.exp(rng.normal(0, 1e-5))
        t = s * 10**9
        rows_a.append(("quote", t, pa - 0.01, 1, pa + 0.01, 1))
        rows_b.append(("quote", t + 1, level - 0.01, 1, level + 0.01, 1))
    ag = PairsArb(notional=1000.0, latency_ms=(1.0, 1.0), taker_bps=(0.0, 0.0), capital=0.0)
    st = ag.run_ticks(_two(rows_a, rows_b), {"window": [60], "z_entry": [3.0], "z_exit": [0.5]})
    # short the spread at the spike (sell A, buy B), back to flat after: 4 legs, a profit
    assert st.account("n_fills")[0] == 4
    assert st.account("position")[0] == pytest.approx(0.0, abs=1e-12)
    assert st.equity()[0] > 0


@pytest.fixture(scope="module")
def both_store(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("arb") / "store"
    t = sample_dir / "ticks"
    Store(root).ingest(
        [
            t / "binance-usdm-BTCUSDT-20240808-capture.gz",
            t / "binance-spot-BTCUSDT-20240808-capture.gz",
        ]
    )
    return root


@pytest.mark.parametrize("agent", ["pairs_arb", "cross_venue_arb"])
def test_real_spot_and_perp_overlap(both_store: Path, agent: str):
    res = tick_backtest(both_store, agent, None, symbol="BINANCE:BTCUSDT,BINANCE-USDM:BTCUSDT")
    assert res.n_params > 4
    assert np.isfinite(res.equity).all() and res.equity.shape[0] == 7
    np.testing.assert_allclose(res.metrics["end_equity"], res.state.equity())
    with pytest.raises(ValueError, match="give --symbol A,B"):
        tick_backtest(both_store, agent, None, symbol="BINANCE:BTCUSDT")
