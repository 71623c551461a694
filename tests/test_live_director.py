"""The live director's decisions: stats of paper equity, gates (≥ 7 days of paper), Kelly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantarena.live.director import LiveAllocationConfig, paper_stats, reallocate


def _series(returns, first_day=19000):
    e = np.cumprod(np.r_[1.0, 1.0 + np.asarray(returns)])
    return pd.Series(e, index=np.arange(first_day, first_day + len(e)))


def test_paper_stats_by_hand():
    s = _series([0.01, -0.02, 0.03, 0.0])
    st = paper_stats(s)
    r = np.array([0.01, -0.02, 0.03, 0.0])
    assert st["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(365))
    assert st["max_drawdown"] == pytest.approx(0.02)
    assert st["win_rate"] == pytest.approx(2 / 3)  # the flat day does not count
    assert st["paper_days"] == 5.0


def test_paper_gate_and_negative_edge_get_no_capital():
    rng = np.random.default_rng(7)
    good = 0.004 + 0.003 * rng.standard_normal(20)
    daily = {
        "good": _series(good),
        "new": _series(0.004 + 0.003 * rng.standard_normal(5), first_day=19015),  # 6 days
        "bad": _series(-0.002 + 0.003 * rng.standard_normal(20)),
    }
    cfg = LiveAllocationConfig(capital=1000.0, gates={} and None or LiveAllocationConfig().gates)
    cfg = LiveAllocationConfig(
        capital=1000.0, gates=cfg.gates.model_copy(update={"min_sharpe": 0.0, "min_win_rate": None})
    )
    res = reallocate(daily, cfg)
    assert res.weights["new"] == 0.0 and "paper" in res.gates["new"].failed
    assert res.weights["bad"] == 0.0
    # one eligible agent: capped fractional Kelly is min(cap, fraction * mu / var), by hand
    both = pd.DataFrame({k: v for k, v in daily.items()}).sort_index().pct_change().iloc[1:]
    r = both["good"].dropna().to_numpy()
    expect = min(0.5, 0.5 * r.mean() / r.var(ddof=1))
    assert res.weights["good"] == pytest.approx(expect, rel=1e-6)
    assert res.capital["good"] == pytest.approx(1000.0 * expect)
    assert res.leaderboard.index[0] == "good"


def test_config_errors_are_named():
    with pytest.raises(ValueError, match="unknown key 'kelly'"):
        LiveAllocationConfig.from_dict({"kelly": 0.5})
    cfg = LiveAllocationConfig.from_dict({"every_days": 1, "gates": {"min_paper_days": 3}})
    assert cfg.gates.min_paper_days == 3 and cfg.gates.min_history_days is None
