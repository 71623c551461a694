"""The director loop (`run_tournament`) with a FAKE evaluate (hand-made RoundResults), the
agent track record, and a real small tournament on FTX BTC-PERP bars logged to MLflow.

Weights, portfolios, gates, records and PBO are recomputed here independently (pandas day
groups, hand formulas, a brute-force CSCV) and compared with the director's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from quantarena.tournaments.allocation import kelly_weights
from quantarena.tournaments.director import (
    AllocationConfig,
    RoundReport,
    TournamentResult,
    agent_record,
    run_tournament,
)
from quantarena.tournaments.gates import GateConfig
from quantarena.tournaments.rounds import RoundResult
from quantarena.tournaments.schedule import Round

H6 = 6 * 3_600 * 10**9
DAY = 86_400 * 10**9
T0 = 1_641_168_000 * 10**9  # 2022-01-03 00:00 UTC
PPY = 4 * 365.0  # 6-hour bars
BARS = 12  # 3 days per round
AGENTS = ["a", "b", "c"]
GATES = GateConfig(
    min_sharpe=0.0, max_drawdown=0.2, min_win_rate=None, min_history_days=None,
    min_paper_days=None,
)  # fmt: skip
ALLOC = AllocationConfig(kelly_fraction=0.5, cap_per_agent=0.6, estimation_window=3, min_rounds=1)


# --------------------------------------------------------------------------- fakes


def _round(k: int) -> Round:
    oos0 = 100 + k * BARS
    t_oos = T0 + k * BARS * H6
    return Round(
        index=k, is_start=oos0 - 40, is_end=oos0, oos_start=oos0, oos_end=oos0 + BARS,
        warmup_start=oos0 - 50, warmup_start_ns=t_oos - 50 * H6, is_start_ns=t_oos - 40 * H6,
        oos_start_ns=t_oos, oos_end_ns=t_oos + BARS * H6,
    )  # fmt: skip


def _ts(k: int) -> np.ndarray:
    return T0 + (k * BARS + np.arange(BARS, dtype=np.int64)) * H6


def _result(
    agent: str,
    k: int,
    returns: np.ndarray,
    *,
    n_trades: float = 4.0,
    win_rate: float = 0.5,
    daily_all: np.ndarray | None = None,
    is_sharpe_all: np.ndarray | None = None,
) -> RoundResult:
    r = np.asarray(returns, dtype=np.float64)
    ts = _ts(k)[: r.size]
    if daily_all is None:
        daily = 1 + pd.Series(r, index=pd.to_datetime(ts, utc=True).floor("D"))
        daily_all = (daily.groupby(level=0).prod() - 1).to_numpy()[:, None]
    sh = np.array([0.5, 1.0, 2.0]) if is_sharpe_all is None else is_sharpe_all
    return RoundResult(
        agent=agent, round=k, chosen={"x": k}, chosen_index=0, n_trials=sh.size,
        is_metrics={"sharpe": float(sh.max())}, is_sharpe_all=sh, oos_ts=ts, oos_returns=r,
        oos_metrics={"n_trades": n_trades, "win_rate": win_rate,
                     "total_return": float(np.prod(1 + r) - 1)},
        oos_daily_all=daily_all,
    )  # fmt: skip


def _returns(n_rounds: int = 5, seed: int = 11) -> dict[str, list[np.ndarray]]:
    """a: good and volatile, b: negative edge, c: good and calm (a fixed seed)."""
    rng = np.random.default_rng(seed)
    spec = {"a": (0.003, 0.006), "b": (-0.002, 0.004), "c": (0.0015, 0.002)}
    return {
        a: [mu + sd * rng.standard_normal(BARS) for _ in range(n_rounds)]
        for a, (mu, sd) in spec.items()
    }


def _evaluate(rets: dict[str, list[np.ndarray]], **kw) -> tuple[Callable, list[int]]:
    seen: list[int] = []

    def evaluate(rnd: Round) -> dict[str, RoundResult]:
        seen.append(rnd.index)
        return {a: _result(a, rnd.index, rets[a][rnd.index], **kw) for a in rets}

    return evaluate, seen


def _run(rets, *, allocation=ALLOC, gates=GATES, **kw) -> TournamentResult:
    n = len(next(iter(rets.values())))
    evaluate, _ = _evaluate(rets)
    return run_tournament(
        [_round(k) for k in range(n)], list(rets), evaluate, periods_per_year=PPY,
        allocation=allocation, gates=gates, **kw,
    )  # fmt: skip


# --------------------------------------------------------------------------- independent references


def _daily(k: int, r: np.ndarray) -> np.ndarray:
    s = pd.Series(1 + r, index=pd.to_datetime(_ts(k), utc=True).floor("D"))
    return s.groupby(level=0).prod().to_numpy() - 1


def _max_dd(r: np.ndarray) -> float:
    eq, peak, worst = 1.0, 1.0, 0.0
    for x in r:
        eq *= 1 + x
        peak = max(peak, eq)
        worst = max(worst, 1 - eq / peak)
    return worst


def _expected_weights(rets, k: int, alloc: AllocationConfig, gates: GateConfig) -> dict:
    """The weights of round k from rounds < k, by hand (kelly through kelly_weights, which
    has its own tests; the daily returns, window and eligibility are rebuilt here)."""
    agents = list(rets)
    n = len(agents)
    if k == 0:
        eq = np.full(n, 1.0 / n)
        return {"kelly": np.zeros(n), "equal": eq, "inverse_vol": eq}
    lo = max(0, k - alloc.estimation_window)
    daily = np.column_stack(
        [np.concatenate([_daily(j, rets[a][j]) for j in range(lo, k)]) for a in agents]
    )
    elig = []
    for a in agents:
        r = np.concatenate(rets[a][:k])
        sr = r.mean() / r.std(ddof=1)
        ok = sr > 0
        if "sharpe" in alloc.gated_by and gates.min_sharpe is not None:
            ok &= sr * math.sqrt(PPY) > gates.min_sharpe
        if "max_drawdown" in alloc.gated_by and gates.max_drawdown is not None:
            ok &= _max_dd(r) < gates.max_drawdown
        elig.append(bool(ok))
    kelly = kelly_weights(
        daily, fraction=alloc.kelly_fraction, shrinkage=alloc.shrinkage,
        cap=alloc.cap_per_agent, gross_cap=alloc.gross_cap, eligible=np.array(elig),
    )  # fmt: skip
    inv = 1.0 / daily.std(axis=0, ddof=1)
    return {"kelly": kelly, "equal": np.full(n, 1.0 / n), "inverse_vol": inv / inv.sum()}


# --------------------------------------------------------------------------- weights and portfolio


def test_weights_match_an_independent_computation_from_past_rounds():
    rets = _returns()
    res = _run(rets)
    assert list(res.weights["kelly"].index) == [0, 1, 2, 3, 4]
    for k in range(5):
        exp = _expected_weights(rets, k, ALLOC, GATES)
        for m in ("kelly", "equal", "inverse_vol"):
            np.testing.assert_allclose(
                res.weights[m].loc[k].to_numpy(), exp[m], rtol=1e-10, atol=1e-14,
                err_msg=f"{m} weights of round {k}",
            )  # fmt: skip
    kelly = res.weights["kelly"]
    assert (kelly.iloc[0] == 0).all()  # round 0: no OOS history → cash
    assert (kelly["b"] == 0).all()  # negative edge: never any capital
    assert (kelly.iloc[1:].sum(axis=1) > 0.3).all()  # from round 1 on, capital is invested
    assert (kelly[["a", "c"]].max() > 0).all()  # both good agents get capital at some point
    assert (kelly.sum(axis=1) <= 1.0 + 1e-12).all() and (kelly <= 0.6 + 1e-12).all().all()


def test_weights_of_a_round_use_only_earlier_rounds():
    rets = _returns()
    base = _run(rets)
    changed = {a: [r.copy() for r in rs] for a, rs in rets.items()}
    changed["a"][2] = changed["a"][2] - 0.01  # round 2 turns bad for agent a
    alt = _run(changed)
    for m in ("kelly", "equal", "inverse_vol"):
        pd.testing.assert_frame_equal(alt.weights[m].loc[:2], base.weights[m].loc[:2])
    for m in ("kelly", "inverse_vol"):
        assert not np.allclose(alt.weights[m].loc[3], base.weights[m].loc[3]), m
    assert alt.weights["kelly"].loc[3, "a"] < base.weights["kelly"].loc[3, "a"]
    # the round itself is still paid with the weights decided before it
    w2 = base.weights["equal"].loc[2].to_numpy()
    sl = slice(2 * BARS, 3 * BARS)
    R2 = np.column_stack([changed[a][2] for a in AGENTS])
    np.testing.assert_allclose(alt.portfolio_returns["equal"][sl], R2 @ w2, rtol=1e-12)


def test_portfolio_returns_are_agent_returns_times_round_weights():
    rets = _returns()
    res = _run(rets)
    ts = np.concatenate([_ts(k) for k in range(5)])
    np.testing.assert_array_equal(res.oos_ts, ts)
    R = np.vstack([np.column_stack([rets[a][k] for a in AGENTS]) for k in range(5)])
    np.testing.assert_array_equal(res.agent_returns, R)
    for m in ("kelly", "equal", "inverse_vol"):
        w = res.weights[m].to_numpy()
        exp = np.concatenate([R[k * BARS : (k + 1) * BARS] @ w[k] for k in range(5)])
        np.testing.assert_allclose(res.portfolio_returns[m], exp, rtol=1e-12, atol=1e-16)
    np.testing.assert_array_equal(res.portfolio_returns["kelly"][:BARS], 0.0)  # round 0 cash
    pm = res.portfolio_metrics(PPY)
    r = res.portfolio_returns["equal"]
    np.testing.assert_allclose(pm.loc["equal", "total_return"], np.prod(1 + r) - 1, rtol=1e-12)
    np.testing.assert_allclose(
        pm.loc["equal", "sharpe"], r.mean() / r.std(ddof=1) * math.sqrt(PPY), rtol=1e-12
    )
    np.testing.assert_allclose(pm.loc["equal", "max_drawdown"], _max_dd(r), rtol=1e-12)


def test_reports_and_callback_follow_the_rounds():
    rets = _returns()
    evaluate, seen = _evaluate(rets)
    got: list[RoundReport] = []
    res = run_tournament(
        [_round(k) for k in range(5)], AGENTS, evaluate, periods_per_year=PPY,
        allocation=ALLOC, gates=GATES, on_round=got.append,
    )  # fmt: skip
    assert seen == [0, 1, 2, 3, 4]
    assert [r.round.index for r in got] == [0, 1, 2, 3, 4] and len(res.reports) == 5
    for k, rep in enumerate(got):
        for m in ("kelly", "equal", "inverse_vol"):
            assert rep.weights[m] == pytest.approx(res.weights[m].loc[k].to_dict(), abs=0)
        np.testing.assert_array_equal(rep.cumulative["weight"], res.weights["kelly"].loc[k])
        assert (rep.leaderboard["round"] == k).all()
        assert sorted(rep.leaderboard.index) == AGENTS
        # the per-round board is that round's record only; the cumulative one all rounds so far
        rec_k = agent_record([rep.results["c"]], PPY)
        assert rep.leaderboard.loc["c", "sharpe"] == pytest.approx(rec_k["sharpe"], rel=1e-12)
        rec_cum = agent_record([g.results["c"] for g in got[: k + 1]], PPY)
        assert rep.cumulative.loc["c", "sharpe"] == pytest.approx(rec_cum["sharpe"], rel=1e-12)
        np.testing.assert_allclose(
            rep.portfolio["equal"]["total_return"],
            np.prod(1 + res.portfolio_returns["equal"][k * BARS : (k + 1) * BARS]) - 1,
            rtol=1e-12,
        )


# --------------------------------------------------------------------------- gates


def _with_crash(n_rounds: int = 5) -> dict[str, list[np.ndarray]]:
    """Agent d earns 2 %/bar but loses 30 % once in round 0: a positive Sharpe with a
    drawdown over the 20 % gate."""
    rets = _returns(n_rounds)
    rng = np.random.default_rng(2)
    d = [0.02 + 0.001 * rng.standard_normal(BARS) for _ in range(n_rounds)]
    d[0][5] = -0.30
    rets["d"] = d
    return rets


def test_an_agent_failing_a_gate_gets_no_kelly_capital():
    rets = _with_crash()
    res = _run(rets)
    assert res.gates["d"].failed == ["max_drawdown"]
    assert res.gates["d"].results["sharpe"].passed
    assert (res.weights["kelly"]["d"] == 0).all()
    assert (res.weights["kelly"].iloc[1:].sum(axis=1) > 0.3).all()
    board = res.leaderboard.set_index("agent")
    assert board.loc["d", "gates_failed"] == "max_drawdown" and not board.loc["d", "gates_passed"]
    assert board.loc["d", "next_weight"] == 0.0
    assert board.loc["d", "held_back_by"] == "max_drawdown"  # a binding gate: no capital
    # the baselines ignore the gates
    assert (res.weights["equal"]["d"] == 0.25).all()
    assert (res.weights["inverse_vol"].iloc[1:]["d"] > 0).all()
    # capital gated by the Sharpe gate only: d (huge mean return) is now funded
    only_sharpe = AllocationConfig(**{**ALLOC.__dict__, "gated_by": ("sharpe",)})
    res2 = _run(rets, allocation=only_sharpe)
    assert res2.weights["kelly"].loc[1, "d"] == 0  # round 0 alone: d lost money
    assert (res2.weights["kelly"].loc[2:, "d"] > 0).all()
    board2 = res2.leaderboard.set_index("agent")
    assert board2.loc["d", "gates_failed"] == "max_drawdown"
    assert board2.loc["d", "held_back_by"] == ""  # failed, but not binding for capital
    for k in range(5):
        exp = _expected_weights(rets, k, only_sharpe, GATES)
        np.testing.assert_allclose(res2.weights["kelly"].loc[k], exp["kelly"], rtol=1e-10)


def test_all_agents_gated_out_means_all_cash():
    rets = _returns()
    strict = GateConfig(
        min_sharpe=1e6, max_drawdown=0.2, min_win_rate=None, min_history_days=None,
        min_paper_days=None,
    )  # fmt: skip
    res = _run(rets, gates=strict)
    assert (res.weights["kelly"].to_numpy() == 0).all()
    np.testing.assert_array_equal(res.portfolio_returns["kelly"], 0.0)
    assert res.portfolio_metrics(PPY).loc["kelly", "total_return"] == 0.0
    assert not any(g.passed for g in res.gates.values())
    assert (res.leaderboard["next_weight"] == 0).all() and (res.leaderboard["weight"] == 0).all()
    # the baselines still invest
    assert np.abs(res.portfolio_returns["equal"]).sum() > 0


def test_method_selects_the_reported_weights():
    rets = _returns()
    res = _run(rets, allocation=AllocationConfig(**{**ALLOC.__dict__, "method": "inverse_vol"}))
    last = res.reports[-1].cumulative["weight"].to_numpy()
    np.testing.assert_array_equal(last, res.weights["inverse_vol"].loc[4].to_numpy())
    exp_next = _expected_weights(rets, 5, ALLOC, GATES)["inverse_vol"]
    np.testing.assert_allclose(
        res.leaderboard.set_index("agent").loc[AGENTS, "next_weight"], exp_next, rtol=1e-10
    )


# --------------------------------------------------------------------------- records and leaderboard


def test_agent_record_matches_hand_computation():
    rng = np.random.default_rng(5)
    r = [0.001 + 0.004 * rng.standard_normal(BARS) for _ in range(3)]
    r[1][3] = -0.05  # a drawdown inside round 1
    sh = [np.array([0.3, 1.1, np.nan]), np.array([0.8, -0.4, 2.0]), np.array([1.5, 0.2, 0.9])]
    # the population's daily OOS returns: the chosen set and four others
    pop = [
        np.column_stack([_daily(k, r[k])] + [_daily(k, 0.004 * rng.standard_normal(BARS))
                                             for _ in range(4)])
        for k in range(3)
    ]  # fmt: skip
    results = [
        _result("a", 0, r[0], n_trades=4, win_rate=0.5, is_sharpe_all=sh[0], daily_all=pop[0]),
        _result("a", 1, r[1], n_trades=6, win_rate=1 / 3, is_sharpe_all=sh[1], daily_all=pop[1]),
        _result("a", 2, r[2], n_trades=0, win_rate=float("nan"), is_sharpe_all=sh[2],
                daily_all=pop[2]),
    ]  # fmt: skip
    rec = agent_record(results, PPY)
    x = np.concatenate(r)
    sr = x.mean() / x.std(ddof=1)
    assert rec["sharpe"] == pytest.approx(sr * math.sqrt(PPY), rel=1e-12)
    assert rec["sharpe_pp"] == pytest.approx(sr, rel=1e-12)
    assert rec["total_return"] == pytest.approx(np.prod(1 + x) - 1, rel=1e-12)
    assert rec["max_drawdown"] == pytest.approx(_max_dd(x), rel=1e-12)
    assert rec["max_drawdown"] > 0.04
    assert rec["win_rate"] == pytest.approx((2 + 2) / 10, rel=1e-12)  # wins / trades, pooled
    assert rec["n_trades"] == 10
    assert rec["history_days"] == pytest.approx(9.0, rel=1e-12)  # 3 rounds × 3 days
    assert rec["n_trials"] == 9 and rec["n_obs"] == 3 * BARS
    assert rec["skew"] == pytest.approx(st.skew(x, bias=True), rel=1e-9)
    assert rec["kurt"] == pytest.approx(st.kurtosis(x, fisher=False, bias=True), rel=1e-9)
    # deflated Sharpe by the paper's formulas (Bailey & López de Prado 2014) on the daily
    # record: V = variance of the population's daily OOS Sharpes over the same 9 days
    d = np.concatenate([_daily(k, r[k]) for k in range(3)])
    trials = pd.DataFrame(np.concatenate(pop))
    assert len(d) == len(trials) == 9
    v = (trials.mean() / trials.std()).var()  # pandas: ddof=1
    g = np.euler_gamma
    sr0 = math.sqrt(v) * ((1 - g) * st.norm.ppf(1 - 1 / 9) + g * st.norm.ppf(1 - 1 / (9 * math.e)))
    sr_d = d.mean() / d.std(ddof=1)
    g3 = st.skew(d, bias=True)
    g4 = st.kurtosis(d, fisher=False, bias=True)
    z = (sr_d - sr0) * math.sqrt(d.size - 1) / math.sqrt(1 - g3 * sr_d + (g4 - 1) / 4 * sr_d**2)
    assert rec["var_trials_sharpe"] == pytest.approx(v, rel=1e-9)
    assert rec["dsr"] == pytest.approx(st.norm.cdf(z), rel=1e-9)
    # no trades at all: win rate undefined, not 0
    assert math.isnan(agent_record(results[2:], PPY)["win_rate"])


def test_moments_merged_round_by_round_equal_the_direct_ones():
    from quantarena.tournaments.record import Moments

    rng = np.random.default_rng(9)
    x = 1e-4 + 1e-3 * rng.standard_t(3, 5000)  # fat tails, small mean: as 1m returns
    cuts = [0, 1, 1, 3, 700, 2500, 4999, 5000]  # includes empty and one-value chunks
    m = Moments()
    for a, b in itertools.pairwise(cuts):
        m.merge(Moments.of(x[a:b]))
    d = x - x.mean()
    assert m.n == x.size
    assert m.mean == pytest.approx(x.mean(), rel=1e-12)
    for k, got in ((2, m.m2), (3, m.m3), (4, m.m4)):
        assert got == pytest.approx(np.sum(d**k), rel=1e-9), k


def _days_of(ts: np.ndarray, r: np.ndarray) -> np.ndarray:
    s = pd.Series(1 + np.asarray(r), index=pd.to_datetime(ts, utc=True).floor("D"))
    return s.groupby(level=0).prod().to_numpy() - 1


def _record_direct(results, ppy):
    """Reference record from all rounds' returns concatenated (the direct computation the
    director's incremental TrackRecord must reproduce)."""
    from quantarena.tournaments.director import _series_metrics
    from quantarena.tournaments.overfitting import deflated_sharpe, sharpe_stats

    r = np.concatenate([x.oos_returns for x in results])
    m = _series_metrics(r, ppy)
    trades = sum(x.oos_metrics.get("n_trades", 0.0) for x in results)
    wins = sum(
        x.oos_metrics["win_rate"] * x.oos_metrics["n_trades"]
        for x in results
        if np.isfinite(x.oos_metrics.get("win_rate", np.nan))
    )
    ts = np.concatenate([x.oos_ts for x in results])
    days = float(ts[-1] + H6 - ts[0]) / DAY  # first OOS bar to the end of the last (6h bars)
    n_trials = int(sum(x.n_trials for x in results))
    k = min(x.oos_daily_all.shape[1] for x in results)
    trials = np.concatenate([x.oos_daily_all[:, :k] for x in results])
    with np.errstate(invalid="ignore", divide="ignore"):
        trial = trials.mean(axis=0) / trials.std(axis=0, ddof=1)
    trial = np.where(trials.std(axis=0) == 0, np.where(trials.mean(axis=0) == 0, 0, np.nan), trial)
    trial = trial[np.isfinite(trial)]
    var_sr = float(np.var(trial, ddof=1)) if trial.size > 1 else 0.0
    stats = sharpe_stats(r) if r.size > 2 else None
    daily = np.concatenate([_days_of(x.oos_ts, x.oos_returns) for x in results if x.oos_ts.size])
    dstats = sharpe_stats(daily) if daily.size > 2 else None
    ok = dstats is not None and np.isfinite(dstats.sr)
    nan = float("nan")
    return {
        **m,
        "skew": float(stats.skew) if stats is not None else nan,
        "kurt": float(stats.kurt) if stats is not None else nan,
        "var_trials_sharpe": var_sr,
        "win_rate": wins / trades if trades > 0 else nan,
        "n_trades": float(trades),
        "history_days": days,
        "n_trials": float(n_trials),
        "dsr": float(deflated_sharpe(dstats, max(n_trials, 1), var_sr)) if ok else nan,
        "sharpe_pp": float(stats.sr) if stats is not None else nan,
        "n_obs": float(r.size),
    }


