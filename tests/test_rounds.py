"""One agent's walk-forward round (`evaluate_round`): IS choice, OOS replay, no OOS leakage.

Checked against independent computations: a hand-computed buy-and-hold market, and a
brute-force replay of every parameter set on its own (one `simulate` per set on the IS and
OOS slices) over real FTX BTC-PERP bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine.costs import Costs, Fees, Slippage
from quantarena.engine.simulate import simulate
from quantarena.strategies.buy_hold import BuyHold
from quantarena.strategies.momentum import Momentum
from quantarena.tournaments.rounds import (
    DAY_NS,
    AgentEntry,
    daily_returns,
    evaluate_round,
    population_dsr,
    run_agent_round,
    select_best,
)
from quantarena.tournaments.schedule import walk_forward

HOUR = 3_600 * 10**9
T0 = int(pd.Timestamp("2022-01-03", tz="UTC").value)  # a Monday 00:00 UTC


# --------------------------------------------------------------------------- fixtures


def _toy_panel(n_days: int = 8) -> BarPanel:
    """Hourly bars: a steady rise of +0.2 %/bar for 4 days, then a fall of -0.3 %/bar.

    open = previous close (first open = 100), high/low bracket open and close."""
    n = 24 * n_days
    step = np.where(np.arange(n) < 24 * 4, 1.002, 0.997)
    close = 100.0 * np.cumprod(step)
    open_ = np.r_[100.0, close[:-1]]
    ts = T0 + HOUR * np.arange(n, dtype=np.int64)
    return BarPanel.from_arrays(
        ts,
        open_,
        np.maximum(open_, close) * 1.0005,
        np.minimum(open_, close) * 0.9995,
        close,
        np.full(n, 1_000.0),
        symbols=["TOY"],
        interval_ns=HOUR,
    )


@pytest.fixture(scope="module")
def btc_1h(btc_1m_csv: Path) -> BarPanel:
    """Real FTX BTC-PERP bars 2022-01-01 .. 2022-01-10, resampled to 1 hour (216 bars)."""
    df = pd.read_csv(btc_1m_csv, nrows=60 * 24 * 10 + 60)
    df.index = pd.to_datetime(df["timestamp"], format="%Y-%m-%d %H:%M:%S.%f", utc=True)
    df = df.loc["2022-01-01":"2022-01-09"]
    h = df.resample("1h", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    assert len(h) == 24 * 9 and h.notna().all().all()
    ts = h.index.as_unit("ns").asi8
    return BarPanel.from_arrays(
        ts, *(h[c].to_numpy() for c in ("open", "high", "low", "close", "volume")),
        symbols=["BTCPERP"], interval_ns=HOUR,
    )  # fmt: skip


MOM_GRID = {"fast": [2, 3, 4, 6, 8], "slow": [10, 16, 24]}


def _momentum_entry() -> AgentEntry:
    agent = Momentum(max_position=0.5)
    return AgentEntry("mom", agent, agent.grid(**MOM_GRID), objective="sharpe")


COSTS = Costs(fees=Fees(taker_bps=5.0), slippage=Slippage(bps=1.0))


# --------------------------------------------------------------------------- small pieces


def test_daily_returns_compounds_bars_into_utc_days():
    day0 = T0
    # 3 bars on day 0 (one at 23:00), 2 on day 1 (first at 00:00), 1 on day 3 (day 2 missing)
    ts = np.array(
        [day0, day0 + 6 * HOUR, day0 + 23 * HOUR, day0 + DAY_NS, day0 + DAY_NS + HOUR,
         day0 + 3 * DAY_NS + 5 * HOUR], dtype=np.int64,
    )  # fmt: skip
    r = np.array([0.10, -0.05, 0.02, 0.01, 0.03, -0.2])
    expect = np.array([1.10 * 0.95 * 1.02 - 1.0, 1.01 * 1.03 - 1.0, -0.2])
    np.testing.assert_allclose(daily_returns(ts, r), expect, rtol=1e-12)
    # a population: every column compounded on its own
    r2 = np.column_stack([r, -r, np.zeros_like(r)])
    out = daily_returns(ts, r2)
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out[:, 0], expect, rtol=1e-12)
    np.testing.assert_allclose(out[:, 1], [0.9 * 1.05 * 0.98 - 1, 0.99 * 0.97 - 1, 0.2], rtol=1e-12)
    np.testing.assert_array_equal(out[:, 2], 0.0)
    # a total loss compounds to -1, not NaN
    np.testing.assert_allclose(daily_returns(ts[:2], np.array([-1.0, 0.5])), [-1.0], atol=1e-9)
    assert daily_returns(ts[:0], r[:0]).shape == (0,)


def test_select_best_rules():
    m = {
        "sharpe": np.array([0.5, np.nan, 2.0, 2.0, -1.0]),
        "max_drawdown": np.array([0.3, 0.1, np.nan, 0.1, 0.2]),
    }
    assert select_best(m, "sharpe") == 2  # NaN never wins; tie 2 vs 3 → lowest index
    assert select_best(m, "max_drawdown") == 1  # lower is better, tie → lowest index
    assert select_best({"sharpe": np.full(3, np.nan)}, "sharpe") == 0
    with pytest.raises(ValueError, match="objective 'sortinoo' is not a metric"):
        select_best(m, "sortinoo")


# --------------------------------------------------------------------------- hand-checked round


def test_buy_and_hold_round_matches_hand_computation():
    """IS rises, OOS falls. Buy-and-hold weights 0.25/0.5/1.0, no costs, objective total
    return: the full weight wins IS (flat on the first IS bar, in from the second's open);
    out of sample the account, flat before the round, fills the weight decided at the last
    IS close at the first OOS open: equity 1 - w + w * close_t / open_0."""
    panel = _toy_panel()
    agent = BuyHold(max_position=1.0)
    entry = AgentEntry("bh", agent, {"weight": np.array([0.25, 0.5, 1.0])}, "total_return")
    rounds = walk_forward(panel.ts, round_ns="1d", lookback_ns="3d", warmup_ns="1d")
    rnd = rounds[0]
    assert (rnd.is_start, rnd.oos_start, rnd.oos_end) == (24, 96, 120)  # IS = days 1-3
    res = evaluate_round(panel, entry, rnd, None, backend="cpu")

    def hand(sl: slice, w: float) -> np.ndarray:
        o, c = panel.open[sl, 0], panel.close[sl, 0]
        eq = np.r_[1.0, 1.0 - w + w * c[1:] / o[1]]  # flat on bar 0, fill at open of bar 1
        return eq[1:] / eq[:-1] - 1.0 if eq.size > 1 else eq[:0]

    is_total = {w: np.prod(1 + np.r_[0.0, hand(rnd.is_slice, w)]) - 1 for w in (0.25, 0.5, 1.0)}
    assert all(v > 0 for v in is_total.values())
    assert res.chosen_index == 2 and res.chosen == {"weight": 1.0}
    assert res.n_trials == 3
    np.testing.assert_allclose(res.is_metrics["total_return"], is_total[1.0], rtol=1e-10)

    def hand_oos(w: float) -> np.ndarray:
        o, c = panel.open[rnd.oos_slice, 0], panel.close[rnd.oos_slice, 0]
        eq = np.r_[1.0, 1.0 - w + w * c / o[0]]
        return eq[1:] / eq[:-1] - 1.0

    oos_hand = hand_oos(1.0)
    assert oos_hand[0] != 0.0  # the position is held from the first OOS bar's open
    np.testing.assert_allclose(res.oos_returns, oos_hand, rtol=1e-10, atol=1e-14)
    assert res.oos_metrics["total_return"] < 0  # the reversal hurts out of sample
    np.testing.assert_array_equal(res.oos_ts, panel.ts[rnd.oos_slice])
    # every set's daily OOS returns: one UTC day of bars, so the day's total return
    assert res.oos_daily_all.shape == (1, 3)
    for j, w in enumerate((0.25, 0.5, 1.0)):
        total = np.prod(1 + hand_oos(w)) - 1
        np.testing.assert_allclose(res.oos_daily_all[0, j], total, rtol=1e-10)


# --------------------------------------------------------------------------- brute force, real data


def _brute_force(panel: BarPanel, entry: AgentEntry, rnd, costs) -> dict:
    """Replay every parameter set ON ITS OWN over the IS and OOS slices, positions computed
    once over the full panel up to the OOS end (not over the round's window). The OOS replay
    starts flat one bar early (the last IS bar, where it only decides) and that bar is
    dropped: the last IS decision fills at the first OOS open."""
    hist = panel.select(slice(0, rnd.oos_end))
    pos = entry.agent.positions(hist, entry.params)  # (T, P)
    pre_oos = slice(rnd.oos_start - 1, rnd.oos_end)
    is_bars, oos_bars = panel.select(rnd.is_slice), panel.select(pre_oos)
    is_sharpe, is_total, is_ret, oos_ret = [], [], [], []
    for j in range(pos.shape[1]):
        kw = dict(costs=costs, max_position=entry.agent.max_position, backend="cpu")
        r_is = simulate(is_bars, pos[rnd.is_slice, j].astype(np.float64),
                        record=("returns",), **kw)  # fmt: skip
        r_oos = simulate(oos_bars, pos[pre_oos, j].astype(np.float64),
                         record=("returns",), **kw)  # fmt: skip
        is_sharpe.append(float(r_is.metrics["sharpe"][0]))
        is_total.append(float(r_is.metrics["total_return"][0]))
        is_ret.append(np.asarray(r_is.returns)[:, 0])
        oos_ret.append(np.asarray(r_oos.returns)[1:, 0])
    return {
        "is_sharpe": np.array(is_sharpe),
        "is_total": np.array(is_total),
        "is_returns": np.column_stack(is_ret),
        "oos_returns": np.column_stack(oos_ret),
    }


@pytest.mark.parametrize("k", [0, 1, 3])
def test_momentum_round_matches_brute_force_on_real_bars(btc_1h: BarPanel, k: int):
    entry = _momentum_entry()
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="4d", warmup_ns="1d")
    assert len(rounds) == 4
    rnd = rounds[k]
    assert rnd.warmup_start == 24 * k and rnd.is_start - rnd.warmup_start == 24
    res = evaluate_round(btc_1h, entry, rnd, COSTS, backend="cpu")
    bf = _brute_force(btc_1h, entry, rnd, COSTS)

    np.testing.assert_allclose(res.is_sharpe_all, bf["is_sharpe"], rtol=1e-9, atol=1e-12)
    best = int(np.nanargmax(bf["is_sharpe"]))
    second = np.sort(bf["is_sharpe"][np.isfinite(bf["is_sharpe"])])[-2]
    assert bf["is_sharpe"][best] - second > 1e-6  # a unique winner, so the check means something
    assert res.chosen_index == best
    assert res.chosen == {k_: np.asarray(v)[best].item() for k_, v in entry.params.items()}
    np.testing.assert_allclose(res.is_metrics["sharpe"], bf["is_sharpe"][best], rtol=1e-9)
    np.testing.assert_allclose(res.is_metrics["total_return"], bf["is_total"][best], rtol=1e-9)
    # OOS: the chosen set's per-bar returns = a direct replay of it over the OOS bars
    np.testing.assert_allclose(res.oos_returns, bf["oos_returns"][:, best], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(
        res.oos_metrics["total_return"], np.prod(1 + res.oos_returns) - 1, rtol=1e-9, atol=1e-13
    )
    # every set's daily OOS returns, compounded by hand with pandas
    days = pd.to_datetime(res.oos_ts, utc=True).floor("D")
    by_day = pd.DataFrame(1 + bf["oos_returns"], index=days).groupby(level=0).prod().to_numpy() - 1
    np.testing.assert_allclose(res.oos_daily_all, by_day, rtol=1e-9, atol=1e-13)
    assert set(res.timings) == {"indicators", "replay_is", "replay_oos"}


def test_oos_prices_do_not_change_the_is_choice(btc_1h: BarPanel):
    entry = _momentum_entry()
    rnd = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="4d", warmup_ns="1d")[1]
    base = evaluate_round(btc_1h, entry, rnd, COSTS, backend="cpu")

    # a crash, then wild swings, in the OOS bars (and after them) only
    altered = btc_1h.select(slice(None))
    t = np.arange(btc_1h.n_bars - rnd.oos_start)
    factor = (0.6 + 0.3 * np.sin(t / 2.0))[:, None]
    for name in ("open", "high", "low", "close"):
        getattr(altered, name)[rnd.oos_start :] *= factor
    altered.high[rnd.oos_start :] *= 1.01
    altered.low[rnd.oos_start :] *= 0.99
    moved = evaluate_round(altered, entry, rnd, COSTS, backend="cpu")

    assert moved.chosen_index == base.chosen_index and moved.chosen == base.chosen
    np.testing.assert_array_equal(moved.is_sharpe_all, base.is_sharpe_all)
    assert moved.is_metrics == base.is_metrics
    assert not np.allclose(moved.oos_returns, base.oos_returns)  # the change did reach OOS


def test_round_is_deterministic_and_block_independent(btc_1h: BarPanel):
    entry = _momentum_entry()
    rnd = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="4d", warmup_ns="1d")[2]
    a = evaluate_round(btc_1h, entry, rnd, COSTS, backend="cpu")
    b = evaluate_round(btc_1h, entry, rnd, COSTS, backend="cpu")
    c = evaluate_round(btc_1h, entry, rnd, COSTS, backend="cpu", block=7)
    for other in (b, c):
        assert other.chosen_index == a.chosen_index
        np.testing.assert_allclose(other.is_sharpe_all, a.is_sharpe_all, rtol=1e-12)
        np.testing.assert_allclose(other.oos_returns, a.oos_returns, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(b.oos_returns, a.oos_returns)


def _dsr_by_hand(r: np.ndarray) -> np.ndarray:
    """Deflated Sharpe of each column (Bailey & López de Prado 2014), N = columns,
    V = variance of the columns' per-period Sharpe ratios."""
    from scipy import stats as st

    n_obs, n = r.shape
    sr = r.mean(axis=0) / r.std(axis=0, ddof=1)
    v = np.var(sr, ddof=1)
    g = np.euler_gamma
    sr0 = np.sqrt(v) * ((1 - g) * st.norm.ppf(1 - 1 / n) + g * st.norm.ppf(1 - 1 / (n * np.e)))
    g3 = st.skew(r, axis=0, bias=True)
    g4 = st.kurtosis(r, axis=0, fisher=False, bias=True)
    z = (sr - sr0) * np.sqrt(n_obs - 1) / np.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return st.norm.cdf(z)


def test_deflated_sharpe_objective_selects_by_each_sets_dsr(btc_1h: BarPanel):
    """``objective: deflated_sharpe`` (a config choice) picks the set with the best IS DSR."""
    agent = Momentum(max_position=0.5)
    entry = AgentEntry("mom", agent, agent.grid(**MOM_GRID), objective="deflated_sharpe")
    rnd = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="4d", warmup_ns="1d")[0]
    res = evaluate_round(btc_1h, entry, rnd, COSTS, backend="cpu")
    bf = _brute_force(btc_1h, entry, rnd, COSTS)
    dsr = _dsr_by_hand(bf["is_returns"])
    assert np.all(np.isfinite(dsr))
    assert res.chosen_index == int(np.argmax(dsr))
    assert res.is_metrics["deflated_sharpe"] == pytest.approx(dsr.max(), rel=1e-9)
    np.testing.assert_allclose(res.is_sharpe_all, bf["is_sharpe"], rtol=1e-9, atol=1e-12)


def test_population_dsr_penalises_crash_risk_that_sharpe_ignores():
    rng = np.random.default_rng(0)
    n = 240
    crashy = np.full(n, 0.003)
    crashy[5] = -0.30  # one crash: higher Sharpe than `steady`, but heavy negative skew
    steady = rng.standard_normal(n)
    steady = (steady - steady.mean()) / steady.std(ddof=1) * 0.045 + 0.0036
    r = np.column_stack([crashy, steady, 0.02 * rng.standard_normal(n), np.zeros(n)])
    sr = np.r_[r[:, :3].mean(axis=0) / r[:, :3].std(axis=0, ddof=1), 0.0]  # set 3 never traded
    assert sr[0] > sr[1]
    dsr = population_dsr(r)
    hand = _dsr_by_hand(r[:, :3])
    # the hand version with the idle set included: its Sharpe is 0 (not NaN), moments normal
    from scipy import stats as st

    v = np.var(sr, ddof=1)
    g = np.euler_gamma
    sr0 = np.sqrt(v) * ((1 - g) * st.norm.ppf(1 - 1 / 4) + g * st.norm.ppf(1 - 1 / (4 * np.e)))
    g3 = st.skew(r[:, :3], axis=0, bias=True)
    g4 = st.kurtosis(r[:, :3], axis=0, fisher=False, bias=True)
    z = (sr[:3] - sr0) * np.sqrt(n - 1) / np.sqrt(1 - g3 * sr[:3] + (g4 - 1) / 4 * sr[:3] ** 2)
    np.testing.assert_allclose(dsr[:3], st.norm.cdf(z), rtol=1e-9)
    np.testing.assert_allclose(dsr[3], st.norm.cdf(-sr0 * np.sqrt(n - 1)), rtol=1e-9)
    assert hand[0] < hand[1] and dsr[0] < dsr[1]
    metrics = {"sharpe": sr, "deflated_sharpe": dsr}
    assert select_best(metrics, "sharpe") == 0 and select_best(metrics, "deflated_sharpe") == 1
    assert np.isnan(population_dsr(r[:2])).all()  # too short


# --------------------------------------------------------------------------- an account across rounds


def _play(panel: BarPanel, entry: AgentEntry, rounds, costs) -> list:
    """Every round of one agent in order, each OOS account continuing the previous one."""
    out, prev = [], None
    for rnd in rounds:
        prev = run_agent_round(panel, entry, rnd, costs, previous=prev, backend="cpu")
        out.append(prev)
    return out


def _continuous(panel: BarPanel, weights: np.ndarray, rounds, **kw) -> np.ndarray:
    """Equity of ONE replay of ``weights`` (a ``(T,)`` series over the whole panel) from the
    last IS bar of the first round to the end of the last round, flat at the start; the
    first bar (a decision only, no position yet) is dropped."""
    sl = slice(rounds[0].oos_start - 1, rounds[-1].oos_end)
    res = simulate(panel.select(sl), weights[sl].astype(np.float64), record=("equity",), **kw)
    return np.asarray(res.equity)[1:, 0]


def _equity(results: list) -> np.ndarray:
    return np.cumprod(1.0 + np.concatenate([r.oos_returns for r in results]))


ONE_SET = {"fast": [3], "slow": [16]}


def test_one_set_agent_trades_like_one_continuous_backtest(btc_1h: BarPanel):
    """A population of one set never changes its choice, so its OOS equity over all rounds
    is exactly that of one backtest: no round starts flat, none pays a new entry fee."""
    agent = Momentum(max_position=0.5)
    entry = AgentEntry("one", agent, agent.grid(**ONE_SET))
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="4d", warmup_ns="1d")
    results = _play(btc_1h, entry, rounds, COSTS)
    w = agent.positions(btc_1h, entry.params)[:, 0]
    expect = _continuous(btc_1h, w, rounds, costs=COSTS, max_position=0.5, backend="cpu")
    np.testing.assert_allclose(_equity(results), expect, rtol=1e-12, atol=0)
    # the account is carried: a position open at a round's end is still held at the next
    # round's first bar (no zero return from starting flat)
    held = [r.account.shares[0] != 0.0 for r in results[:-1]]
    assert any(held)
    for k in range(1, len(results)):
        if held[k - 1]:
            assert results[k].oos_returns[0] != 0.0


