"""Hand-built event sequences for every fill rule of the tick simulator (expected numbers
worked out by hand in each test)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantarena.engine.tick import (
    ConstantLatency,
    ExchangeFilters,
    LogProb,
    MakerTaker,
    Order,
    PowerProb,
    RiskAverse,
    SampledLatency,
    Venue,
    from_rows,
    replay_orders,
)

FREE = MakerTaker(0.0, 0.0)


def venue(lat: int = 0, queue=None, fees=FREE, filters=None) -> Venue:
    return Venue(
        queue=queue or RiskAverse(),
        latency=ConstantLatency(entry_ns=lat),
        fees=fees,
        filters=filters or ExchangeFilters(),
    )


def test_queue_ahead_consumed_by_trades_and_partial_fills():
    # bid 100 shows 5: our buy of 2 joins behind 5; sells of 3, 3, 2 at 100
    ev = from_rows(
        [
            ("quote", 0, 100, 5, 101, 5),
            ("trade", 10, 100, 3, -1),  # ahead 5 -> 2, no fill
            ("trade", 20, 100, 3, -1),  # 2 ahead, 1 left for us: partial fill 1
            ("trade", 30, 100, 2, -1),  # the last 1
        ]
    )
    st = replay_orders(ev, [Order(1, "limit", 1, 100.0, 2.0)], venue(), cash=1000.0)
    f = st.fills()
    assert list(f["ts"]) == [20, 30]
    assert list(f["qty"]) == [1.0, 1.0]
    assert f["maker"].all()
    assert st.account("position")[0] == 2.0
    assert st.account("cash")[0] == 1000.0 - 200.0
    assert st.resting() is None


def test_partial_fill_state_after_first_fill():
    ev = from_rows([("quote", 0, 100, 5, 101, 5), ("trade", 10, 100, 6, -1)])
    st = replay_orders(ev, [Order(1, "limit", 1, 100.0, 2.0)], venue(), cash=0.0)
    assert st.account("position")[0] == 1.0
    assert st.account("cash")[0] == -100.0
    r = st.resting()
    assert r == {"side": 1.0, "px": 100.0, "qty": 1.0, "ahead": 0.0}


def test_buy_trades_do_not_touch_a_resting_bid():
    ev = from_rows([("quote", 0, 100, 5, 101, 5), ("trade", 10, 100, 9, +1)])
    st = replay_orders(ev, [Order(1, "limit", 1, 100.0, 2.0)], venue())
    assert st.account("n_fills")[0] == 0
    assert st.resting()["ahead"] == 5.0


def test_trade_through_fills_whole_order_at_its_price():
    ev = from_rows([("quote", 0, 100, 50, 101, 5), ("trade", 10, 99.5, 0.1, -1)])
    st = replay_orders(ev, [Order(1, "limit", 1, 100.0, 2.0)], venue())
    f = st.fills()
    assert list(f["px"]) == [100.0] and list(f["qty"]) == [2.0] and f["maker"][0]


def test_book_moving_through_the_order_fills_it():
    # the ask drops to our bid: the level was taken
    ev = from_rows([("quote", 0, 100, 50, 101, 5), ("quote", 10, 99, 1, 100, 3)])
    st = replay_orders(ev, [Order(1, "post_only", 1, 100.0, 2.0)], venue())
    assert st.account("position")[0] == 2.0
    assert st.fills()["px"][0] == 100.0


def test_level_decrease_risk_averse():
    ev = from_rows(
        [
            ("quote", 0, 100, 5, 101, 5),
            ("quote", 10, 100, 2, 101, 5),  # cancels: level 5 -> 2, ahead min(5, 2) = 2
            ("trade", 20, 100, 3, -1),  # 2 ahead, fills 1
        ]
    )
    st = replay_orders(ev, [Order(1, "limit", 1, 100.0, 1.0)], venue())
    assert st.account("position")[0] == 1.0
    assert list(st.fills()["ts"]) == [20]


def _prob_sequence():
    # join behind 2; the level grows to 10 (8 behind us), then falls to 6 with no trade;
    # then a sell of 1.9 prints at 100
    return from_rows(
        [
            ("quote", 0, 100, 2, 101, 5),
            ("quote", 10, 100, 10, 101, 5),
            ("quote", 20, 100, 6, 101, 5),
            ("trade", 30, 100, 1.9, -1),
        ]
    )


def _prob_ahead(front: float, back: float, chg: float, f) -> float:
    p = f(back) / (f(back) + f(front))
    return front - (1 - p) * chg + min(back - p * chg, 0.0)


@pytest.mark.parametrize(
    "model, expected_ahead",
    [
        (RiskAverse(), 2.0),  # min(2, 6)
        (PowerProb(2.0), _prob_ahead(2.0, 8.0, 4.0, lambda x: x**2)),  # 1.7647
        (LogProb(), _prob_ahead(2.0, 8.0, 4.0, math.log1p)),  # 0.6667
    ],
)
def test_level_decrease_queue_models(model, expected_ahead):
    ev = _prob_sequence()
    st = replay_orders(ev.slice(0, 3), [Order(1, "limit", 1, 100.0, 1.0)], venue(queue=model))
    assert st.resting()["ahead"] == pytest.approx(expected_ahead, rel=1e-12)
    st = replay_orders(ev, [Order(1, "limit", 1, 100.0, 1.0)], venue(queue=model))
    assert st.account("position")[0] == pytest.approx(min(1.0, max(1.9 - expected_ahead, 0.0)))


def test_hand_values_of_the_probabilistic_models():
    # p = 64 / 68 for power 2, ln 9 / (ln 9 + ln 3) = 2/3 for log
    assert _prob_ahead(2, 8, 4, lambda x: x**2) == pytest.approx(2 - (4 / 68) * 4)
    assert _prob_ahead(2, 8, 4, math.log1p) == pytest.approx(2 - 4 / 3)


def test_depth_events_drive_the_queue_when_present():
    ev = from_rows(
        [
            ("depth", 0, 1, 100.0, 5.0),
            ("quote", 0, 100, 5, 101, 5),
            ("depth", 10, 1, 100.0, 3.0),  # ahead 5 -> 3
            ("quote", 10, 100, 3, 101, 5),  # ignored for the queue when depth is present
            ("trade", 20, 100, 3.5, -1),
        ]
    )
    assert ev.has_depth
    st = replay_orders(ev, [Order(1, "limit", 1, 100.0, 1.0)], venue())
    assert st.account("position")[0] == pytest.approx(0.5)


def test_post_only_rejected_if_it_would_take():
    ev = from_rows([("quote", 0, 100, 5, 101, 5), ("trade", 10, 101, 1, 1)])
    orders = [
        Order(1, "post_only", 1, 101.0, 1.0, slot=0),
        Order(1, "post_only", 1, 100.0, 1.0, slot=1),
    ]
    st = replay_orders(ev, orders, venue())
    assert st.account("rejected_post_only")[0] == 1
    assert st.account("n_fills")[0] == 0
    assert st.resting(slot=0) is None and st.resting(slot=1)["px"] == 100.0


def test_marketable_limit_and_market_take_at_the_touch_with_taker_fee():
    ev = from_rows([("quote", 0, 100, 5, 101, 5), ("quote", 10, 100, 5, 101, 5)])
    fees = MakerTaker(maker_bps=-1.0, taker_bps=5.0)
    st = replay_orders(
        ev,
        [Order(1, "limit", 1, 102.0, 1.0), Order(2, "market", -1, qty=3.0, slot=1)],
        venue(fees=fees),
    )
    f = st.fills()
    assert list(f["px"]) == [101.0, 100.0] and not f["maker"].any()
    fee = 101 * 5e-4 + 300 * 5e-4
    assert st.account("fees")[0] == pytest.approx(fee)
    assert st.account("cash")[0] == pytest.approx(-101 + 300 - fee)
    assert st.account("position")[0] == -2.0


def test_ioc_takes_at_most_the_touch_size():
    ev = from_rows([("quote", 0, 100, 5, 101, 1.5), ("quote", 10, 100, 5, 101, 5)])
    st = replay_orders(
        ev, [Order(1, "ioc", 1, 101.0, 2.0), Order(2, "ioc", 1, 100.5, 2.0, slot=1)], venue()
    )
    assert st.account("position")[0] == 1.5
    assert st.resting(slot=0) is None and st.resting(slot=1) is None


def test_rebate_accounting():
    ev = from_rows([("quote", 0, 100, 0, 101, 5), ("trade", 10, 100, 2, -1)])
    fees = MakerTaker(maker_bps=-2.5, taker_bps=5.0)
    st = replay_orders(ev, [Order(1, "limit", 1, 100.0, 2.0)], venue(fees=fees), cash=1000.0)
    rebate = 200 * 2.5e-4  # 0.05
    assert st.account("fees")[0] == pytest.approx(-rebate)
    assert st.account("cash")[0] == pytest.approx(1000 - 200 + rebate)
    assert st.account("maker_qty")[0] == 2.0


def test_latency_delays_the_fill():
    # a sell prints through 100 at t=10 and again at t=30; an order sent at t=1 acts at 1+lat
    ev = from_rows(
        [("quote", 0, 100, 5, 101, 5), ("trade", 10, 99, 1, -1), ("trade", 30, 99, 1, -1)]
    )
    fast = replay_orders(ev, [Order(1, "limit", 1, 100.0, 1.0)], venue(lat=5))
    slow = replay_orders(ev, [Order(1, "limit", 1, 100.0, 1.0)], venue(lat=15))
    assert list(fast.fills()["ts"]) == [10]
    assert list(slow.fills()["ts"]) == [30]


def test_cancel_in_flight_does_not_stop_a_fill():
    ev = from_rows(
        [("quote", 0, 100, 5, 101, 5), ("trade", 12, 99, 1, -1), ("trade", 30, 99, 1, -1)]
    )
    orders = [Order(1, "limit", 1, 100.0, 1.0), Order(5, "cancel", slot=0)]
    late = replay_orders(ev, orders, venue(lat=10))  # cancel acts at 15: the fill at 12 stands
    early = replay_orders(ev, orders, venue(lat=3))  # order at 4, cancel at 8: no fill
    assert late.account("position")[0] == 1.0
    assert early.account("position")[0] == 0.0


def test_replace_moves_to_the_back_of_the_new_level():
    ev = from_rows(
        [
            ("quote", 0, 100, 5, 101, 5),
            ("quote", 10, 100.5, 2, 101, 5),
            ("trade", 20, 100.5, 2.5, -1),
        ]
    )
    orders = [Order(1, "limit", 1, 100.0, 1.0), Order(15, "replace", px=100.5, qty=1.0)]
    st = replay_orders(ev, orders, venue())
    # at 100.5 behind 2: the print of 2.5 fills 0.5
    assert st.account("position")[0] == pytest.approx(0.5)
    assert st.resting()["px"] == 100.5


def test_exchange_filters_reject():
    ev = from_rows([("quote", 0, 100, 5, 101, 5), ("quote", 10, 100, 5, 101, 5)])
    flt = ExchangeFilters(tick=0.5, lot=0.1, min_notional=50.0)
    orders = [
        Order(1, "limit", 1, 100.3, 1.0, slot=0),  # off tick
        Order(1, "limit", 1, 100.0, 0.15, slot=1),  # off lot
        Order(1, "limit", 1, 99.5, 0.4, slot=2),  # 39.8 < 50
        Order(1, "limit", 1, 99.5, 0.6, slot=3),  # ok
    ]
    st = replay_orders(ev, orders, venue(filters=flt))
    assert st.account("rejected_filter")[0] == 3
    assert [st.resting(slot=s) is not None for s in range(4)] == [False, False, False, True]


def test_columns_are_independent_and_blocks_change_nothing():
    rows = [("quote", 0, 100, 5, 101, 5)]
    for t in range(1, 40):
        rows.append(("trade", 10 * t, 100 if t % 2 else 101, 0.7, -1 if t % 2 else 1))
        rows.append(("quote", 10 * t + 5, 100, 5 - 0.1 * (t % 5), 101, 5 + 0.1 * (t % 3)))
    ev = from_rows(rows)
    orders = [Order(1, "limit", 1, 100.0, 3.0, col=0), Order(1, "limit", -1, 101.0, 2.0, col=1)]
    whole = replay_orders(ev, orders, venue(), n_cols=2, sample_ts=np.arange(0, 400, 50))
    blocks = replay_orders(ev, orders, venue(), n_cols=2, sample_ts=np.arange(0, 400, 50), block=7)
    np.testing.assert_array_equal(whole.AC, blocks.AC)
    np.testing.assert_array_equal(whole.EQ, blocks.EQ)
    assert whole.account("position")[0] > 0 and whole.account("position")[1] < 0


def test_equity_sampled_at_bar_times():
    ev = from_rows(
        [("quote", 0, 100, 5, 101, 5), ("trade", 10, 100, 9, -1), ("quote", 20, 102, 5, 103, 5)]
    )
    st = replay_orders(
        ev, [Order(1, "limit", 1, 100.0, 1.0)], venue(), sample_ts=np.array([5, 15, 25, 99])
    )
    # bought 1 at 100 at t=10 (cash -100); mid 100.5 until t=20, then 102.5
    np.testing.assert_allclose(st.EQ[:, 0], [0.0, 0.5, 2.5, 2.5])


def test_sampled_latency_is_reproducible():
    ev = from_rows([("quote", 0, 100, 5, 101, 5), ("trade", 10_000_000, 99, 1, -1)])
    v = Venue(latency=SampledLatency(median_ns=5_000_000, sigma=0.5, seed=3), fees=FREE)
    a = replay_orders(ev, [Order(1, "limit", 1, 100.0, 1.0)], v)
    b = replay_orders(ev, [Order(1, "limit", 1, 100.0, 1.0)], v)
    np.testing.assert_array_equal(a.AC, b.AC)


def test_bad_order_is_refused_with_its_index():
    ev = from_rows([("quote", 0, 100, 5, 101, 5)])
    with pytest.raises(ValueError, match="order 0: unknown op 'stop'"):
        replay_orders(ev, [Order(1, "stop", 1, 100.0, 1.0)], venue())


def test_recorded_latency_uses_the_data_clocks():
    from quantarena.engine.tick import RecordedLatency

    ev = from_rows(
        [
            ("quote", 0, 100, 5, 101, 5),
            ("quote", 10, 100, 5, 101, 5),
            ("trade", 40, 99, 1, -1),
            ("trade", 50, 99, 1, -1),
        ]
    )
    # receive delays 100, 130, 100, 100 ns: less the minimum (the clock offset) -> 0, 30, 0, 0
    ev.recv = ev.ts + np.array([100, 130, 100, 100])
    v = Venue(latency=RecordedLatency(base_ns=0, entry_mult=1.0), fees=FREE)
    np.testing.assert_array_equal(v.latency.feed(ev.ts, ev.recv), [0, 30, 0, 0])
    # sent at 12, after the event whose feed delay was 30: entry 30 -> acts at 42
    st = replay_orders(ev, [Order(12, "limit", 1, 100.0, 1.0)], v)
    assert list(st.fills()["ts"]) == [50]
    with pytest.raises(ValueError, match="no receive times"):
        RecordedLatency().feed(ev.ts, np.full(4, -1))


def test_funding_charges_longs_at_the_funding_time():
    from quantarena.engine.tick.fees import Funding

    h8 = 8 * 3600 * 10**9
    t0 = 3 * h8 - 100  # just before 00:00 UTC (a funding time)
    ev = from_rows(
        [
            ("quote", t0, 100, 5, 101, 5),
            ("trade", t0 + 10, 99, 1, -1),  # our bid of 2 at 100 fills (trade-through)
            ("quote", t0 + 50, 102, 5, 103, 5),  # mid 102.5 at the funding time
            ("quote", 3 * h8 + 5, 102, 5, 103, 5),  # first event at/after 00:00: funding
        ]
    )
    v = Venue(fees=FREE, funding=Funding(rate=1e-4), latency=ConstantLatency(entry_ns=0))
    st = replay_orders(ev, [Order(t0 + 1, "limit", 1, 100.0, 2.0)], v, cash=0.0)
    pay = 1e-4 * 2 * 102.5
    assert st.account("funding")[0] == pytest.approx(pay)
    assert st.account("cash")[0] == pytest.approx(-200 - pay)
    # a short receives it: the ask of 2 at 101 fills when the bid moves to 102
    st = replay_orders(ev, [Order(t0 + 1, "limit", -1, 101.0, 2.0)], v, cash=0.0)
    assert st.account("position")[0] == -2.0
    assert st.account("funding")[0] == pytest.approx(-pay)
    assert st.account("cash")[0] == pytest.approx(202 + pay)
