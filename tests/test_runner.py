"""The one runner from an agent's population to the engine, and the metric directions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine.costs import Costs, Fees, Slippage
from quantarena.engine.metrics import (
    LOWER_IS_BETTER,
    METRICS,
    direction,
    higher_is_better,
    score,
)
from quantarena.engine.simulate import simulate
from quantarena.engine.stops import Stops
from quantarena.strategies.momentum import Momentum
from quantarena.strategies.runner import PopulationRun, run_population, target_weights

COSTS = Costs(fees=Fees(taker_bps=5.0), slippage=Slippage(bps=1.0))


@pytest.fixture(scope="module")
def bars(btc_1m_csv) -> BarPanel:
    df = pd.read_csv(btc_1m_csv, nrows=3_000)
    df.index = pd.to_datetime(df["timestamp"], utc=True)
    return BarPanel.from_frame(df, symbol="BTC-PERP")


@pytest.fixture(scope="module")
def agent() -> Momentum:
    return Momentum(max_position=0.5)


GRID = {"fast": [3, 5, 8], "slow": [20, 40]}


def test_run_population_is_the_engine_on_the_agents_weights(bars, agent):
    """Same numbers, bit for bit, as simulate() on the agent's weights with its
    max_position, the costs, the stops and the leverage."""
    pop = agent.grid(**GRID)
    stops = Stops(stop_loss=0.004, trailing=0.003)
    got = run_population(
        agent, bars, pop, costs=COSTS, stops=stops, leverage=0.7, backend="cpu",
        record=("equity",), block=333,
    )  # fmt: skip
    w = target_weights(agent, bars, pop)
    assert w.shape == (bars.n_bars, 1, 6)
    ref = simulate(
        bars, w, COSTS, stops=stops, leverage=0.7, max_position=0.5, backend="cpu",
        record=("equity",),
    )  # fmt: skip
    for k in ref.metrics:
        np.testing.assert_array_equal(got.metrics[k], ref.metrics[k], err_msg=k)
    np.testing.assert_array_equal(np.asarray(got.equity), np.asarray(ref.equity))
    # max_position= overrides the agent's cap (and only the cap: the signal keeps its size)
    capped = run_population(agent, bars, pop, max_position=0.2, backend="cpu")
    ref2 = simulate(bars, w, max_position=0.2, backend="cpu")
    np.testing.assert_array_equal(capped.metrics["sharpe"], ref2.metrics["sharpe"])


def test_slices_share_one_source_and_the_prior_close_fills_first(bars, agent):
    """Indicators once over the bars; a slice replayed with ``from_prior_close`` equals a flat
    replay one bar earlier (minus that bar), and the row before the slice is not recomputed
    when the previous slice just served it."""
    pop = agent.grid(**GRID)
    src = agent.source(bars, pop)
    calls: list[tuple[int, int]] = []

    class Counting:
        n_params = src.n_params

        def __call__(self, t0: int, t1: int):
            calls.append((t0, t1))
            return src(t0, t1)

    run = PopulationRun(agent, bars, pop, source=Counting(), costs=COSTS, backend="cpu", block=500)
    first = run.replay(slice(100, 1500), record=("equity",))
    n_first = len(calls)
    second = run.replay(slice(1500, 3000), from_prior_close=True, record=("equity",))
    assert calls[n_first][0] == 1500  # the decision at bar 1499 came from the first replay
    early = run_population(
        agent, bars, pop, replay=slice(1499, 3000), costs=COSTS, backend="cpu", record=("equity",)
    )
    np.testing.assert_array_equal(np.asarray(second.equity), np.asarray(early.equity)[1:])
    # chained from the first replay's account: one replay over [100, 3000)
    for j in (0, 4):
        chained = run.replay(slice(1500, 3000), start=first.account(j), record=("equity",))
        whole = run.replay(slice(100, 3000), record=("equity",))
        np.testing.assert_array_equal(
            np.asarray(chained.equity)[:, j], np.asarray(whole.equity)[1400:, j]
        )
    with pytest.raises(ValueError, match="starts at bar 0, so no decision precedes it"):
        run.replay(slice(0, 10), from_prior_close=True)
    with pytest.raises(ValueError, match="non-empty slice with step 1"):
        run.replay(slice(10, 10))


def test_every_engine_metric_has_a_direction_and_unit(bars):
    res = simulate(bars, np.full(bars.n_bars, 0.5), COSTS, backend="cpu", max_position=1.0)
    assert list(res.metrics) == list(METRICS)  # every emitted metric is registered, in order
    units = {"ratio", "fraction", "days", "count", "per_year", "cash"}
    for name, m in METRICS.items():
        assert m.name == name and m.unit in units
        assert direction(name) == ("maximize" if m.higher_is_better else "minimize")
    assert LOWER_IS_BETTER == {
        "volatility",
        "max_drawdown",
        "max_drawdown_duration",
        "turnover",
        "turnover_annual",
        "fees_paid",
        "funding_paid",
    }
    assert higher_is_better("sharpe") and not higher_is_better("fees_paid")
    assert higher_is_better("deflated_sharpe", {"deflated_sharpe": True})
    with pytest.raises(ValueError, match="unknown metric 'sharp'"):
        direction("sharp")
    np.testing.assert_array_equal(
        score(np.array([0.2, np.nan, 0.1]), "max_drawdown"), [-0.2, -np.inf, -0.1]
    )


def test_backtest_ranks_costs_cheapest_first(btc_1m_csv):
    from quantarena.backtest import backtest

    res = backtest(
        btc_1m_csv, "momentum", GRID, costs=COSTS, end="2022-01-03", backend="cpu"
    )  # fmt: skip
    by_fees = res.ranked("fees_paid")["fees_paid"].to_numpy()
    assert np.all(np.diff(by_fees) >= 0) and by_fees[0] < by_fees[-1]
    by_sharpe = res.ranked("sharpe")["sharpe"].to_numpy()
    assert np.all(np.diff(by_sharpe[np.isfinite(by_sharpe)]) <= 0)


@pytest.mark.gpu
def test_gpu_carried_account_equals_cpu(bars, agent):
    """The carried account and the pending targets on the GPU kernel: same equity as the CPU."""
    from quantarena.engine.backend import to_host

    pop = agent.grid(**GRID)
    stops = Stops(stop_loss=0.004, trailing=0.003)
    out = {}
    for be in ("cpu", "gpu"):
        run = PopulationRun(agent, bars, pop, costs=COSTS, stops=stops, backend=be, block=700)
        head = run.replay(slice(50, 1500))
        tail = run.replay(
            slice(1500, 3000), start=head.account(2), from_prior_close=True, record=("equity",)
        )
        out[be] = (to_host(tail.equity), tail.metrics["total_return"])
    np.testing.assert_allclose(out["gpu"][0], out["cpu"][0], rtol=1e-9)
    np.testing.assert_allclose(out["gpu"][1], out["cpu"][1], rtol=1e-9, atol=1e-12)
