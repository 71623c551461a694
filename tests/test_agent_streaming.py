"""The streaming path of every shipped bar agent equals its vectorised path, bit for bit.

Real data: FTX BTC-PERP 1-minute bars (one asset, 6,000 bars: several of the kernels'
``max(1024, w)`` exact-recompute boundaries) and eight Binance alt/BTC 5-minute pairs
(several assets, with gaps: NaN rows where a pair had no bar).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine.api import load_bars_any
from quantarena.strategies.registry import get_agent

CASES = [
    ("momentum", {"fast": [5, 10, 20], "slow": [50, 60, 200], "ma": ["sma", "ema", "sma"]}),
    ("mean_reversion", {"window": [20, 60, 20], "entry": [2.0, 1.5, 1.0], "exit": [0.5, 0.0, 0.2]}),
    ("breakout", {"window": [20, 60], "exit_window": [10, 60]}),
    ("vol_target", {"lookback": [30, 240], "vol_window": [60, 240], "target_vol": [0.25, 1.0]}),
    ("buy_hold", {"weight": [1.0, 0.5]}),
]


@pytest.fixture(scope="module")
def btc(btc_1m_csv: Path) -> BarPanel:
    return load_bars_any(btc_1m_csv, None, None, None, None).select(slice(0, 6000))


@pytest.fixture(scope="module")
def alts(sample_dir: Path) -> BarPanel:
    files = sorted((sample_dir / "crypto_5m_binance").glob("*.feather"))[:4]
    frames = {f.name.split("-")[0]: pd.read_feather(f).set_index("date") for f in files}
    idx = sorted(set().union(*(df.index for df in frames.values())))[:2500]
    cols = {k: df.reindex(idx) for k, df in frames.items()}

    def field(name: str) -> np.ndarray:
        return np.column_stack([cols[k][name].to_numpy(np.float64) for k in cols])

    ts = pd.DatetimeIndex(idx).as_unit("ns").asi8
    panel = BarPanel.from_arrays(
        ts, *(field(n) for n in ("open", "high", "low", "close", "volume")), symbols=list(cols)
    )
    assert (~panel.mask).any(), "the alt pairs should have gaps"
    return panel


def _vectorised(agent, bars, params) -> np.ndarray:
    ref = np.asarray(agent.positions(bars, params))
    return ref[:, None, :] if ref.ndim == 2 else ref


@pytest.mark.parametrize("name,params", CASES, ids=[c[0] for c in CASES])
def test_stream_equals_vectorised_one_asset(btc, name, params):
    agent = get_agent(name)
    ref = _vectorised(agent, btc, params)
    got = agent.stream(params, interval_ns=btc.interval_ns).run(btc)
    assert got.dtype == np.float32
    assert np.count_nonzero(ref) > 1000  # the agent really trades here
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name,params", CASES, ids=[c[0] for c in CASES])
def test_stream_equals_vectorised_several_assets_with_gaps(alts, name, params):
    agent = get_agent(name, long_only=(name == "breakout"))
    ref = _vectorised(agent, alts, params)
    got = agent.stream(params, n_assets=alts.n_assets, interval_ns=alts.interval_ns).run(alts)
    np.testing.assert_array_equal(got, ref)


def test_warm_up_then_step_continues_exactly(btc):
    agent = get_agent("mean_reversion")
    ref = _vectorised(agent, btc, None)
    hist = btc.select(slice(0, 4000))
    s = agent.stream(None, history=hist)
    assert s.n_bars == 4000
    np.testing.assert_array_equal(s.last, ref[3999])
    for t in range(4000, 4100):
        row = s.step(btc.open[t], btc.high[t], btc.low[t], btc.close[t], btc.volume[t])
        np.testing.assert_array_equal(row, ref[t])


def test_stream_memory_is_bounded_by_the_window(btc):
    s = get_agent("momentum").stream({"fast": [5], "slow": [50]}, interval_ns=btc.interval_ns)
    s.run(btc)
    ((st, _),) = s.streams
    assert st.ring.size == 51  # the longest window + 1, not the 6,000 bars seen


def test_custom_agent_without_stream_says_so():
    from quantarena.strategies.base import Agent

    class NoStream(Agent):
        name = "nostream"

    with pytest.raises(NotImplementedError, match="nostream.*_stream"):
        NoStream().stream()


def test_bad_bar_width_is_named(btc):
    s = get_agent("buy_hold").stream(None, n_assets=2)
    with pytest.raises(ValueError, match="'close' has 1 values, expected 2"):
        s.step([1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0])


def test_ml_stream_features_equal_the_vectorised_features(btc):
    from quantarena.strategies.ml.features import DEFAULT_SPEC, compute_features
    from quantarena.strategies.streaming import FeatureStream

    bars = btc.select(slice(0, 2500))
    ref = compute_features(bars.close, bars.volume, np, DEFAULT_SPEC)
    fs = FeatureStream(DEFAULT_SPEC, 1)
    got = np.stack([fs.update(bars.close[t], bars.volume[t]) for t in range(bars.n_bars)])
    np.testing.assert_array_equal(got, ref)  # NaN where NaN, bit for bit elsewhere


def test_ml_stream_retrains_on_schedule_and_decides_as_the_backtest(btc):
    pytest.importorskip("torch")
    from quantarena.strategies.ml import MLAgent

    bars = btc.select(slice(0, 1100))
    agent = MLAgent()
    p = {"model": ["mlp"], "lookback": ["500"], "retrain_every": ["4h"], "epochs": [2],
         "hidden": [8], "window": [4]}  # fmt: skip
    ref = _vectorised(agent, bars, p)
    s = agent.stream(p, interval_ns=bars.interval_ns)
    got = s.run(bars)
    assert s.refits == [[500, 740, 980]]  # 4 h of 1-minute bars = every 240 bars
    assert s.refits[0] == [r.bar for r in agent.last_refits[0]]
    assert np.count_nonzero(ref) > 300
    np.testing.assert_array_equal(got, ref)
