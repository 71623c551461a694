"""Fused signal + replay: the shipped agents' targets computed inside the engine's loop give
exactly the numbers of the block path (targets built, then replayed), on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine import signal_rules as R
from quantarena.engine.costs import Costs, Fees, Slippage
from quantarena.engine.simulate import SimulationError, simulate
from quantarena.engine.stops import Stops
from quantarena.strategies.breakout import Breakout
from quantarena.strategies.mean_reversion import MeanReversion
from quantarena.strategies.momentum import Momentum
from quantarena.strategies.runner import PopulationRun, run_population
from quantarena.strategies.vol_target import VolTarget

COSTS = Costs(fees=Fees(taker_bps=5.0), slippage=Slippage(bps=1.0))
STOPS = Stops(stop_loss=0.01, take_profit=0.02, trailing=0.006)

AGENTS = {
    "momentum": (
        Momentum(max_position=0.5),
        {"fast": [3, 5, 8, 13], "slow": [20, 40, 90], "ma": ["sma", "ema"]},
    ),
    "momentum-long": (
        Momentum(max_position=0.3, long_only=True),
        {"fast": [5, 10], "slow": [30, 60], "ma": ["ema"]},
    ),
    "mean_reversion": (
        MeanReversion(max_position=0.4),
        {"window": [20, 50, 120], "entry": [1.5, 2.0], "exit": [0.0, 0.5]},
    ),
    "breakout": (Breakout(max_position=0.4), {"window": [20, 60, 100], "exit_window": [10, 20]}),
    "breakout-long": (
        Breakout(max_position=0.4, long_only=True),
        {"window": [30, 80], "exit_window": [15]},
    ),
    "vol_target": (
        VolTarget(max_position=0.5),
        {
            "lookback": [30, 90],
            "vol_window": [60, 240],
            "target_vol": [0.25, 1.0],
            "band": [0.0, 0.2],
        },
    ),
}


@pytest.fixture(scope="module")
def one(btc_1m_csv: Path) -> BarPanel:
    df = pd.read_csv(btc_1m_csv, nrows=4_000)
    df.index = pd.to_datetime(df["timestamp"], utc=True)
    return BarPanel.from_frame(df, symbol="BTC-PERP")


@pytest.fixture(scope="module")
def multi(sample_dir: Path) -> BarPanel:
    """3 Binance alt/BTC pairs, 5-minute bars, aligned on time (gaps masked)."""
    frames = {}
    for name in ("ADA_BTC", "ETH_BTC", "XMR_BTC"):
        df = pd.read_feather(sample_dir / "crypto_5m_binance" / f"{name}-5m.feather")
        frames[name] = df.set_index("date").iloc[:3000]
    idx = sorted(set().union(*(f.index for f in frames.values())))
    cols = {k: [frames[s][k].reindex(idx).to_numpy() for s in frames] for k in
            ("open", "high", "low", "close", "volume")}  # fmt: skip
    ts = pd.DatetimeIndex(idx).as_unit("ns").asi8
    arr = {k: np.stack(v, axis=1) for k, v in cols.items()}
    return BarPanel.from_arrays(ts, arr["open"], arr["high"], arr["low"], arr["close"],
                                arr["volume"], symbols=list(frames))  # fmt: skip


def _same(a, b) -> None:
    assert set(a.metrics) == set(b.metrics)
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    for name in ("returns", "equity", "positions"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
    if a.trades is not None or b.trades is not None:
        pd.testing.assert_frame_equal(a.trades, b.trades)
    for x, y in zip(a.state, b.state, strict=True):
        np.testing.assert_array_equal(x, y)


def _both(agent, bars, pop, **kw):
    return (
        run_population(agent, bars, pop, backend="cpu", fuse=True, **kw),
        run_population(agent, bars, pop, backend="cpu", fuse=False, **kw),
    )


@pytest.mark.parametrize("name", list(AGENTS))
@pytest.mark.parametrize(
    "record", [("returns", "equity"), ("positions",)], ids=["fast-kernel", "general-kernel"]
)
def test_fused_equals_blocks_one_asset(one, name, record):
    agent, grid = AGENTS[name]
    pop = agent.grid(**grid)
    f, g = _both(agent, one, pop, costs=COSTS, stops=STOPS, leverage=0.8, record=record,
                 trades=True, block=777)  # fmt: skip
    _same(f, g)
    assert f.metrics["n_trades"].sum() > 0  # the agents trade: the comparison means something


@pytest.mark.parametrize("name", list(AGENTS))
def test_fused_equals_blocks_several_assets(multi, name):
    agent, grid = AGENTS[name]
    pop = agent.grid(**grid)
    f, g = _both(agent, multi, pop, costs=COSTS, stops=STOPS, leverage=1.0,
                 record=("equity", "positions"), trades=True, block=500)  # fmt: skip
    _same(f, g)
    assert f.metrics["n_trades"].sum() > 0


@pytest.mark.parametrize("name", list(AGENTS))
def test_fused_equals_blocks_fill_at_close_and_ruin(one, name):
    """fill="close" and accounts that go broke (leverage 30 on a 30x signal) follow the
    same path; ruined sets keep the rule's state moving."""
    agent, grid = AGENTS[name]
    agent = agent.replace(max_position=30.0)
    pop = agent.grid(**grid)
    for fill in ("open", "close"):
        f, g = _both(agent, one, pop, costs=COSTS, leverage=30.0, fill=fill, record=("equity",))
        _same(f, g)


