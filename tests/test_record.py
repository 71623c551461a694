"""The per-agent deflated Sharpe ratio and the history gate of the track record.

The DSR deflates the agent's out-of-sample Sharpe by the expected best of N skill-less trials,
with V (the variance of the trials' Sharpes) measured on the same days as the agent's Sharpe.
Checked here: it is calibrated (the best of a skill-less population scores anywhere in [0, 1]
across seeds, not 0), a planted edge scores high, and the numbers equal an independent
computation of the paper's formulas with scipy. History counts calendar time.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from quantarena.tournaments.gates import GateConfig, evaluate_gates
from quantarena.tournaments.record import TrackRecord
from quantarena.tournaments.rounds import RoundResult

DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9
T0 = pd.Timestamp("2024-01-01", tz="UTC").value  # a Monday


def _annualised(r: np.ndarray, ppy: float) -> np.ndarray:
    return r.mean(axis=0) / r.std(axis=0, ddof=1) * math.sqrt(ppy)


def _result(k: int, ts: np.ndarray, r: np.ndarray, pop_daily: np.ndarray, is_sharpe: np.ndarray):
    return RoundResult(
        agent="a", round=k, chosen={}, chosen_index=0, n_trials=int(is_sharpe.size),
        is_metrics={}, is_sharpe_all=is_sharpe, oos_ts=ts, oos_returns=r,
        oos_metrics={"n_trades": 10.0, "win_rate": 0.5}, oos_daily_all=pop_daily,
    )  # fmt: skip


def _dsr_paper(daily: np.ndarray, n_trials: int, trials_daily: np.ndarray) -> float:
    """Bailey & López de Prado (2014), eqs. 7-8, written out with scipy.stats."""
    sr_trials = trials_daily.mean(axis=0) / trials_daily.std(axis=0, ddof=1)
    v = np.var(sr_trials, ddof=1)
    g = np.euler_gamma
    sr0 = math.sqrt(v) * (
        (1 - g) * st.norm.ppf(1 - 1 / n_trials) + g * st.norm.ppf(1 - 1 / (n_trials * math.e))
    )
    sr = daily.mean() / daily.std(ddof=1)
    g3 = st.skew(daily)
    g4 = st.kurtosis(daily, fisher=False)
    se = math.sqrt((1 - g3 * sr + (g4 - 1) / 4 * sr**2) / (daily.size - 1))
    return float(st.norm.cdf((sr - sr0) / se))


def test_best_of_a_skill_less_population_is_not_pinned_at_zero():
    """250 days of daily returns of 100 skill-less sets; the record is the best of them (the
    selection the DSR corrects for). Its DSR varies over [0, 1] across seeds; deflating with
    the variance of Sharpes from 5-day in-sample windows pins it at 0."""
    ppy, days, p = 365.0, 250, 100
    dsr = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        pop = 0.01 * rng.standard_normal((days, p))
        best = int(np.argmax(pop.mean(axis=0) / pop.std(axis=0, ddof=1)))
        ts = T0 + np.arange(days, dtype=np.int64) * DAY
        is_sharpe = _annualised(0.01 * rng.standard_normal((5, p)), ppy)  # 5-day IS windows
        track = TrackRecord()
        track.add(_result(0, ts, pop[:, best], pop, is_sharpe), ppy)
        rec = track.stats(ppy)
        assert rec["dsr"] == pytest.approx(_dsr_paper(pop[:, best], p, pop), rel=1e-9)
        dsr.append(rec["dsr"])
        # the in-sample variance is ~50× larger: the old deflation pins the DSR at 0
        v_is = np.var(is_sharpe / math.sqrt(ppy), ddof=1)
        assert v_is > 20 * rec["var_trials_sharpe"]
    dsr = np.array(dsr)
    assert 0.3 < dsr.mean() < 0.7
    assert dsr.min() < 0.25 and dsr.max() > 0.75
    assert dsr.std() > 0.1


def _planted(seed: int, edge_sharpe: float):
    """52 weekly rounds of hourly bars (24/7); 100 sets a round; set 0 is the agent's choice
    with an annualised Sharpe of ``edge_sharpe``, the others are skill-less."""
    rng = np.random.default_rng(seed)
    ppy = 24 * 365.0
    bars, p, sd = 7 * 24, 100, 0.004
    mu = edge_sharpe * sd / math.sqrt(ppy)
    track = TrackRecord()
    daily_all, agent = [], []
    for k in range(52):
        ts = T0 + (k * bars + np.arange(bars, dtype=np.int64)) * HOUR
        r = sd * rng.standard_normal((bars, p))
        r[:, 0] += mu
        day = (ts // DAY - ts[0] // DAY).astype(int)
        pop_daily = np.vstack(
            [np.prod(1 + r[day == d], axis=0) - 1 for d in range(7)]
        )  # compounded by hand
        is_sharpe = _annualised(sd * rng.standard_normal((21 * 24, p)), ppy)  # 3-week IS
        is_sharpe[0] += edge_sharpe
        track.add(_result(k, ts, r[:, 0], pop_daily, is_sharpe), ppy)
        daily_all.append(pop_daily)
        agent.append(pop_daily[:, 0])
    return track.stats(ppy), np.concatenate(agent), np.vstack(daily_all), ppy


def test_planted_edge_gets_a_high_deflated_sharpe():
    rec, daily, trials, ppy = _planted(1, edge_sharpe=8.0)
    assert rec["n_trials"] == 5_200
    assert rec["sharpe"] > 6
    assert rec["dsr"] > 0.95
    assert rec["dsr"] == pytest.approx(_dsr_paper(daily, 5_200, trials), rel=1e-9)
    # V on the OOS horizon: about 1/T per day (T = 364 days; the edge's own column adds a
    # little), where the 3-week IS windows' Sharpes vary ~17× more
    assert 1 / 364 < rec["var_trials_sharpe"] < 2.5 / 364
    # skill-less agents selected in sample do not: the deflation by N = 5,200 is strict
    null, *_ = _planted(1, edge_sharpe=0.0)
    assert null["dsr"] < 0.2


def test_history_days_are_calendar_days():
    """52 weekly rounds of daily equity bars (Monday to Friday): 260 bars, 362 calendar days
    from the first Monday to the end of the last Friday; 53 weeks clear a 365-day gate."""
    track = TrackRecord()
    gate = GateConfig(min_sharpe=None, max_drawdown=None, min_win_rate=None, min_paper_days=None)
    rng = np.random.default_rng(0)
    for k in range(53):
        ts = T0 + (k * 7 + np.arange(5, dtype=np.int64)) * DAY
        r = 0.01 * rng.standard_normal(5)
        track.add(_result(k, ts, r, r[:, None], np.zeros(1)), 252.0)
        if k == 51:
            rec = track.stats(252.0)
            assert rec["n_obs"] == 260
            assert rec["history_days"] == 362
            assert not evaluate_gates({"a": rec}, gate)["a"].passed
    rec = track.stats(252.0)
    assert rec["history_days"] == 52 * 7 + 5 == 369
    assert evaluate_gates({"a": rec}, gate)["a"].passed
    # Wednesday starts: the same calendar span, whatever weekday a round starts on
    wed = TrackRecord()
    for k in range(52):
        ts = T0 + (2 + k * 7 + np.array([0, 1, 2, 5, 6], dtype=np.int64)) * DAY  # We Th Fr Mo Tu
        wed.add(_result(k, ts, np.zeros(5), np.zeros((5, 1)), np.zeros(1)), 252.0)
    assert wed.stats(252.0)["history_days"] == 51 * 7 + 7 == 364
