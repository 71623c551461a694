"""Paper trading over a replayed stream equals the backtest: orders, fills, fees, equity.

Real data (FTX BTC-PERP 1-minute bars, the Binance alt/BTC 5-minute pairs with gaps), the
backtest's default costs, risk limits that do not bind. The reference is the engine itself
(:func:`quantarena.strategies.runner.run_population`), run once over the whole span; the
paper trader sees one bar at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine.api import load_bars_any
from quantarena.engine.costs import DEFAULT_COSTS, Costs, Fees, Funding, Slippage
from quantarena.live.exchange import PaperExchange
from quantarena.live.risk import RiskLimits
from quantarena.live.trader import PaperTrader
from quantarena.strategies.registry import get_agent
from quantarena.strategies.runner import run_population

LOOSE = RiskLimits(
    max_position=1.0, max_gross=None, daily_loss=None, max_drawdown=None, max_orders=None
)

AGENTS = [
    ("momentum", {"fast": 10, "slow": 50, "ma": "ema"}),
    ("mean_reversion", {"window": 30, "entry": 1.5, "exit": 0.25}),
    ("breakout", {"window": 30, "exit_window": 10}),
    ("vol_target", {"lookback": 60, "vol_window": 60, "target_vol": 0.5}),
    ("buy_hold", {"weight": 1.0}),
]


@pytest.fixture(scope="module")
def btc(btc_1m_csv: Path) -> BarPanel:
    return load_bars_any(btc_1m_csv, None, None, None, None).select(slice(0, 3000))


@pytest.fixture(scope="module")
def alts(sample_dir: Path) -> BarPanel:
    files = sorted((sample_dir / "crypto_5m_binance").glob("*.feather"))[:3]
    frames = {f.name.split("-")[0]: pd.read_feather(f).set_index("date") for f in files}
    idx = sorted(set().union(*(df.index for df in frames.values())))[:1500]
    cols = {k: df.reindex(idx) for k, df in frames.items()}
    ts = pd.DatetimeIndex(idx).as_unit("ns").asi8
    fields = [
        np.column_stack([cols[k][n].to_numpy(np.float64) for k in cols])
        for n in ("open", "high", "low", "close", "volume")
    ]
    return BarPanel.from_arrays(ts, *fields, symbols=list(cols))


def _paper(agent, params, bars, costs=DEFAULT_COSTS, history=None):
    tr = PaperTrader("t1", agent, params, bars.symbols, bars.interval_ns, costs=costs, limits=LOOSE)
    if history is not None:
        tr.warm_up(history)
    return tr, tr.run(bars)


def _check_equal(tr, steps, ref):
    eq = np.array([s.equity for s in steps])
    np.testing.assert_array_equal(eq, np.asarray(ref.equity)[:, 0])
    acc = ref.account()
    ex = tr.exchange
    assert ex.cash == acc.cash
    np.testing.assert_array_equal(ex.shares, acc.shares)
    assert ex.fees == ref.metrics["fees_paid"][0]


@pytest.mark.parametrize("name,params", AGENTS, ids=[a[0] for a in AGENTS])
def test_paper_equals_backtest_one_asset(btc, name, params):
    agent = get_agent(name)
    tr, steps = _paper(agent, params, btc)
    ref = run_population(agent, btc, {k: [v] for k, v in params.items()}, costs=DEFAULT_COSTS,
                         record=("equity", "positions"), trades=True)  # fmt: skip
    _check_equal(tr, steps, ref)
    fills = [f for s in steps for f in s.fills]
    assert len(fills) > 0
    # every fill: the fee is the default 10 bps of its notional at a price 2 bps adverse
    for f in fills:
        assert f.fee == pytest.approx(abs(f.qty) * f.price * 10e-4, rel=1e-12)
        o = btc.open[f.bar, 0]
        assert f.price == pytest.approx(o * (1 + np.sign(f.qty) * 2e-4), rel=1e-12)
    assert sum(f.fee for f in fills) == pytest.approx(tr.exchange.fees, rel=1e-12)
    # every order fills at the next bar's open, under its own client id
    orders = {o.client_id: o for s in steps for o in s.orders}
    for f in fills:
        assert orders[f.client_id].bar == f.bar - 1
    # the backtest's trade list: each trade opens with a paper fill at the same bar and price
    by_bar = {f.bar: f for f in fills}
    tdf = ref.trades
    assert len(tdf) > 0
    for row in tdf.itertuples():
        f = by_bar[int(row.entry_bar)]
        if name != "vol_target":  # vol_target resizes (adds), so its entry is an average
            assert f.price == row.entry_price
        assert np.sign(f.qty) == row.direction or np.sign(f.qty) == np.sign(row.direction)


def test_paper_equals_backtest_several_assets_with_gaps_and_funding(alts):
    agent = get_agent("momentum")
    params = {"fast": 12, "slow": 48, "ma": "sma"}
    costs = Costs(
        fees=Fees(taker_bps=7.5), slippage=Slippage(bps=3), funding=Funding(rate_per_8h=1e-4)
    )
    tr, steps = _paper(agent, params, alts, costs)
    ref = run_population(agent, alts, {k: [v] for k, v in params.items()}, costs=costs,
                         record=("equity",))  # fmt: skip
    _check_equal(tr, steps, ref)
    assert sum(len(s.fills) for s in steps) > 20


def test_warm_up_then_trade_equals_backtest_of_the_span(btc):
    """History feeds the indicators only; trading starts flat at the first live bar, as a
    backtest of that span (earlier bars feeding the indicators) does."""
    agent = get_agent("mean_reversion")
    params = {"window": 40, "entry": 2.0, "exit": 0.5}
    hist, live = btc.select(slice(0, 1000)), btc.select(slice(1000, 3000))
    tr, steps = _paper(agent, params, live, history=hist)
    ref = run_population(agent, btc, {k: [v] for k, v in params.items()}, replay=slice(1000, 3000),
                         costs=DEFAULT_COSTS, record=("equity",))  # fmt: skip
    _check_equal(tr, steps, ref)


def test_exchange_state_round_trips(btc):
    agent = get_agent("momentum")
    p = {"fast": 5, "slow": 20}
    tr, _ = _paper(agent, p, btc.select(slice(0, 500)))
    snap = tr.exchange.state()
    ex2 = PaperExchange("t1", btc.symbols, btc.interval_ns, DEFAULT_COSTS)
    ex2.restore(snap)
    assert ex2.state() == snap
    assert ex2.equity == tr.exchange.equity


def test_bad_price_is_named(btc):
    ex = PaperExchange("x", ["BTC"], btc.interval_ns)
    with pytest.raises(ValueError, match=r"bar 0 \(BTC\).*not positive"):
        ex.mark(0, [-1.0], [1.0], [1.0], [1.0], [1.0])


def test_one_parameter_set_only(btc):
    with pytest.raises(ValueError, match="ONE parameter set"):
        PaperTrader(
            "t", get_agent("momentum"), {"fast": [5, 6], "slow": [20, 30]}, ["BTC"], btc.interval_ns
        )


def test_the_pure_live_modules_import_no_redis_ray_or_mlflow():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import quantarena.live.exchange, quantarena.live.risk, quantarena.live.trader\n"
        "import quantarena.live.messages, quantarena.live.director, quantarena.strategies.streaming\n"
        "bad = [m for m in ('redis', 'ray', 'mlflow') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", ["momentum", "vol_target"])
def test_paper_with_exchange_filters_equals_backtest_with_them(btc, name):
    """Lot size and minimum notional (quote currency: a 10,000 USDT account) applied by the
    paper exchange give the backtest's equity, cash, shares and fees with the same filters."""
    from quantarena.engine.filters import ExchangeFilters

    params = dict(AGENTS)[name]
    agent = get_agent(name)
    filt = ExchangeFilters(lot_size=0.001, min_notional=25.0)
    tr = PaperTrader("t1", agent, params, btc.symbols, btc.interval_ns, costs=DEFAULT_COSTS,
                     limits=LOOSE, init_cash=10_000.0, filters=filt)  # fmt: skip
    steps = tr.run(btc)
    pop = {k: [v] for k, v in params.items()}
    ref = run_population(agent, btc, pop, costs=DEFAULT_COSTS, record=("equity",),
                         init_cash=10_000.0, filters=filt)  # fmt: skip
    _check_equal(tr, steps, ref)
    # every share count is a whole number of lots, and the filters bind
    assert np.allclose(tr.exchange.shares / 0.001, np.round(tr.exchange.shares / 0.001))
    fills = [f for s in steps for f in s.fills]
    assert fills and all(abs(f.qty) * btc.open[f.bar, 0] >= 25.0 - 1e-9 for f in fills)
    free = run_population(agent, btc, pop, costs=DEFAULT_COSTS, record=("equity",),
                          init_cash=10_000.0)  # fmt: skip
    assert not np.array_equal(np.asarray(free.equity), np.asarray(ref.equity))


