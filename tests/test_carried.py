"""Carried in-sample scoring (quantarena/tournaments/carried.py): every set trades its own
continuous account, each bar is replayed once per set, and a round's IS score is composed
from segment tallies.

Checked against independent computations: one continuous replay of each set's spliced
target weights over the whole span (numpy Sharpe, total return and UTC-day returns from its
recorded equity), and single replays from per-set accounts for every composed metric.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine.costs import Costs, Fees, Slippage
from quantarena.engine.simulate import Accounts, simulate
from quantarena.strategies.mean_reversion import MeanReversion
from quantarena.strategies.momentum import Momentum
from quantarena.tournaments import carried as C
from quantarena.tournaments.rounds import AgentEntry, evaluate_round, run_agent_round
from quantarena.tournaments.schedule import walk_forward

HOUR = 3_600 * 10**9
COSTS = Costs(fees=Fees(taker_bps=5.0), slippage=Slippage(bps=1.0))
PPY = 24 * 365.0


@pytest.fixture(scope="module")
def btc_1h(btc_1m_csv: Path) -> BarPanel:
    """Real FTX BTC-PERP bars 2022-01-01 .. 2022-01-20, resampled to 1 hour."""
    df = pd.read_csv(btc_1m_csv, nrows=60 * 24 * 21 + 60)
    df.index = pd.to_datetime(df["timestamp"], format="%Y-%m-%d %H:%M:%S.%f", utc=True)
    df = df.loc["2022-01-01":"2022-01-20"]
    h = df.resample("1h", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    ts = h.index.as_unit("ns").asi8
    return BarPanel.from_arrays(
        ts, *(h[c].to_numpy() for c in ("open", "high", "low", "close", "volume")),
        symbols=["BTCPERP"], interval_ns=HOUR,
    )  # fmt: skip


def _entry(agent, grid) -> AgentEntry:
    return AgentEntry("x", agent, agent.grid(**grid), objective="sharpe", in_sample="carried")


def _play(panel, entry, rounds):
    entry.bounds = C.round_bounds(rounds)
    out, prev = [], None
    for rnd in rounds:
        prev = run_agent_round(panel, entry, rnd, COSTS, previous=prev, backend="cpu",
                               periods_per_year=PPY)  # fmt: skip
        out.append(prev)
    return out


def _spliced_targets(panel, entry, rounds) -> np.ndarray:
    """Each bar's target weights from the window the carried replay computed them in: round
    0 from its warm-up start over its IS and OOS bars, round k > 0 over its OOS bars from
    one warm-up before them."""
    T = panel.n_bars
    X = np.full((T, entry.n_trials), np.nan)
    warm = rounds[0].is_start - rounds[0].warmup_start
    for k, r in enumerate(rounds):
        a = r.is_start if k == 0 else r.oos_start
        w0 = a - warm
        pos = entry.agent.positions(panel.select(slice(w0, r.oos_end)), entry.params)
        X[a : r.oos_end] = np.asarray(pos, dtype=np.float64)[a - w0 :]
    return X


@pytest.mark.parametrize(
    "agent, grid",
    [
        (Momentum(max_position=0.5), {"fast": [2, 3, 4, 6, 8], "slow": [10, 16, 24]}),
        (MeanReversion(max_position=0.5), {"window": [12, 24, 48], "entry": [1.0, 1.5, 2.0]}),
    ],
    ids=["momentum", "mean_reversion"],
)
def test_carried_rounds_equal_one_continuous_account_per_set(btc_1h, agent, grid):
    entry = _entry(agent, grid)
    rounds = walk_forward(btc_1h.ts, round_ns="2d", lookback_ns="4d", warmup_ns="1d")
    assert len(rounds) >= 5
    results = _play(btc_1h, entry, rounds)
    s = rounds[0].is_start
    X = _spliced_targets(btc_1h, entry, rounds)
    end = rounds[-1].oos_end
    cont = simulate(btc_1h.select(slice(s, end)), X[s:end], COSTS, max_position=0.5,
                    record=("equity",), backend="cpu", fuse=False)  # fmt: skip
    E = np.vstack([np.ones((1, entry.n_trials)), np.asarray(cont.equity)])  # E[i]: close s+i-1
    chosen = set()
    for r, res in zip(rounds, results, strict=True):
        assert res.population is not None
        e = E[r.is_start - s : r.is_end - s + 1]  # the close before the window, then its bars
        ret = e[1:] / e[:-1] - 1.0
        sharpe = ret.mean(0) / ret.std(0, ddof=1) * np.sqrt(PPY)
        np.testing.assert_allclose(res.is_sharpe_all, sharpe, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(
            res.is_metrics["total_return"], e[-1, res.chosen_index] / e[0, res.chosen_index] - 1,
            rtol=1e-9, atol=1e-13,
        )  # fmt: skip
        assert res.chosen_index == int(np.nanargmax(sharpe))
        chosen.add(res.chosen_index)
        # every set's UTC-day OOS returns, from its own continuous account
        eo = E[r.oos_start - s : r.oos_end - s + 1]
        days = pd.to_datetime(btc_1h.ts[r.oos_start : r.oos_end], utc=True).floor("D")
        last = pd.Series(np.arange(len(days)), index=days).groupby(level=0).max().to_numpy()
        marks = np.vstack([eo[:1], eo[1:][last]])
        np.testing.assert_allclose(res.oos_daily_all, marks[1:] / marks[:-1] - 1, rtol=1e-9,
                                   atol=1e-13)  # fmt: skip
        assert res.population.bar == r.oos_end
    assert len(chosen) > 1  # the choice moves, so the agent's own account is exercised too


def test_the_agents_own_account_is_the_fresh_modes(btc_1h):
    """Carried scoring changes how sets are scored, not how the agent trades: given the same
    choice, the agent's OOS returns and account are the fresh mode's."""
    agent = Momentum(max_position=0.5)
    entry = _entry(agent, {"fast": [3], "slow": [16]})  # one set: the choice cannot differ
    rounds = walk_forward(btc_1h.ts, round_ns="2d", lookback_ns="4d", warmup_ns="1d")
    carried = _play(btc_1h, entry, rounds)
    prev = None
    for r, c in zip(rounds, carried, strict=True):
        f = evaluate_round(btc_1h, entry, r, COSTS, start=prev, backend="cpu",
                           periods_per_year=PPY)  # fmt: skip
        np.testing.assert_array_equal(c.oos_returns, f.oos_returns)
        assert c.account.cash == f.account.cash
        prev = f.account


def test_composed_metrics_equal_one_replay_from_each_sets_account(btc_1h):
    agent = Momentum(max_position=0.5)
    entry = _entry(agent, {"fast": [2, 3, 5, 8], "slow": [10, 20, 30]})
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="3d", warmup_ns="1d")
    results = _play(btc_1h, entry, rounds[:4])
    # the accounts at the start of round 3's IS window: replay to there in one go
    r = rounds[3]
    s = rounds[0].is_start
    X = _spliced_targets(btc_1h, entry, rounds[:4])
    head = simulate(btc_1h.select(slice(s, r.is_start)), X[s : r.is_start], COSTS,
                    max_position=0.5, backend="cpu", fuse=False)  # fmt: skip
    acc = head.accounts()
    assert isinstance(acc, Accounts)
    win = simulate(btc_1h.select(r.is_slice), X[r.is_slice], COSTS, max_position=0.5,
                   backend="cpu", start=acc, periods_per_year=PPY, fuse=False)  # fmt: skip
    segs = results[2].population.window(r.is_start, r.is_end)
    assert segs is not None and len(segs) == 3
    got = C.compose_metrics(segs, interval_ns=HOUR, periods_per_year=PPY)
    assert set(got) == set(C.CARRIED_METRICS)
    for k in C.CARRIED_METRICS:
        np.testing.assert_allclose(got[k], win.metrics[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_per_set_accounts_start_each_set_where_it_stood(btc_1h):
    """``simulate(start=Accounts)`` equals one replay per set from that set's ``Account``."""
    agent = Momentum(max_position=0.5)
    params = agent.grid(fast=[2, 4, 8], slow=[12, 24])
    pos = np.asarray(agent.positions(btc_1h, params), dtype=np.float64)
    a, b = 100, 220
    first = simulate(btc_1h.select(slice(0, a)), pos[:a], COSTS, max_position=0.5, backend="cpu")
    acc = first.accounts()
    assert (acc.assets[0] != 0).any()  # some sets hold a position at the cut
    both = simulate(btc_1h.select(slice(a, b)), pos[a:b], COSTS, max_position=0.5,
                    backend="cpu", start=acc, record=("equity",))  # fmt: skip
    for p in range(pos.shape[1]):
        one = simulate(btc_1h.select(slice(a, b)), pos[a:b, p], COSTS, max_position=0.5,
                       backend="cpu", start=acc.take(p), record=("equity",))  # fmt: skip
        np.testing.assert_array_equal(np.asarray(both.equity)[:, p], np.asarray(one.equity)[:, 0])
        for k, v in one.metrics.items():
            np.testing.assert_array_equal(both.metrics[k][p], v[0], err_msg=k)
    # and the two halves make the whole
    whole = simulate(btc_1h.select(slice(0, b)), pos[:b], COSTS, max_position=0.5,
                     backend="cpu", record=("equity",))  # fmt: skip
    np.testing.assert_allclose(np.asarray(both.equity), np.asarray(whole.equity)[a:], rtol=1e-13)


