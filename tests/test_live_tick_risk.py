"""The drawdown breaker and the daily-loss limit on the tick paper traders (market maker,
arbitrageur): a drawdown HALTS and flattens until an explicit resume, a daily loss flattens
(REDUCING) until the next UTC day, at batch boundaries; the state survives a pickle snapshot
and a Redis restart, and shows in the status hash."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from quantarena.engine.tick import from_rows
from quantarena.engine.tick.events import EventStream, load_events
from quantarena.live.arb_trader import ArbPaperTrader
from quantarena.live.risk import NS_PER_DAY, Breaker, RiskEngine, RiskLimits, RiskState
from quantarena.live.tick_trader import TickPaperTrader
from quantarena.strategies.registry import get_agent

USDM = "BINANCE-USDM:BTCUSDT"
MM = {"gamma": 0.001, "k": 1.0, "horizon_s": 0.1, "min_half_spread": 0.5, "max_inventory": 10.0}
MS = 1_000_000
T0 = 1_723_075_200_000_000_000  # 2024-08-08 00:00 UTC
#: cross_venue_arb on two synthetic legs: B's bid beats A's ask by ~50 bps, so it buys A and
#: sells B (1 unit an order, 3 at most) at every joint quote while it may trade
XV = dict(order_qty=1.0, latency_ms=(1e-5, 1e-5), taker_bps=(5.0, 5.0), capital=2000.0)
XV_PARAMS = {"threshold_bps": 10.0, "max_inventory": 3.0}


@pytest.fixture(scope="module")
def ev(usdm_store: Path) -> EventStream:
    """The real USD-M capture: 2024-08-08 23:54:16 → 2024-08-09 00:00:00.7 UTC."""
    return load_events(usdm_store, USDM, depth=False)


def _batches(ev: EventStream, lo: int, hi: int, size: int):
    for a in range(lo, hi, size):
        yield ev.slice(a, min(hi, a + size))


def _mm(**kw) -> TickPaperTrader:
    return TickPaperTrader("mm", get_agent("market_maker"), MM, USDM, **kw)


def test_breaker_is_the_risk_engines_rule():
    # the same (time, equity) path through a RiskEngine check and a bare Breaker
    lim = RiskLimits(max_drawdown=0.10, daily_loss=0.03)
    eng, br = RiskEngine(["X"], lim), Breaker(0.10, 0.03)
    path = [(0, 100.0), (1, 98.0), (2, 96.9), (NS_PER_DAY, 97.0), (NS_PER_DAY + 1, 89.9)]
    seen = []
    for ts, eq in path:
        d = eng.check(0, ts, [0.0], [0.0], eq)
        assert br.observe(ts, eq) is d.state and br.reason == d.reason
        seen.append(d.state)
    assert seen == [RiskState.ACTIVE, RiskState.ACTIVE, RiskState.REDUCING, RiskState.ACTIVE,
                    RiskState.HALTED]  # fmt: skip
    assert br.reason == "max drawdown: 10.10% from peak > 10.00%" and br.peak == 100.0
    assert eng.snapshot()["peak"] == 100.0 and eng.snapshot()["state"] == "HALTED"
    with pytest.raises(ValueError, match="risk limit max_drawdown must be a positive fraction"):
        Breaker(max_drawdown=0.0)
    with pytest.raises(ValueError, match="daily_loss"):
        TickPaperTrader("mm", get_agent("market_maker"), MM, USDM, daily_loss=-1.0)


def test_market_maker_drawdown_halts_flattens_and_waits_for_resume(ev):
    # the capture's quotes lose ~0.14 % of the 10 000 capital: a 0.1 % breaker trips mid-run
    tr = _mm(max_drawdown=0.001, daily_loss=None)
    n, it = len(ev), _batches(ev, 0, len(ev), 2000)
    for b in it:
        st = tr.on_events(b)
        if st.state is not RiskState.ACTIVE:
            break
    assert st.state is RiskState.HALTED and st.reason.startswith("max drawdown: ")
    assert tr.equity <= tr.risk.peak * (1 - 0.001) and tr.n_events < n - 10_000
    notes, fills = [], []
    for _ in range(3):  # cancel the quotes, close the inventory at market
        st = tr.on_events(next(it))
        notes += st.notes
        fills += st.fills
    assert "flat" in notes[-1] and tr.position == pytest.approx(0.0, abs=1e-12)
    assert all(not f.maker for f in fills[-1:])  # the close is a taker order
    n_fills = tr.n_fills
    for _ in range(3):  # halted: nothing quoted, nothing filled, still halted
        st = tr.on_events(next(it))
        assert st.fills == [] and st.state is RiskState.HALTED
    assert tr.n_fills == n_fills and tr.equity == tr.account("cash")
    tr.resume()
    after = [tr.on_events(b) for b in it]
    assert after[0].notes[0] == "resumed" and tr.risk_state is RiskState.ACTIVE
    assert sum(len(s.fills) for s in after) > 10  # it quotes and fills again


def _next_day(ev: EventStream) -> EventStream:
    """``ev`` one UTC day later (exchange and receive times)."""
    recv = np.where(ev.recv > 0, ev.recv + NS_PER_DAY, ev.recv)
    return dataclasses.replace(ev, ts=ev.ts + NS_PER_DAY, recv=recv)


def test_market_maker_daily_loss_reduces_until_the_next_utc_day(ev):
    # 3 bps of the day's opening equity: REDUCING on 2024-08-08, ACTIVE again on the next day
    # (the capture's second half, one day later)
    tr = _mm(max_drawdown=None, daily_loss=0.0003)
    steps = [tr.on_events(b) for b in _batches(ev, 0, 40_000, 2000)]
    k = next(i for i, s in enumerate(steps) if s.state is RiskState.REDUCING)
    assert steps[k].reason.startswith("daily loss: ") and k < len(steps) - 5
    seen = [e for _, e in steps[k].samples] + [steps[k].equity]
    assert min(seen) <= tr.risk.day_open * (1 - 0.0003)
    assert all(s.state is RiskState.REDUCING for s in steps[k:])
    assert "flat" in [x for s in steps[k:] for x in s.notes] and tr.position == 0.0
    assert not [f for s in steps[k + 4 :] for f in s.fills]  # flat: no more fills that day
    day = tr.risk.day
    later = _next_day(ev.slice(40_000, 60_000))
    roll = tr.on_events(later.slice(0, 2000))  # the breaker sees the next UTC day
    assert roll.state is RiskState.ACTIVE and roll.reason == "" and roll.fills == []
    assert tr.risk.day == day + 1
    nxt = [tr.on_events(b) for b in _batches(later, 2000, len(later), 2000)]
    assert nxt[0].notes[:1] == ["resumed"] and tr.risk_state is RiskState.ACTIVE
    assert sum(len(s.fills) for s in nxt) > 10  # it quotes and fills again


def _legs(t0: int, n: int, a_mid: float, b_mid: float):
    a = [("quote", t0 + i * 20 * MS, a_mid - 0.05, 1, a_mid + 0.05, 1) for i in range(n)]
    b = [("quote", t0 + i * 20 * MS + 1, b_mid - 0.05, 1, b_mid + 0.05, 1) for i in range(n)]
    return from_rows(a, "A"), from_rows(b, "B")


def _arb(**kw) -> ArbPaperTrader:
    return ArbPaperTrader("xv", get_agent("cross_venue_arb", **XV), XV_PARAMS, ("A", "B"),
                          max_position=None, max_gross=None, **kw)  # fmt: skip


def test_arbitrageur_drawdown_halts_closes_both_legs_and_waits_for_resume():
    tr = _arb(max_drawdown=0.05, daily_loss=None)
    st = tr.on_events(*_legs(T0, 5, 100.0, 100.55))
    assert st.positions == {"A": 3.0, "B": -3.0} and st.state is RiskState.ACTIVE
    # A crashes to 50: the long A leg loses 3 × 50 = 150 = 7.5 % of the peak → HALTED
    st = tr.on_events(*_legs(T0 + 100 * MS, 5, 50.0, 100.55))
    assert st.state is RiskState.HALTED and st.reason == "max drawdown: 7.50% from peak > 5.00%"
    assert st.orders == [] and tr.risk.peak == pytest.approx(1999.399, abs=1e-3)
    st = tr.on_events(*_legs(T0 + 200 * MS, 5, 50.0, 100.55))
    assert st.positions == {"A": 0.0, "B": 0.0} and st.notes == ["flat"]
    assert sorted(f.qty for f in st.fills) == [-3.0, 3.0]  # one market leg per instrument
    # prices recover (B's bid beats A's ask again): halted, nothing trades
    for k in range(3, 6):
        st = tr.on_events(*_legs(T0 + k * 100 * MS, 5, 50.0, 50.55))
        assert st.orders == st.fills == [] and st.state is RiskState.HALTED
    tr.resume()
    st = tr.on_events(*_legs(T0 + 600 * MS, 5, 50.0, 50.55))
    assert "resumed" in st.notes and st.state is RiskState.ACTIVE
    st = tr.on_events(*_legs(T0 + 700 * MS, 5, 50.0, 50.55))
    assert st.positions == {"A": 3.0, "B": -3.0}  # trading again


def test_arbitrageur_daily_loss_reduces_until_the_next_utc_day():
    tr = _arb(max_drawdown=None, daily_loss=0.05)
    tr.on_events(*_legs(T0, 5, 100.0, 100.55))
    st = tr.on_events(*_legs(T0 + 100 * MS, 5, 50.0, 100.55))
    assert st.state is RiskState.REDUCING and st.reason == "daily loss: 7.50% > 5.00%"
    st = tr.on_events(*_legs(T0 + 200 * MS, 5, 50.0, 100.55))
    assert st.positions == {"A": 0.0, "B": 0.0} and st.state is RiskState.REDUCING
    st = tr.on_events(*_legs(T0 + 300 * MS, 5, 50.0, 50.55))
    assert st.fills == [] and st.state is RiskState.REDUCING
    day2 = T0 + NS_PER_DAY
    st = tr.on_events(*_legs(day2, 5, 50.0, 50.55))  # the breaker sees the new UTC day
    assert st.state is RiskState.ACTIVE and st.reason == "" and st.fills == []
    st = tr.on_events(*_legs(day2 + 100 * MS, 5, 50.0, 50.55))
    assert "resumed" in st.notes
    st = tr.on_events(*_legs(day2 + 200 * MS, 5, 50.0, 50.55))
    assert st.positions == {"A": 3.0, "B": -3.0}


def test_snapshot_mid_halt_keeps_the_breaker(ev):
    tr = _mm(max_drawdown=0.001, daily_loss=None)
    it = _batches(ev, 0, len(ev), 2000)
    for b in it:
        if tr.on_events(b).state is RiskState.HALTED:
            break
    back = pickle.loads(pickle.dumps(tr))  # what the Redis traders store
    assert back.risk.snapshot() == tr.risk.snapshot() and back.risk_state is RiskState.HALTED
    assert back.reason.startswith("max drawdown") and back._phase == tr._phase
    for b in it:
        s1, s2 = tr.on_events(b), back.on_events(b)
        assert [f.id for f in s1.fills] == [f.id for f in s2.fills] and s1.notes == s2.notes
    assert back.position == tr.position == 0.0 and back.risk_state is RiskState.HALTED
    arb = _arb(max_drawdown=0.05)
    arb.on_events(*_legs(T0, 5, 100.0, 100.55))
    arb.on_events(*_legs(T0 + 100 * MS, 5, 50.0, 100.55))
    a2 = pickle.loads(pickle.dumps(arb))
    assert a2.risk.snapshot() == arb.risk.snapshot() and a2.risk_state is RiskState.HALTED
    st = a2.on_events(*_legs(T0 + 200 * MS, 5, 50.0, 100.55))
    assert st.positions == {"A": 0.0, "B": 0.0} and st.state is RiskState.HALTED


def test_limits_config_parses_the_breakers():
    from types import SimpleNamespace

    from quantarena.live.launch import check_arb_limits, check_tick_limits

    def spec(**lim):
        return SimpleNamespace(name="a", limits=lim)

    assert check_tick_limits(spec()) == {"max_position": None, "max_drawdown": 0.2,
                                         "daily_loss": 0.05}  # fmt: skip
    got = check_tick_limits(spec(max_position_qty=0.01, daily_loss=None), {"max_drawdown": 0.1})
    assert got == {"max_position": 0.01, "max_drawdown": 0.1, "daily_loss": None}
    assert check_arb_limits(spec(max_drawdown=0.3))["max_drawdown"] == 0.3
    with pytest.raises(ValueError, match=r"limits\.max_drawdown must be a fraction > 0"):
        check_arb_limits(spec(max_drawdown=-0.1))
    with pytest.raises(ValueError, match=r"limits \['max_gross'\]: a tick agent takes"):
        check_tick_limits(spec(max_gross=1.0))


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    yield r


def test_redis_restart_keeps_the_halt_and_status_shows_it(ev, redis_client, tmp_path):
    from quantarena.live.redis_io import LiveKeys
    from quantarena.live.status import status_table
    from quantarena.live.tick_feed import replay_ticks
    from quantarena.live.tick_redis import TickRedisTrader

    r, keys = redis_client, LiveKeys("qa-ticktrisk-test")
    for k in r.scan_iter(match=keys.prefix + "*"):
        r.delete(k)
    try:
        replay_ticks(r, keys.feed("ticks"), [ev.slice(0, 30_000)])
        rt = TickRedisTrader(r, _mm(max_drawdown=0.0003), "ticks", tmp_path, keys=keys, batch=3000)
        r.sadd(keys.agents(), "mm")
        rt.run(idle_stop_s=0.3)
        tr = rt.trader
        assert tr.risk_state is RiskState.HALTED and tr.position == 0.0
        st = {k.decode(): v.decode() for k, v in r.hgetall(keys.status("mm")).items()}
        assert st["state"] == "HALTED" and st["reason"].startswith("max drawdown")
        # a restart from the snapshot (a fresh trader given): still halted, the same peak
        rt2 = TickRedisTrader(r, _mm(max_drawdown=0.0003), "ticks", tmp_path, keys=keys,
                              batch=3000)  # fmt: skip
        assert rt2.trader.risk.snapshot() == tr.risk.snapshot()
        assert rt2.trader.risk_state is RiskState.HALTED
        from rich.console import Console

        con = Console(record=True, width=300)
        con.print(status_table(r, keys))
        text = con.export_text()
        assert "HALTED" in text and "max drawdown: " in text
    finally:
        for k in r.scan_iter(match=keys.prefix + "*"):
            r.delete(k)