def test_filters_from_a_live_config_section():
    from quantarena.engine.filters import ExchangeFilters

    f = ExchangeFilters.from_config(
        {"min_notional": 10, "symbols": {"ETH": {"lot_size": 0.01, "min_notional": 5}}},
        ["BTC", "ETH"],
    )
    assert f == ExchangeFilters(lot_size=(0.0, 0.01), min_notional=(10.0, 5.0))
    assert ExchangeFilters.from_config({}, ["BTC"]) is None
    with pytest.raises(ValueError, match=r"filters.symbols: 'SOL' is not a symbol of the data"):
        ExchangeFilters.from_config({"symbols": {"SOL": {"lot_size": 1}}}, ["BTC"])
    with pytest.raises(ValueError, match=r"filters: unknown key 'lot'"):
        ExchangeFilters.from_config({"lot": 1}, ["BTC"])
    with pytest.raises(ValueError, match=r"filters.min_notional must be finite and >= 0"):
        ExchangeFilters.from_config({"min_notional": -1}, ["BTC"])


def test_live_config_filters_and_capital_reach_the_paper_exchange():
    from quantarena.live.service import load_live_config, make_trader

    cfg = load_live_config({"agents": [{"agent": "momentum"}], "capital": 10_000,
                            "filters": {"min_notional": 10, "symbols": {"B": {"lot_size": 0.1}}}})  # fmt: skip
    tr = make_trader(cfg.agents[0], ["A", "B"], 60_000_000_000, cfg.limits, cfg)
    ex = tr.exchange
    assert ex.init_cash == 10_000.0
    assert ex._lot.tolist() == [0.0, 0.1] and ex._min_notional.tolist() == [10.0, 10.0]
    with pytest.raises(ValueError, match="live config filters.symbols: 'C' is not a symbol"):
        bad = load_live_config(
            {"agents": [{"agent": "momentum"}], "filters": {"symbols": {"C": {}}}}
        )
        make_trader(bad.agents[0], ["A", "B"], 60_000_000_000, bad.limits, bad)
    with pytest.raises(ValueError, match="capital must be a number > 0"):
        load_live_config({"agents": [{"agent": "momentum"}], "capital": 0})