def test_track_record_equals_agent_record_after_every_round():
    from quantarena.tournaments.record import TrackRecord

    rng = np.random.default_rng(11)
    sizes = [BARS, 2, BARS, 1, BARS, BARS]
    agents = {
        "noisy": [0.0005 + 0.01 * rng.standard_t(4, n) for n in sizes],
        "idle": [np.zeros(n) for n in sizes],  # never trades: zero variance
        "crash": [np.r_[-0.3, 0.01 * np.ones(n - 1)] for n in sizes],
    }
    for name, rets in agents.items():
        track = TrackRecord()
        results = []
        for k, r in enumerate(rets):
            wr = float("nan") if k == 1 else 0.25 * (k % 4)
            sh = rng.normal(0.5, 1.0, 7)
            sh[k % 7] = np.nan
            d = _days_of(_ts(k)[: r.size], r)
            cols = 4 if k == 2 else 5  # a round with fewer sets: the common columns count
            pop = np.column_stack([d] + [rng.normal(0, 0.01, d.size) for _ in range(cols - 1)])
            results.append(
                _result(name, k, r, n_trades=k, win_rate=wr, is_sharpe_all=sh, daily_all=pop)
            )
            track.add(results[-1], PPY)
            want = _record_direct(results, PPY)
            got = track.stats(PPY)
            np.testing.assert_equal(agent_record(results, PPY), got)  # NaN == NaN here
            assert sorted(got) == sorted(want)
            for key, v in want.items():
                if math.isnan(v):
                    assert math.isnan(got[key]), (name, k, key)
                else:
                    assert got[key] == pytest.approx(v, rel=1e-9, abs=1e-12), (name, k, key)