def test_drawdown_objectives_and_learning_agents_are_scored_fresh(btc_1h):
    agent = Momentum(max_position=0.5)
    entry = replace(_entry(agent, {"fast": [2, 4], "slow": [12, 24]}), objective="calmar")
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="3d", warmup_ns="1d")
    res = _play(btc_1h, entry, rounds[:2])
    assert res[-1].population is None
    fresh = evaluate_round(btc_1h, entry, rounds[0], COSTS, backend="cpu", periods_per_year=PPY)
    np.testing.assert_array_equal(res[0].is_sharpe_all, fresh.is_sharpe_all)
    assert not C.carried_objective_ok("max_drawdown")
    assert C.carried_objective_ok("sharpe")


def test_a_failed_round_keeps_the_accounts_and_the_next_replays_the_gap(btc_1h):
    from quantarena.tournaments.rounds import failed_result

    agent = Momentum(max_position=0.5)
    entry = _entry(agent, {"fast": [2, 3, 5], "slow": [10, 20]})
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="3d", warmup_ns="1d")
    entry.bounds = C.round_bounds(rounds)
    ok = [run_agent_round(btc_1h, entry, rounds[0], COSTS, backend="cpu", periods_per_year=PPY)]
    ok.append(run_agent_round(btc_1h, entry, rounds[1], COSTS, previous=ok[0], backend="cpu",
                              periods_per_year=PPY))  # fmt: skip
    gap = failed_result(btc_1h.ts, entry, rounds[1], "boom", ok[0])
    assert gap.population is ok[0].population
    after = run_agent_round(btc_1h, entry, rounds[2], COSTS, previous=gap, backend="cpu",
                            periods_per_year=PPY)  # fmt: skip
    direct = run_agent_round(btc_1h, entry, rounds[2], COSTS, previous=ok[1], backend="cpu",
                             periods_per_year=PPY)  # fmt: skip
    # the population's accounts went on through the failed round: the same IS scores
    np.testing.assert_allclose(after.is_sharpe_all, direct.is_sharpe_all, rtol=1e-12)
    np.testing.assert_allclose(after.oos_daily_all, direct.oos_daily_all, rtol=1e-12)