def test_tuned_one_set_agent_trades_like_one_continuous_backtest(btc_1h: BarPanel):
    from quantarena.strategies.params import Choice
    from quantarena.training.tuning import TuningSpec

    agent = Momentum(max_position=0.5)
    entry = AgentEntry(
        "tuned",
        agent,
        agent.grid(**ONE_SET),
        tuning=TuningSpec(sampler="random", trials=4, batch=4, oos_top=1, seed=3),
        space={"fast": Choice([3]), "slow": Choice([16])},
    )
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="4d", warmup_ns="1d")
    results = _play(btc_1h, entry, rounds, COSTS)
    assert all(r.chosen == {"fast": 3, "slow": 16} for r in results)
    w = agent.positions(btc_1h, entry.params)[:, 0]
    expect = _continuous(btc_1h, w, rounds, costs=COSTS, max_position=0.5, backend="cpu")
    np.testing.assert_allclose(_equity(results), expect, rtol=1e-12, atol=0)


def test_changing_choice_trades_only_the_difference(btc_1h: BarPanel):
    """When the chosen set changes, the account goes on: one backtest of the spliced weights
    (each bar's decision from the set chosen for the round its fill falls in) gives the same
    equity, so only the difference between the held and the new target was traded."""
    entry = _momentum_entry()
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="4d", warmup_ns="1d")
    results = _play(btc_1h, entry, rounds, COSTS)
    chosen = [r.chosen_index for r in results]
    assert len(set(chosen)) > 1  # the choice does change, so the check means something
    pos = entry.agent.positions(btc_1h, entry.params)
    spliced = np.zeros(btc_1h.n_bars)
    for rnd, j in zip(rounds, chosen, strict=True):
        spliced[rnd.oos_start - 1 : rnd.oos_end - 1] = pos[rnd.oos_start - 1 : rnd.oos_end - 1, j]
    expect = _continuous(btc_1h, spliced, rounds, costs=COSTS, max_position=0.5, backend="cpu")
    np.testing.assert_allclose(_equity(results), expect, rtol=1e-12, atol=0)