def test_final_leaderboard_is_the_record_ranked_by_deflated_sharpe():
    rets = _with_crash()
    res = _run(rets)
    board = res.leaderboard
    assert list(board["rank"]) == [1, 2, 3, 4]
    assert sorted(board["agent"]) == ["a", "b", "c", "d"]
    assert (np.diff(board["dsr_z"].to_numpy()) <= 0).all()
    for a in ["a", "b", "c", "d"]:
        row = board.set_index("agent").loc[a]
        rec = agent_record([rep.results[a] for rep in res.reports], PPY)
        assert row["sharpe"] == pytest.approx(rec["sharpe"], rel=1e-12)  # annualised
        assert row["dsr"] == pytest.approx(rec["dsr"], rel=1e-9)
        assert row["max_drawdown"] == pytest.approx(rec["max_drawdown"], rel=1e-12)
        assert row["weight"] == res.weights["kelly"].loc[4, a]
    assert board["rounds_won"].sum() == 5  # one winner per round
    won = pd.Series([rep.leaderboard.index[0] for rep in res.reports]).value_counts()
    for a, n in won.items():
        assert board.set_index("agent").loc[a, "rounds_won"] == n


def test_same_inputs_give_identical_results():
    one, two = _run(_with_crash()), _run(_with_crash())
    pd.testing.assert_frame_equal(one.leaderboard, two.leaderboard)
    for m in one.weights:
        pd.testing.assert_frame_equal(one.weights[m], two.weights[m])
        np.testing.assert_array_equal(one.portfolio_returns[m], two.portfolio_returns[m])
    assert list(one.pbo) == list(two.pbo)
    np.testing.assert_array_equal(list(one.pbo.values()), list(two.pbo.values()))  # NaN == NaN