def test_config_in_sample_key_reaches_the_entries():
    from types import SimpleNamespace

    from quantarena.config import AgentConfig, ScheduleConfig
    from quantarena.tournaments.setup import build_entries

    assert ScheduleConfig().in_sample == C.DEFAULT_IN_SAMPLE
    assert set(ScheduleConfig.model_fields["in_sample"].annotation.__args__) == set(
        C.IN_SAMPLE_MODES
    )
    for mode in C.IN_SAMPLE_MODES:
        cfg = SimpleNamespace(
            seed=0,
            schedule=ScheduleConfig(in_sample=mode),
            agents=[AgentConfig(name="m", kind="momentum", params={"fast": [3], "slow": [9]})],
        )
        assert build_entries(cfg)[0].in_sample == mode


def test_checkpoint_keeps_the_latest_population_once(btc_1h, tmp_path):
    """Round files hold slim results; the latest round's population states live in one file
    rewritten every round, and a loaded checkpoint hands them to the last round only."""
    from types import SimpleNamespace

    from quantarena.tournaments.checkpoint import (
        Checkpointer,
        load_checkpoint,
        population_file,
        round_file,
    )

    agent = Momentum(max_position=0.5)
    entry = _entry(agent, {"fast": [2, 3, 5], "slow": [10, 20]})
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="3d", warmup_ns="1d")[:3]
    results = _play(btc_1h, entry, rounds)
    target = tmp_path / "ckpt.pkl"
    ck = Checkpointer(target, {"name": "t", "agents": []})
    for r, res in zip(rounds, results, strict=True):
        ck.on_round(SimpleNamespace(round=r, results={"x": res}, weights={}, replayed=False))
    loaded = load_checkpoint(target)
    assert [x["x"].population is None for x in loaded.results] == [True, True, False]
    last = loaded.results[-1]["x"].population
    assert last.bar == results[-1].population.bar
    np.testing.assert_array_equal(last.accounts.equity, results[-1].population.accounts.equity)
    assert Path(population_file(target)).stat().st_size > Path(round_file(target, 2)).stat().st_size
    # resuming from it continues exactly as the uninterrupted run
    nxt = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="3d", warmup_ns="1d")[3]
    a = run_agent_round(btc_1h, entry, nxt, COSTS, previous=loaded.results[-1]["x"],
                        backend="cpu", periods_per_year=PPY)  # fmt: skip
    b = run_agent_round(btc_1h, entry, nxt, COSTS, previous=results[-1], backend="cpu",
                        periods_per_year=PPY)  # fmt: skip
    np.testing.assert_array_equal(a.is_sharpe_all, b.is_sharpe_all)