def test_config_stops_and_leverage_reach_the_rounds(btc_1h: BarPanel):
    """An agent's ``stops`` and ``leverage`` in the config change its rounds exactly as a
    backtest with those stops and that leverage would."""
    from types import SimpleNamespace

    from quantarena.config import AgentConfig
    from quantarena.engine.stops import Stops
    from quantarena.tournaments.setup import build_entries

    risk = {"stops": {"stop_loss": 0.004, "trailing": 0.003}, "leverage": 0.3}
    cfg = SimpleNamespace(
        seed=0,
        agents=[
            AgentConfig(name="m", kind="momentum", params=ONE_SET, max_position=0.5),
            AgentConfig(name="ms", kind="momentum", params=ONE_SET, max_position=0.5, **risk),
        ],
    )
    plain, risky = build_entries(cfg)
    with pytest.raises(ValueError, match="stop_loss"):
        AgentConfig(name="x", kind="momentum", stops={"stop_loss": -0.01})
    assert risky.stops == Stops(stop_loss=0.004, trailing=0.003) and risky.leverage == 0.3
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="4d", warmup_ns="1d")
    got = _equity(_play(btc_1h, risky, rounds, COSTS))
    w = plain.agent.positions(btc_1h, plain.params)[:, 0]
    kw = dict(costs=COSTS, max_position=0.5, backend="cpu")
    expect = _continuous(btc_1h, w, rounds, stops=risky.stops, leverage=0.3, **kw)
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=0)
    without = _equity(_play(btc_1h, plain, rounds, COSTS))
    assert np.abs(got - without).max() > 1e-4  # the stops and the leverage did act
    stopped = simulate(
        btc_1h.select(slice(rounds[0].oos_start - 1, rounds[-1].oos_end)),
        w[rounds[0].oos_start - 1 : rounds[-1].oos_end].astype(np.float64),
        stops=risky.stops,
        leverage=0.3,
        trades=True,
        **kw,
    )
    assert (stopped.trades["exit_reason"] != "signal").any()  # a stop did fire