@pytest.mark.parametrize("name", list(AGENTS))
def test_fused_equals_blocks_across_carried_rounds(one, name):
    """The tournament's pattern: an in-sample replay, then out of sample from a carried
    account with the decision of the last in-sample close filling at the first open; then
    the next round, and a replay of an earlier slice (out of order)."""
    agent, grid = AGENTS[name]
    pop = agent.grid(**grid)
    out = {}
    for fuse in (True, False):
        run = PopulationRun(agent, one, pop, costs=COSTS, stops=STOPS, backend="cpu", fuse=fuse)
        is1 = run.replay(slice(200, 1500))
        oos1 = run.replay(slice(1500, 2200), start=is1.account(1), from_prior_close=True,
                          record=("equity",), trades=True)  # fmt: skip
        oos2 = run.replay(slice(2200, 3100), start=oos1.account(1), from_prior_close=True,
                          record=("equity",))  # fmt: skip
        again = run.replay(slice(900, 1800), record=("returns",))
        out[fuse] = (is1, oos1, oos2, again)
    for f, g in zip(out[True], out[False], strict=True):
        _same(f, g)


def test_fused_path_builds_no_blocks(one, monkeypatch):
    """With fuse on, a path-independent agent's signal blocks are never built."""
    agent, grid = AGENTS["momentum"]
    pop = agent.grid(**grid)

    def boom(*a, **k):
        raise AssertionError("signal blocks built")

    monkeypatch.setattr(Momentum, "signal", boom)
    res = run_population(agent, one, pop, backend="cpu", costs=COSTS)
    assert np.all(np.isfinite(res.metrics["sharpe"]))
    with pytest.raises(AssertionError, match="signal blocks built"):
        run_population(agent, one, pop, backend="cpu", fuse=False)


def test_fused_rule_with_wrong_shape_is_refused(one):
    agent, grid = AGENTS["momentum"]
    src = agent.source(one, agent.grid(**grid))

    class Bad:
        n_params = src.n_params

        def __call__(self, t0, t1):
            return src(t0, t1)

        def fused(self):
            sig = src.fused(0)
            sig.offset = 10  # runs past the indicators' rows
            return sig

    with pytest.raises(SimulationError, match="indicators hold 4000 rows"):
        simulate(one, Bad(), backend="cpu")


def test_rules_match_their_formulas_by_hand():
    """Hand-computed cases of the shared rules."""
    pos, neg = np.float32(0.1), np.float32(-0.1)
    assert R.cross_rule(2.0, 1.0, pos, neg) == pos
    assert R.cross_rule(1.0, 2.0, pos, neg) == neg
    assert R.cross_rule(np.nan, 2.0, pos, neg) == 0.0
    assert R.zscore_rule(2.5, 0.0, 2.0, 0.5, False) == -1.0
    assert R.zscore_rule(2.5, 0.0, 2.0, 0.5, True) == 0.0
    assert R.zscore_rule(1.0, -1.0, 2.0, 0.5, False) == -1.0  # hysteresis keeps it
    assert R.zscore_rule(0.2, -1.0, 2.0, 0.5, False) == 0.0
    assert R.donchian_rule(10.0, 9.0, 5.0, 8.0, 6.0, 0.0, False) == 1.0
    assert R.donchian_rule(5.5, 9.0, 5.0, 8.0, 6.0, 1.0, False) == 0.0  # below exit low
    assert R.donchian_rule(4.0, 9.0, 5.0, 8.0, 6.0, 1.0, False) == -1.0  # reversal
    # vol target: 0.5 * min(1, 0.25 / 0.5) = 0.25
    assert R.voltarget_rule(0.01, 0.5, 0.25, 0.5, False, 0.0, 0.0) == np.float32(0.25)
    assert R.voltarget_rule(0.01, 0.1, 0.25, 0.5, False, 0.0, 0.0) == np.float32(0.5)  # calm
    # band 0.2 of the 0.5 cap = 0.1: a move from 0.3 to 0.25 (0.05) is held back ...
    held = R.voltarget_rule(0.01, 0.5, 0.25, 0.5, False, np.float32(0.3), 0.2)
    assert held == np.float32(0.3)
    # ... a move of more than the band, to flat, or across zero goes through
    moved = R.voltarget_rule(0.01, 0.5, 0.25, 0.5, False, np.float32(0.4), 0.2)
    assert moved == np.float32(0.25)
    assert R.voltarget_rule(np.nan, 0.5, 0.25, 0.5, False, np.float32(0.2), 0.2) == 0.0
    flip = R.voltarget_rule(-0.01, 0.5, 0.25, 0.5, False, np.float32(0.3), 0.2)
    assert flip == np.float32(-0.25)
