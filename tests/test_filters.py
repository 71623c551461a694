"""Exchange filters in the bar engine (lot size, minimum notional) and vol_target's
rebalance band: hand-computed cases, and the churn they remove on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine import ExchangeFilters
from quantarena.engine.costs import Costs, Fees, Slippage
from quantarena.engine.simulate import SimulationError, simulate
from quantarena.strategies.runner import run_population
from quantarena.strategies.vol_target import VolTarget

COSTS = Costs(fees=Fees(taker_bps=10.0), slippage=Slippage(bps=2.0))


def _flat_panel(prices: list[float], n_assets: int = 1) -> BarPanel:
    """Bars whose open = high = low = close = the given price (so fills are at that price)."""
    p = np.asarray(prices, dtype=np.float64)
    if n_assets > 1:
        p = np.stack([p * (j + 1) for j in range(n_assets)], axis=1)
    ts = np.arange(len(prices), dtype=np.int64) * 60_000_000_000
    return BarPanel.from_arrays(ts, p, p, p, p, np.full_like(p, 1e6))


def _shares(res, bars: BarPanel) -> np.ndarray:
    """Shares held at each close, (T, A, P), from the recorded positions and equity."""
    pos = np.asarray(res.positions)
    if pos.ndim == 2:
        pos = pos[:, None, :]
    eq = np.asarray(res.equity)[:, None, :]
    return pos * eq / np.asarray(bars.close)[:, :, None]


def test_lot_size_rounds_the_target_quantity_toward_zero():
    bars = _flat_panel([100.0] * 4)
    # equity 1000: a 0.47 target is 4.7 shares → 4 with lot 2 → 4; lot 0.5 → 4.5; none → 4.7
    w = np.array([0.47, 0.47, 0.47, 0.47])
    got = {}
    for lot in (0.0, 0.5, 2.0):
        res = simulate(bars, w, init_cash=1000.0, backend="cpu", record=("equity", "positions"),
                       filters=ExchangeFilters(lot_size=lot))  # fmt: skip
        got[lot] = _shares(res, bars)[-1, 0, 0]
    assert got[0.0] == pytest.approx(4.7)
    assert got[0.5] == pytest.approx(4.5)
    assert got[2.0] == pytest.approx(4.0)
    # a target below one lot is flat: no trade at all
    res = simulate(bars, np.full(4, 0.15), init_cash=1000.0, backend="cpu",
                   filters=ExchangeFilters(lot_size=2.0))  # fmt: skip
    assert res.metrics["n_trades"][0] == 0 and res.metrics["turnover"][0] == 0


def test_min_notional_skips_small_trades_but_never_a_full_exit():
    bars = _flat_panel([100.0] * 6)
    # 0.5 of 1000 → 5 shares (500); 0.505 → +0.05 shares = 5 quote units < 10: not filled;
    # 0.6 → +1 share = 100: filled; 0.001 → a 5.99-share sale, filled; 0 → full exit of
    # 0.01 shares (1 quote unit), filled although below the minimum.
    w = np.array([0.5, 0.505, 0.6, 0.001, 0.0, 0.0])
    res = simulate(bars, w, init_cash=1000.0, backend="cpu", record=("equity", "positions"),
                   filters=ExchangeFilters(min_notional=10.0))  # fmt: skip
    sh = _shares(res, bars)[:, 0, 0]
    np.testing.assert_allclose(sh, [0.0, 5.0, 5.0, 6.0, 0.01, 0.0], atol=1e-9)
    # and without the filter the 0.05-share trade happens
    ref = simulate(bars, w, init_cash=1000.0, backend="cpu", record=("equity", "positions"))
    assert _shares(ref, bars)[2, 0, 0] == pytest.approx(5.05)


def test_per_asset_filters_in_a_multi_asset_panel():
    bars = _flat_panel([100.0] * 3, n_assets=2)  # asset 1 trades at 200
    w = np.zeros((3, 2, 1))
    w[:, 0, 0] = 0.33  # 3.3 shares of asset 0
    w[:, 1, 0] = 0.33  # 1.65 shares of asset 1
    res = simulate(bars, w, init_cash=1000.0, backend="cpu", record=("equity", "positions"),
                   filters=ExchangeFilters(lot_size=(1.0, 0.5)))  # fmt: skip
    np.testing.assert_allclose(_shares(res, bars)[-1, :, 0], [3.0, 1.5], atol=1e-12)


def test_no_filters_is_bit_identical_to_the_plain_engine(btc_1m_csv: Path):
    df = pd.read_csv(btc_1m_csv, nrows=3000)
    df.index = pd.to_datetime(df["timestamp"], utc=True)
    bars = BarPanel.from_frame(df, symbol="BTC-PERP")
    agent = VolTarget(max_position=0.5)
    pop = agent.grid(lookback=[30, 60], vol_window=[60, 120])
    a = run_population(agent, bars, pop, costs=COSTS, backend="cpu", record=("equity",))
    b = run_population(agent, bars, pop, costs=COSTS, backend="cpu", record=("equity",),
                       filters=ExchangeFilters())  # fmt: skip
    np.testing.assert_array_equal(np.asarray(a.equity), np.asarray(b.equity))


def test_bad_filters_are_refused():
    bars = _flat_panel([100.0] * 3)
    with pytest.raises(SimulationError, match=r"filters.lot_size: 2 values for 1 assets"):
        simulate(bars, np.zeros(3), backend="cpu", filters=ExchangeFilters(lot_size=(1.0, 2.0)))
    with pytest.raises(SimulationError, match=r"filters.min_notional must be finite and >= 0"):
        simulate(bars, np.zeros(3), backend="cpu", filters=ExchangeFilters(min_notional=-1.0))


@pytest.fixture(scope="module")
def btc(btc_1m_csv: Path) -> BarPanel:
    df = pd.read_csv(btc_1m_csv, nrows=20_000)
    df.index = pd.to_datetime(df["timestamp"], utc=True)
    return BarPanel.from_frame(df, symbol="BTC-PERP")


def test_band_and_filters_cut_vol_target_churn_on_real_data(btc):
    """On two weeks of real 1-minute BTC bars the plain agent changes its weight on nearly
    every bar (each change is an order); the band keeps the weight unless it moves by more
    than the band, cutting the orders by an order of magnitude (the sign flips remain: they
    are most of the turnover), and the exchange filters drop the smallest adjustments.
    Fused and block replays agree with both on."""
    agent = VolTarget(max_position=0.1)
    n = 3
    pop = {
        "lookback": np.full(n, 240),
        "vol_window": np.full(n, 60),
        "target_vol": np.full(n, 0.25),
        "band": np.array([0.0, 0.25, 0.0]),
    }
    w = agent.positions(btc, pop)
    changes = (np.diff(w, axis=0) != 0).sum(axis=0)
    flips = (np.diff(np.sign(w), axis=0) != 0).sum(axis=0)
    assert changes[0] > 0.9 * btc.n_bars  # nearly every bar
    assert changes[1] < 0.1 * changes[0]
    assert flips[1] == flips[0] and changes[1] >= flips[1]  # every flip still goes through
    filt = ExchangeFilters(lot_size=0.0001, min_notional=5.0)  # Binance BTCUSDT's
    runs = {}
    for fuse in (True, False):
        runs[fuse] = [
            run_population(
                agent,
                btc,
                pop,
                costs=COSTS,
                backend="cpu",
                init_cash=10_000.0,
                fuse=fuse,
                filters=f,
            )  # fmt: skip
            for f in (None, filt)
        ]
    for a, b in zip(runs[True], runs[False], strict=True):
        for k in a.metrics:
            np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    plain, filtered = runs[True]
    turn, fees = plain.metrics["turnover"], plain.metrics["fees_paid"]
    assert turn[1] < turn[0] and fees[1] < fees[0]
    # the filters alone (set 2) trade less than the plain rule, and pay less
    assert filtered.metrics["turnover"][2] < turn[2]
    assert filtered.metrics["fees_paid"][2] < fees[2]


def test_cli_backtest_takes_the_filters(btc_1m_csv: Path, tmp_path: Path):
    """``quantarena backtest --lot-size --min-notional --init-cash`` gives the numbers of the
    Python facade with the same filters."""
    import json

    from typer.testing import CliRunner

    from quantarena.backtest import backtest
    from quantarena.cli import app

    df = pd.read_csv(btc_1m_csv, nrows=3000)
    csv = tmp_path / "BTC-PERP-1m.csv"
    df.to_csv(csv, index=False)
    args = ["backtest", "--file", str(csv), "--agent", "vol_target", "--param", "lookback=60",
            "--param", "vol_window=60", "--param", "target_vol=0.5", "--param", "band=0,0.2",
            "--init-cash", "10000", "--lot-size", "0.001", "--min-notional", "5", "--json",
            "--backend", "cpu", "--by", "total_return"]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    filt = ExchangeFilters(lot_size=0.001, min_notional=5.0)
    ref = backtest(csv, "vol_target", {"lookback": 60, "vol_window": 60, "target_vol": 0.5,
                                       "band": "0,0.2"}, backend="cpu", init_cash=10_000.0,
                   filters=filt)  # fmt: skip
    plain = backtest(csv, "vol_target", {"lookback": 60, "vol_window": 60, "target_vol": 0.5,
                                         "band": "0,0.2"}, backend="cpu", init_cash=10_000.0)  # fmt: skip
    got = {row["param_set"]: row["metrics"]["turnover"] for row in doc["top"]}
    for i, turnover in got.items():
        assert turnover == pytest.approx(ref.metrics["turnover"].iloc[i], rel=1e-12)
    assert not np.allclose(ref.metrics["turnover"], plain.metrics["turnover"])
