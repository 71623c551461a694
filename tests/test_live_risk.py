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


def test_wall_clock_staleness_counts_from_the_close_with_an_injected_clock():
    """``wall_clock`` on: a bar whose close is older than ``stale_after_ns`` by the (injected)
    clock trades nothing new — only risk-reducing orders — each refusal a Rejection."""
    now = [0]
    lim = RiskLimits(stale_after_ns=2 * MIN, wall_clock=True)
    r = RiskEngine(["A", "B"], lim, interval_ns=MIN, clock=lambda: now[0])
    now[0] = 3 * MIN  # bar 0 opened at 0, closed at 1 min: 2 min old = the limit, not over
    d = r.check(0, 0, [0.1, -0.1], [0.0, 0.0], 1.0)
    assert d.rejections == [] and list(d.targets) == [0.1, -0.1]
    now[0] = 2 * MIN + 1 + 3 * MIN  # bar 1 closed at 2 min; now 3 min + 1 ns after it
    d = r.check(1, MIN, [0.1, -0.05], [0.1, -0.1], 1.0)
    # the same long position is kept (no order), the short may shrink (risk-reducing)
    assert list(d.targets) == [0.1, -0.05] and d.rejections == []
    d = r.check(2, 2 * MIN, [-0.1, -0.1], [0.1, -0.05], 1.0)  # a flip and an increase
    assert list(d.targets) == [0.0, -0.05]
    assert {x.symbol: x.allowed for x in d.rejections} == {"A": 0.0, "B": -0.05}
    assert all(x.reason.startswith("stale data: the bar is ") for x in d.rejections)
    assert "old by the wall clock" in d.rejections[0].reason
    # an explicit now_ns wins over the clock: a fresh bar trades again
    d = r.check(3, 3 * MIN, [-0.1, -0.1], [0.0, -0.05], 1.0, now_ns=4 * MIN)
    assert list(d.targets) == [-0.1, -0.1] and d.rejections == []


def test_wall_clock_off_by_default_so_a_replay_of_history_trades(btc_1m_csv: Path):
    """History is years old by the wall clock: with ``stale_after_ns`` set but ``wall_clock``
    off (the default) a replay trades exactly as without the limit; with it on, nothing new
    is opened and every refusal says why."""
    bars = load_bars_any(str(btc_1m_csv), None, None, None, None).select(slice(0, 300))
    ag = get_agent("momentum")
    params = {"fast": 5, "slow": 20}

    def run(**lim):
        tr = PaperTrader("m", ag, params, list(bars.symbols), int(bars.interval_ns),
                         limits=RiskLimits(max_position=ag.max_position, **lim))  # fmt: skip
        return tr.run(bars)

    base = run()
    off = run(stale_after_ns=5 * MIN)  # the feed has no gaps > 5 min in these 300 bars
    assert [s.equity for s in off] == [s.equity for s in base]
    assert sum(len(s.orders) for s in base) > 0
    on = run(stale_after_ns=5 * MIN, wall_clock=True)
    assert sum(len(s.orders) for s in on) == 0  # flat from the start: nothing to reduce
    rej = [x for s in on for x in s.rejections]
    assert rej and all("old by the wall clock" in x.reason for x in rej)


def test_wall_clock_needs_a_max_age():
    with pytest.raises(ValueError, match="wall_clock needs stale_after_ns"):
        RiskLimits(wall_clock=True)
    with pytest.raises(ValueError, match="wall_clock must be true or false"):
        RiskLimits.from_dict({"stale_after_ns": MIN, "wall_clock": "yes"})
