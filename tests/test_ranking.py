"""Leaderboards: scores checked against the overfitting functions and hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from quantarena.tournaments.overfitting import (
    deflated_sharpe,
    expected_max_sharpe,
    sharpe_stats,
)
from quantarena.tournaments.ranking import cumulative_leaderboard, rank_agents


def _stats() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sharpe": [0.05, 0.12, 0.08, 0.02],
            "n_obs": [2000, 500, 1500, 3000],
            "skew": [0.0, -1.0, 0.5, 0.0],
            "kurt": [3.0, 6.0, 4.0, 3.0],
        },
        index=["a", "b", "c", "d"],
    )


def test_dsr_default_matches_overfitting_module_and_hand_formula() -> None:
    df = _stats()
    board = rank_agents(df, n_trials=50, var_trials_sharpe=0.001)
    sr0 = expected_max_sharpe(50, 0.001)
    for agent, row in df.iterrows():
        expect = deflated_sharpe((row["sharpe"], row["n_obs"], row["skew"], row["kurt"]), 50, 0.001)
        assert board.loc[agent, "dsr"] == pytest.approx(expect, rel=1e-12)
        z = (row["sharpe"] - sr0) * math.sqrt(row["n_obs"] - 1)
        z /= math.sqrt(1 - row["skew"] * row["sharpe"] + (row["kurt"] - 1) / 4 * row["sharpe"] ** 2)
        assert board.loc[agent, "dsr_z"] == pytest.approx(z, rel=1e-12)
        assert board.loc[agent, "score"] == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    assert list(board["rank"]) == [1, 2, 3, 4]
    assert np.all(np.diff(board["dsr_z"].to_numpy()) <= 0)
    assert board["sr0"].iloc[0] == pytest.approx(sr0)


def test_dsr_ranks_by_z_when_probabilities_saturate() -> None:
    df = pd.DataFrame({"sharpe": [0.5, 0.6], "n_obs": [10_000, 10_000]}, index=["x", "y"])
    board = rank_agents(df, n_trials=1, var_trials_sharpe=0.0)
    assert list(board["dsr"]) == [1.0, 1.0]  # both certain
    assert list(board.index) == ["y", "x"]  # still ordered by strength


def test_trials_penalise_and_default_selection_is_the_leaderboard() -> None:
    df = pd.DataFrame(
        {
            "sharpe": [0.1, 0.1],
            "n_obs": [1000, 1000],
            "n_trials": [1, 500],
            "var_trials_sharpe": 0.002,
        },
        index=["honest", "mined"],
    )
    board = rank_agents(df, score="trial_adjusted_sharpe")
    assert list(board.index) == ["honest", "mined"]
    assert board.loc["honest", "trial_adjusted_sharpe"] == pytest.approx(0.1)
    assert board.loc["mined", "trial_adjusted_sharpe"] == pytest.approx(
        0.1 - expected_max_sharpe(500, 0.002)
    )
    # no trial columns or arguments: N = number of agents, V = cross-sectional variance
    plain = _stats()
    b2 = rank_agents(plain)
    v = np.var(plain["sharpe"].to_numpy(), ddof=1)
    assert b2["sr0"].iloc[0] == pytest.approx(expected_max_sharpe(4, v))


def test_sharpe_and_callable_scores_nan_last_and_annualised() -> None:
    df = _stats()
    df.loc["e"] = [np.nan, 100, 0, 3]
    board = rank_agents(df, score="sharpe", periods_per_year=365)
    assert list(board.index) == ["b", "c", "a", "d", "e"]
    assert board.loc["b", "sharpe_ann"] == pytest.approx(0.12 * math.sqrt(365))
    by_obs = rank_agents(df, score=lambda f: f["n_obs"])
    assert list(by_obs.index) == ["d", "a", "c", "b", "e"]
    assert list(by_obs["rank"]) == [1, 2, 3, 4, 5]
    # a mapping works as well as a frame; ties break by agent name
    tied = rank_agents({"z": {"sharpe": 0.1}, "m": {"sharpe": 0.1}}, score="sharpe")
    assert list(tied.index) == ["m", "z"]


def test_errors() -> None:
    with pytest.raises(ValueError, match="'sharpe'"):
        rank_agents(pd.DataFrame({"n_obs": [10]}, index=["a"]))
    with pytest.raises(ValueError, match="'n_obs'"):
        rank_agents(pd.DataFrame({"sharpe": [0.1]}, index=["a"]))
    with pytest.raises(ValueError, match="score must be"):
        rank_agents(_stats(), score="sortino")
    with pytest.raises(ValueError, match="n_trials"):
        rank_agents(_stats(), n_trials=0)
    assert rank_agents(pd.DataFrame(columns=["sharpe"])).empty


def test_rank_real_assets_from_returns(sample_dir: Path) -> None:
    """Treat 8 Binance alt/BTC pairs' 5-minute buy-and-hold returns as 8 agents."""
    files = sorted((sample_dir / "crypto_5m_binance").glob("*.feather"))
    closes = pd.concat(
        {f.name.split("_")[0]: pd.read_feather(f).set_index("date")["close"] for f in files},
        axis=1,
        sort=True,
    )
    r = closes.pct_change(fill_method=None).dropna()
    s = sharpe_stats(r.to_numpy())
    frame = pd.DataFrame(
        {"sharpe": s.sr, "n_obs": s.n_obs, "skew": s.skew, "kurt": s.kurt}, index=r.columns
    )
    board = rank_agents(frame)
    v = np.var(s.sr, ddof=1)
    direct = deflated_sharpe(r.to_numpy(), 8, v)
    assert board["dsr"].reindex(r.columns).to_numpy() == pytest.approx(direct, rel=1e-10)
    assert board.index[0] == r.columns[int(np.argmax(direct))]