def test_config_filters_make_a_one_set_agent_trade_like_the_filtered_backtest(btc_1h: BarPanel):
    """A tournament's ``filters`` (lot size, minimum notional for a capital in quote
    currency) reach the rounds scaled to the unit account: a one-set agent's OOS equity is
    that of one backtest of a ``capital`` account with the same filters, divided by it."""
    from quantarena.config import TournamentConfig
    from quantarena.engine.filters import ExchangeFilters

    cap, lot, mn = 10_000.0, 0.01, 300.0
    raw = {"name": "f", "data": {"files": ["x.csv"]}, "agents": [{"name": "m", "kind": "momentum"}],
           "filters": {"capital": cap, "lot_size": lot, "min_notional": mn}}  # fmt: skip
    cfg = TournamentConfig.from_dict(raw)
    filt = cfg.filters.to_filters(list(btc_1h.symbols))
    assert filt == ExchangeFilters(lot_size=(lot / cap,), min_notional=(mn / cap,))
    agent = Momentum(max_position=0.5)
    entry = AgentEntry("one", agent, agent.grid(**ONE_SET), filters=filt)
    rounds = walk_forward(btc_1h.ts, round_ns="1d", lookback_ns="4d", warmup_ns="1d")
    results = _play(btc_1h, entry, rounds, COSTS)
    w = agent.positions(btc_1h, entry.params)[:, 0]
    kw = {"costs": COSTS, "max_position": 0.5, "backend": "cpu", "init_cash": cap}
    expect = _continuous(btc_1h, w, rounds, filters=ExchangeFilters(lot, mn), **kw) / cap
    np.testing.assert_allclose(_equity(results), expect, rtol=1e-9, atol=0)
    free = _continuous(btc_1h, w, rounds, **kw) / cap
    assert np.max(np.abs(free / expect - 1.0)) > 1e-4  # the filters bind
    # shares are whole lots of the capital's account
    shares = np.array([r.account.shares[0] for r in results]) * cap
    np.testing.assert_allclose(shares / lot, np.round(shares / lot), atol=1e-6)


