"""The risk module: limits, ACTIVE / REDUCING / HALTED, the kill switch, the flash-crash drill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantarena.engine.api import load_bars_any
from quantarena.live.risk import RiskEngine, RiskLimits, RiskState
from quantarena.live.trader import PaperTrader
from quantarena.strategies.registry import get_agent

MIN = 60_000_000_000
DAY = 1440 * MIN


def test_max_position_and_gross_cut_with_reasons():
    r = RiskEngine(["A", "B", "C"], RiskLimits(max_position=0.10, max_gross=0.15))
    d = r.check(0, 0, [0.3, -0.05, 0.10], [0, 0, 0], 1.0)
    # 0.3 -> 0.10 (cap), then the gross 0.25 is scaled to 0.15
    np.testing.assert_allclose(d.targets, np.array([0.10, -0.05, 0.10]) * 0.6)
    reasons = {x.symbol: x.reason for x in d.rejections}
    assert reasons["A"] == "max position 0.1"
    assert reasons["B"] == reasons["C"] == "max gross 0.15"
    assert d.state is RiskState.ACTIVE


def test_float32_cap_is_not_a_rejection():
    r = RiskEngine(["A"], RiskLimits(max_position=0.10))
    d = r.check(0, 0, np.float32([0.1]), [0.0], 1.0)
    assert d.targets[0] == 0.1 and d.rejections == []


def test_daily_loss_reduces_until_the_next_utc_day():
    r = RiskEngine(["A"], RiskLimits(daily_loss=0.05, max_drawdown=None))
    assert r.check(0, 0, [0.1], [0.0], 1.0).targets[0] == 0.1
    d = r.check(1, MIN, [0.1], [0.1], 0.94)  # -6 % today
    assert d.state is RiskState.REDUCING and "daily loss" in d.reason
    assert r.check(2, 2 * MIN, [0.05], [0.1], 0.94).targets[0] == 0.05  # reducing: allowed
    d = r.check(3, 3 * MIN, [-0.1], [0.05], 0.94)  # a flip: only the flat part is allowed
    assert d.targets[0] == 0.0 and d.rejections[0].reason.startswith("reducing only")
    assert r.check(4, 4 * MIN, [0.1], [0.0], 0.94).targets[0] == 0.0  # no new risk
    d = r.check(5, DAY, [0.1], [0.0], 0.94)  # next UTC day
    assert d.state is RiskState.ACTIVE and d.targets[0] == 0.1


def test_drawdown_breaker_halts_until_resume():
    r = RiskEngine(["A"], RiskLimits(max_drawdown=0.10, daily_loss=None))
    r.check(0, 0, [0.1], [0.0], 1.0)
    r.check(1, MIN, [0.1], [0.1], 1.2)  # new peak 1.2
    d = r.check(2, 2 * MIN, [0.1], [0.1], 1.07)  # -10.8 % from 1.2
    assert d.state is RiskState.HALTED and d.targets[0] == 0.0
    assert "max drawdown" in d.reason
    for i in range(3, 6):  # recovered equity does not un-halt
        d = r.check(i, i * MIN, [0.1], [0.0], 1.3)
        assert d.state is RiskState.HALTED and d.targets[0] == 0.0
        assert d.rejections[0].reason.startswith("halted")
    r.resume()
    assert r.check(6, 6 * MIN, [0.1], [0.0], 1.3).targets[0] == 0.1


def test_order_rate_limit_keeps_the_position():
    r = RiskEngine(["A"], RiskLimits(max_orders=2, order_window_ns=10 * MIN))
    held = 0.0
    got = []
    for i, w in enumerate([0.1, 0.0, 0.1, 0.0]):
        d = r.check(i, i * MIN, [w], [held], 1.0)
        held = d.targets[0]
        got.append(held)
    # two orders pass; the third (an increase) is refused; a reduction is always allowed
    assert got == [0.1, 0.0, 0.0, 0.0]
    assert any("order rate" in x.reason for x in r.check(4, 4 * MIN, [0.1], [0.0], 1.0).rejections)
    assert r.check(5, 20 * MIN, [0.1], [0.0], 1.0).targets[0] == 0.1  # the window moved on


def test_stale_data_trades_nothing_new():
    r = RiskEngine(["A"], RiskLimits(stale_after_ns=5 * MIN))
    r.check(0, 0, [0.0], [0.0], 1.0)
    d = r.check(1, 30 * MIN, [0.1], [0.0], 1.0)  # a 30-minute gap in the feed
    assert d.targets[0] == 0.0 and "stale data" in d.rejections[0].reason
    d = r.check(2, 31 * MIN, [0.1], [0.0], 1.0, now_ns=60 * MIN)  # the bar is 29 min old
    assert d.targets[0] == 0.0 and "old" in d.rejections[0].reason


def test_bad_limits_are_named():
    with pytest.raises(ValueError, match="max_drawdown"):
        RiskLimits(max_drawdown=-1)
    with pytest.raises(ValueError, match="unknown limit 'max_pos'"):
        RiskLimits.from_dict({"max_pos": 0.1})


def _crash(bars, t: int, drop: float = 0.20):
    """A synthetic flash crash: the close of minute ``t`` is ``drop`` below its open, and
    the following minutes trade there (real data shifted down)."""
    b = bars.select(slice(None))
    for name in ("open", "high", "low", "close"):
        a = getattr(b, name).copy()
        a[t + 1 :] *= 1.0 - drop
        setattr(b, name, a)
    b.low[t] = b.close[t] = bars.open[t, 0] * (1.0 - drop)
    return b


def test_flash_crash_drill_fires_the_drawdown_breaker(btc_1m_csv: Path):
    bars = _crash(load_bars_any(btc_1m_csv, None, None, None, None).select(slice(0, 600)), 400)
    agent = get_agent("buy_hold", max_position=0.5)
    lim = RiskLimits(max_position=0.5, max_drawdown=0.08, daily_loss=None)
    tr = PaperTrader("drill", agent, None, bars.symbols, bars.interval_ns, limits=lim)
    steps = tr.run(bars)
    halted = [s.bar for s in steps if s.state is RiskState.HALTED]
    assert halted and halted[0] == 400  # the breaker fires at the crash minute's close
    # flat within one event: the next open sells everything, then nothing trades
    (sell,) = steps[401].fills
    assert sell.qty < 0 and tr.exchange.shares[0] == 0.0
    assert all(not s.fills and not s.orders for s in steps[402:])
    assert all(s.rejections and s.rejections[0].reason.startswith("halted") for s in steps[402:])
    assert steps[-1].equity == steps[401].equity  # flat cash
    # the crash cost ~half the drop (50 % invested): 10 %, not more
    assert 0.88 < steps[400].equity / steps[399].equity < 0.91


def test_kill_switch_flattens_within_one_bar_and_resume_is_explicit(btc_1m_csv: Path):
    bars = load_bars_any(btc_1m_csv, None, None, None, None).select(slice(0, 300))
    tr = PaperTrader("k", get_agent("buy_hold"), None, bars.symbols, bars.interval_ns)
    for t in range(100):
        tr.on_bar(
            int(bars.ts[t]), bars.open[t], bars.high[t], bars.low[t], bars.close[t], bars.volume[t]
        )
    assert tr.exchange.shares[0] > 0
    tr.kill()
    s = tr.on_bar(int(bars.ts[100]), bars.open[100], bars.high[100], bars.low[100], bars.close[100])
    assert s.state is RiskState.HALTED and s.orders[0].target == 0.0
    s = tr.on_bar(int(bars.ts[101]), bars.open[101], bars.high[101], bars.low[101], bars.close[101])
    assert s.fills[0].qty < 0 and tr.exchange.shares[0] == 0.0
    for t in range(102, 150):
        s = tr.on_bar(int(bars.ts[t]), bars.open[t], bars.high[t], bars.low[t], bars.close[t])
        assert not s.fills and s.state is RiskState.HALTED
    tr.resume()
    s = tr.on_bar(int(bars.ts[150]), bars.open[150], bars.high[150], bars.low[150], bars.close[150])
    assert s.state is RiskState.ACTIVE and s.orders[0].target == pytest.approx(0.1)