def _round(scores: dict[str, float]) -> pd.DataFrame:
    return rank_agents(pd.DataFrame({"sharpe": scores}), score="sharpe")


def test_cumulative_leaderboard_hand_example() -> None:
    r1 = _round({"a": 0.3, "b": 0.2, "c": 0.1})  # ranks a1 b2 c3
    r2 = _round({"a": 0.1, "b": 0.4, "c": 0.2})  # ranks b1 c2 a3
    r3 = _round({"a": 0.5, "c": 0.0})  # b absent; ranks a1 c2
    cum = cumulative_leaderboard([r1, r2, r3])
    # sorted by mean percentile: b 0.833 (2 rounds played), a 0.778, c 0.5
    assert list(cum.index) == ["b", "a", "c"]
    a, b, c = cum.loc["a"], cum.loc["b"], cum.loc["c"]
    assert (a["rounds"], b["rounds"], c["rounds"]) == (3, 2, 3)
    assert a["mean_rank"] == pytest.approx((1 + 3 + 1) / 3)
    assert b["mean_rank"] == pytest.approx(1.5)
    assert (a["wins"], b["wins"], c["wins"]) == (2, 1, 0)
    assert (a["last_rank"], b["last_rank"], c["last_rank"]) == (1, 1, 2)
    assert (a["best_rank"], c["best_rank"]) == (1, 2)
    # percentile 1 − (rank − 1)/n: a = (1 + 1/3 + 1)/3, b = (2/3 + 1)/2, c = (1/3 + 2/3 + 1/2)/3
    assert a["mean_percentile"] == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert b["mean_percentile"] == pytest.approx((2 / 3 + 1) / 2)
    assert c["mean_percentile"] == pytest.approx((1 / 3 + 2 / 3 + 0.5) / 3)
    assert a["mean_score"] == pytest.approx(0.3)
    assert a["mean_sharpe"] == pytest.approx(0.3)
    assert list(cum["rank"]) == [1, 2, 3]
    by_label = cumulative_leaderboard({"w1": r1, "w2": r2, "w3": r3})
    pd.testing.assert_frame_equal(by_label, cum)
    assert cumulative_leaderboard([]).empty
    with pytest.raises(ValueError, match="missing column 'rank'"):
        cumulative_leaderboard([pd.DataFrame({"score": [1.0]}, index=["a"])])