# --------------------------------------------------------------------------- PBO


def _cscv_brute_force(perf: np.ndarray, s: int) -> float:
    """PBO by the paper's recipe, one combination at a time (Bailey et al. 2017)."""
    t, n = perf.shape
    block = t // s
    x = perf[t - block * s :]
    blocks = [x[i * block : (i + 1) * block] for i in range(s)]
    below = 0
    combos = list(itertools.combinations(range(s), s // 2))
    for c in combos:
        ins = np.vstack([blocks[i] for i in c])
        oos = np.vstack([blocks[i] for i in range(s) if i not in c])
        sr_is = ins.mean(axis=0) / ins.std(axis=0, ddof=1)
        sr_oos = oos.mean(axis=0) / oos.std(axis=0, ddof=1)
        best = int(np.argmax(sr_is))
        v = sr_oos[best]
        rank = (sr_oos < v).sum() + ((sr_oos == v).sum() + 1) / 2
        w = rank / (n + 1)
        below += math.log(w / (1 - w)) <= 0
    return below / len(combos)


def test_pbo_of_each_population_from_its_daily_oos_returns():
    rng = np.random.default_rng(3)
    n_rounds, days_per_round, sets = 5, 3, 6
    noise = rng.normal(0.0, 0.01, size=(n_rounds * days_per_round, sets))
    dominant = noise.copy()
    dominant[:, 0] = np.abs(noise).max(axis=1) + 0.005  # set 0 best on every day
    daily = {"a": noise, "c": dominant}

    def evaluate(rnd: Round) -> dict[str, RoundResult]:
        k = rnd.index
        sl = slice(k * days_per_round, (k + 1) * days_per_round)
        return {
            a: _result(a, k, 0.001 * (i + 1) * np.sin(np.arange(BARS) + k), daily_all=daily[a][sl])
            for i, a in enumerate(daily)
        }

    res = run_tournament(
        [_round(k) for k in range(n_rounds)], list(daily), evaluate, periods_per_year=PPY,
        allocation=ALLOC, gates=GATES,
    )  # fmt: skip
    # 15 days → 6 blocks of 2 days (the director's choice: even, >= 2 days per block)
    assert res.pbo["a"] == pytest.approx(_cscv_brute_force(noise, 6), abs=1e-12)
    assert 0.0 < res.pbo["a"] < 1.0
    assert res.pbo["c"] == 0.0  # the IS-best set is always the OOS-best
    board = res.leaderboard.set_index("agent")
    assert board.loc["a", "pbo"] == res.pbo["a"]

    short = run_tournament(
        [_round(k) for k in range(2)], list(daily), evaluate, periods_per_year=PPY,
        allocation=ALLOC, gates=GATES,
    )  # fmt: skip
    assert math.isnan(short.pbo["a"])  # 6 days: too few for CSCV


# --------------------------------------------------------------------------- bad input


def test_director_rejects_bad_input():
    rets = _returns(2)
    evaluate, _ = _evaluate(rets)
    rounds = [_round(0), _round(1)]
    with pytest.raises(RuntimeError, match="round 0: no result from z"):
        run_tournament(rounds, ["a", "z"], evaluate, periods_per_year=PPY)
    with pytest.raises(ValueError, match="unique"):
        run_tournament(rounds, ["a", "a"], evaluate, periods_per_year=PPY)
    with pytest.raises(ValueError, match="allocation.method"):
        run_tournament(rounds, AGENTS, evaluate, periods_per_year=PPY,
                       allocation=AllocationConfig(method="max_sharpe"))  # fmt: skip
    with pytest.raises(ValueError, match="no rounds"):
        run_tournament([], AGENTS, evaluate, periods_per_year=PPY)

    def uneven(rnd: Round) -> dict[str, RoundResult]:
        out = evaluate(rnd)
        out["b"] = _result("b", rnd.index, rets["b"][rnd.index][:-1])
        return out

    with pytest.raises(RuntimeError, match="different OOS lengths"):
        run_tournament(rounds, AGENTS, uneven, periods_per_year=PPY)


# --------------------------------------------------------------------------- a real tournament


def _real_config(out: Path, *, seed: int = 3, mlflow_uri: str | None = None):
    """Five agents on FTX BTC-PERP 1m bars replayed as 15m bars, 2022-01-11 .. 02-01:
    weekly rounds, 5-day lookback, 1-day warm-up → 2 rounds (14 OOS days); round 0 earns
    three agents Kelly capital for round 1."""
    from quantarena.config import TournamentConfig

    root = Path(__file__).resolve().parent.parent
    tracking = {"output_dir": str(out)}
    if mlflow_uri:
        tracking["mlflow_uri"] = mlflow_uri
    return TournamentConfig.from_dict({
        "name": "real-small", "seed": seed,
        "data": {"files": [{"path": str(root / "data/sample/btc-perp-20211231-20220201_1m.csv"),
                            "symbol": "BTCPERP"}],
                 "interval": "15m", "start": "2022-01-11", "end": "2022-02-01"},
        "schedule": {"round": "7d", "lookback": "5d", "warmup": "1d"},
        "agents": [
            {"name": "trend", "kind": "momentum", "population": 4,
             "params": {"fast": [4, 8, 12], "slow": [24, 48]}},
            {"name": "reversion", "kind": "mean_reversion",
             "params": {"window": [10, 20], "entry": [1.5, 2.0], "exit": 0.5}},
            {"name": "channel", "kind": "breakout",
             "params": {"window": [10, 20], "exit_window": [5, 10]}},
            {"name": "voltarget", "kind": "vol_target",
             "params": {"lookback": [12, 24], "vol_window": [24, 48], "target_vol": 0.5}},
            {"name": "hodl", "kind": "buy_hold"},
        ],
        "costs": {"fee_bps": 5, "slippage_bps": 1},
        "allocation": {"min_rounds": 1, "estimation_window": 4},
        "gates": {"min_sharpe": 0.0, "max_drawdown": 0.3, "min_win_rate": None,
                  "min_history_days": None, "min_paper_days": None},
        "tracking": tracking,
    })  # fmt: skip


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory):
    from quantarena.actors.driver import run_in_process

    out = tmp_path_factory.mktemp("real") / "runs"
    cfg = _real_config(out)
    summary = run_in_process(cfg, backend="cpu")
    assert summary["output_dir"] == str(out)
    return cfg, summary


REAL_AGENTS = ["trend", "reversion", "channel", "voltarget", "hodl"]


@pytest.mark.slow
def test_real_tournament_logs_parent_and_child_runs(real_run):
    from mlflow import MlflowClient

    cfg, summary = real_run
    assert summary["rounds"] == 2 and summary["agents"] == REAL_AGENTS
    assert summary["mlflow_uri"] == cfg.tracking.mlflow_uri
    assert cfg.tracking.mlflow_uri.startswith("sqlite:///")
    client = MlflowClient(tracking_uri=cfg.tracking.mlflow_uri)
    parent = client.get_run(summary["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["quantarena.role"] == "tournament"
    assert parent.data.params["seed"] == "3"
    assert client.get_experiment(parent.info.experiment_id).name == "real-small"
    hist = client.get_metric_history(parent.info.run_id, "equal_total_return")
    assert [m.step for m in hist][:2] == [0, 1]

    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_name = {r.info.run_name: r for r in children}
    assert sorted(by_name) == sorted(REAL_AGENTS)
    board = pd.DataFrame(summary["leaderboard"]).set_index("agent")
    weights = pd.read_csv(Path(summary["output_dir"]) / "weights_kelly.csv", index_col="round")
    assert (weights.loc[0] == 0).all() and weights.loc[1].sum() > 0  # cash, then invested
    for name, run in by_name.items():
        rid = run.info.run_id
        assert run.info.status == "FINISHED"
        assert run.data.tags["quantarena.agent_kind"] == cfg.agent(name).kind
        for key in ("n_trials", "oos_total_return", "cum_sharpe", "weight"):
            h = client.get_metric_history(rid, key)
            assert sorted(m.step for m in h) == [0, 1], (name, key)  # one point per round
        last = {m.step: m.value for m in client.get_metric_history(rid, "cum_sharpe")}[1]
        assert last == pytest.approx(board.loc[name, "sharpe"], rel=1e-9)
        w = {m.step: m.value for m in client.get_metric_history(rid, "weight")}
        assert [w[0], w[1]] == pytest.approx(weights[name].tolist(), abs=1e-12)
        tags = run.data.tags
        assert tags["gate.passed"] == ("true" if board.loc[name, "gates_passed"] else "false")
        assert tags["gate.sharpe"] in ("pass", "fail") and tags["gate.max_drawdown"] in (
            "pass", "fail",
        )  # fmt: skip
        assert int(tags["rank"]) == board.loc[name, "rank"]
        # the chosen parameters: a tag per parameter (latest choice) and the final params
        space = cfg.agent(name).params or {"weight": None}
        for p in space:
            assert f"param.{p}" in tags, (name, p)
            assert run.data.params[f"final.{p}"] == tags[f"param.{p}"]
    mom = by_name["trend"].info.run_id
    fast = client.get_metric_history(mom, "param.fast")
    assert sorted(m.step for m in fast) == [0, 1] and {m.value for m in fast} <= {4, 8, 12}


@pytest.mark.slow
def test_real_tournament_writes_reports_and_artifacts(real_run):
    from mlflow import MlflowClient

    from quantarena.config import TournamentConfig

    cfg, summary = real_run
    out = Path(summary["output_dir"])
    for name in ("leaderboard.csv", "leaderboard.html", "leaderboard.md", "config.yaml",
                 "summary.json", "leaderboard_by_round.csv", "portfolio.csv",
                 "final_params.json"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    # each agent's last-round choice, for promotion into paper trading
    import json

    from quantarena.tournaments.checkpoint import load_checkpoint

    final = json.loads((out / "final_params.json").read_text())["agents"]
    assert sorted(final) == sorted(REAL_AGENTS)
    last = load_checkpoint(out / "checkpoint.pkl").results[-1]
    assert {a: f["params"] for a, f in final.items()} == {a: last[a].chosen for a in final}
    assert json.loads((out / "summary.json").read_text())["finished_at"].endswith("Z")
    for png in ("equity_agents.png", "equity_portfolio.png", "drawdowns.png", "weights.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, png
    board = pd.read_csv(out / "leaderboard.csv")
    assert board["agent"].tolist() == [r["agent"] for r in summary["leaderboard"]]
    np.testing.assert_allclose(board["sharpe"], [r["sharpe"] for r in summary["leaderboard"]])
    assert sorted(board["agent"]) == sorted(REAL_AGENTS)
    assert board["rank"].tolist() == [1, 2, 3, 4, 5]
    assert "| # | agent | OOS Sharpe |" in (out / "leaderboard.md").read_text()  # CLI words
    assert "<table" in (out / "leaderboard.html").read_text().lower()
    by_round = pd.read_csv(out / "leaderboard_by_round.csv")
    assert sorted(by_round["round"].unique()) == [0, 1] and len(by_round) == 10
    # the config written is the config that ran
    again = TournamentConfig.from_yaml(out / "config.yaml")
    assert again.model_dump() == cfg.model_dump()
    # PBO: 14 OOS days → defined for every population of 2 or more sets
    assert (
        board.set_index("agent").loc[["trend", "reversion", "channel"], "pbo"].between(0, 1).all()
    )
    assert np.isnan(board.set_index("agent").loc["hodl", "pbo"])  # one set: no PBO
    # the same files are artifacts of the parent run
    client = MlflowClient(tracking_uri=cfg.tracking.mlflow_uri)
    names = {a.path for a in client.list_artifacts(summary["run_id"])}
    names |= {a.path for a in client.list_artifacts(summary["run_id"], "tables")}
    for name in ("config.yaml", "equity_agents.png", "equity_portfolio.png", "drawdowns.png",
                 "weights.png", "leaderboard.md", "tables/leaderboard.csv",
                 "tables/leaderboard.html", "final_params.json"):  # fmt: skip
        assert name in names, name


@pytest.mark.slow
def test_real_tournament_same_seed_same_leaderboard(real_run, tmp_path: Path):
    from quantarena.actors.driver import run_in_process

    cfg, summary = real_run
    again = run_in_process(_real_config(tmp_path / "again"), log_mlflow=False, backend="cpu")
    assert again["run_id"] is None
    a = pd.DataFrame(summary["leaderboard"])
    b = pd.DataFrame(again["leaderboard"])
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(
        pd.DataFrame(again["portfolio"]), pd.DataFrame(summary["portfolio"])
    )
    assert summary["portfolio"]["equal"]["total_return"] != 0.0


def test_long_only_setting_reaches_the_kelly_solver():
    """allocation.long_only=False lets a losing agent be sold short (|w| <= cap, Σ|w| <= gross);
    the default keeps every weight >= 0. The config's field reaches the director's setting."""
    from quantarena.config import TournamentConfig
    from quantarena.tournaments.setup import allocation_of

    rets = _returns()
    ungated = AllocationConfig(**{**ALLOC.__dict__, "gated_by": ()})
    shorts = AllocationConfig(**{**ungated.__dict__, "long_only": False})
    lo = _run(rets, allocation=ungated).weights["kelly"]
    ls = _run(rets, allocation=shorts).weights["kelly"]
    assert (lo.to_numpy() >= 0).all() and (lo["b"] == 0).all()
    assert (ls["b"] <= 0).all() and (ls["b"] < -0.1).any()  # b loses money: sold short
    assert (ls.abs() <= 0.6 + 1e-12).all().all() and (ls.abs().sum(axis=1) <= 1 + 1e-9).all()
    for k in range(1, 5):
        exp = _expected_weights(rets, k, ungated, GATES)  # eligibility: everyone by gates
        daily = np.column_stack(
            [np.concatenate([_daily(j, rets[a][j]) for j in range(max(0, k - 3), k)]) for a in rets]
        )
        want = kelly_weights(daily, fraction=0.5, cap=0.6, gross_cap=1.0, long_only=False)
        np.testing.assert_allclose(ls.loc[k], want, rtol=1e-8, atol=1e-10)
        assert exp["kelly"][1] == 0.0
    cfg = TournamentConfig.from_dict(
        {"name": "t", "data": {"files": ["data/sample/btc-perp-20211231-20220201_1m.csv"]},
         "agents": [{"name": "m", "kind": "momentum"}], "allocation": {"long_only": False}}
    )  # fmt: skip
    assert allocation_of(cfg).long_only is False