def test_filters_config_errors_name_the_key():
    from quantarena.config import ConfigError, TournamentConfig

    base = {
        "name": "f",
        "data": {"files": ["x.csv"]},
        "agents": [{"name": "m", "kind": "momentum"}],
    }
    with pytest.raises(ConfigError, match=r"filters\.capital"):
        TournamentConfig.from_dict({**base, "filters": {"min_notional": 10}})
    with pytest.raises(ConfigError, match=r"filters\.min_notional.*>= 0"):
        TournamentConfig.from_dict({**base, "filters": {"capital": 1e4, "min_notional": -1}})
    with pytest.raises(ConfigError, match=r"filters\.symbols\.BTC\.lot"):
        TournamentConfig.from_dict(
            {**base, "filters": {"capital": 1e4, "symbols": {"BTC": {"lot": 1}}}}
        )
    cfg = TournamentConfig.from_dict({**base, "filters": {"capital": 1e4, "symbols": {"ETH": {}}}})
    with pytest.raises(ValueError, match=r"filters.symbols: 'ETH' is not a symbol of the data"):
        cfg.filters.to_filters(["BTC"])
    assert (
        TournamentConfig.from_dict({**base, "filters": {"capital": 1e4}}).filters.to_filters(
            ["BTC"]
        )
        is None
    )  # all amounts 0: no filters


def test_config_filters_reach_every_bar_agent_through_the_setup(monkeypatch):
    """``prepare`` hands the config's filters (per symbol, on the unit account) to every bar
    agent's entry; a symbol the data does not hold is named."""
    import yaml

    from quantarena.config import TournamentConfig
    from quantarena.engine.filters import ExchangeFilters
    from quantarena.tournaments.setup import prepare

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    raw = TournamentConfig.from_yaml(root / "configs" / "quick.yaml").model_dump(mode="json")
    raw["filters"] = {"capital": 5000, "min_notional": 10,
                      "symbols": {"BTCPERP": {"lot_size": 0.001}}}  # fmt: skip
    inputs = prepare(TournamentConfig.from_dict(raw), audit=False)
    want = ExchangeFilters(lot_size=(0.001 / 5000,), min_notional=(10 / 5000,))
    assert [e.filters for e in inputs.entries] == [want, want]
    # the dump (defaults resolved) reads back to the same filters
    cfg = TournamentConfig.from_dict(raw)
    again = TournamentConfig.from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again.filters.to_filters(["BTCPERP"]) == want
    raw["filters"]["symbols"] = {"ETHPERP": {"lot_size": 0.01}}
    with pytest.raises(ValueError, match="filters.symbols: 'ETHPERP' is not a symbol"):
        prepare(TournamentConfig.from_dict(raw), audit=False)
