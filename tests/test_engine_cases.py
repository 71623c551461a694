"""Hand-computed tiny cases: every number below is worked out in the comments.

Prices are chosen so the arithmetic is easy; init_cash = 1. Target weights ``w[t]`` are
decided at the close of bar t and (fill="open") fill at the open of bar t + 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine import (
    BackendError,
    Costs,
    Fees,
    Funding,
    SimulationError,
    Slippage,
    Stops,
    VolumeImpact,
    get_backend,
    simulate,
)
from quantarena.engine.costs import CostError
from quantarena.engine.stops import StopError

MIN = 60_000_000_000
T0 = 1_700_006_400_000_000_000  # 2023-11-15 00:00 UTC (a multiple of 8 h)


def panel(o, h, lo, c, v=None, *, interval=MIN) -> BarPanel:
    o, h, lo, c = (np.asarray(x, dtype=float) for x in (o, h, lo, c))
    v = np.full_like(c, 1e12) if v is None else np.asarray(v, dtype=float)
    ts = T0 + np.arange(c.shape[0], dtype=np.int64) * interval
    return BarPanel.from_arrays(ts, o, h, lo, c, v, interval_ns=interval)


# o, h, l, c of four bars
O4 = [100, 100, 110, 120]
H4 = [100, 110, 121, 120]
L4 = [100, 95, 108, 115]
C4 = [100, 110, 120, 115]


def run(bars, w, costs=None, **kw):
    w = np.asarray(w, dtype=float)
    if w.ndim == 1:
        w = w[:, None]
    kw.setdefault("record", ("returns", "equity"))
    return simulate(bars, w, costs, backend="cpu", trades=True, **kw)


def eq(res) -> np.ndarray:
    return np.asarray(res.equity)[:, 0]


def test_no_costs_fill_open():
    # buy 1.0 of equity at the open of bar 1 (100): 0.01 shares; hold; sell at the open of
    # bar 3 (120). E = 1, 1.1, 1.2, 1.2
    res = run(panel(O4, H4, L4, C4), [1, 1, 0, 0])
    np.testing.assert_allclose(eq(res), [1.0, 1.1, 1.2, 1.2], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(res.returns)[:, 0], [0, 0.1, 1.2 / 1.1 - 1, 0])
    tr = res.trades
    assert len(tr) == 1 and tr.exit_reason[0] == "signal"
    assert (tr.entry_bar[0], tr.exit_bar[0]) == (1, 3)
    assert tr.entry_price[0] == 100 and tr.exit_price[0] == 120
    assert tr["size"][0] == pytest.approx(0.01)
    assert tr.pnl[0] == pytest.approx(0.2) and tr["return"][0] == pytest.approx(0.2)
    m = res.metrics
    assert m["n_trades"][0] == 1 and m["win_rate"][0] == 1.0
    assert m["exposure"][0] == pytest.approx(2 / 4)  # held at the closes of bars 1, 2
    assert m["turnover"][0] == pytest.approx(1.0 + 1.2 / 1.2)  # buy 1.0 of E=1, sell 1.2 of E=1.2
    assert m["total_return"][0] == pytest.approx(0.2)
    assert m["max_drawdown"][0] == 0.0


def test_fill_close_is_same_bar():
    # fill="close": buy at the close of bar 0 (100), sell at the close of bar 2 (120)
    # E = 1, 1.1, 1.2, 1.2 as well, but the entry is one bar earlier
    res = run(panel(O4, H4, L4, C4), [1, 1, 0, 0], fill="close")
    np.testing.assert_allclose(eq(res), [1.0, 1.1, 1.2, 1.2])
    assert (res.trades.entry_bar[0], res.trades.exit_bar[0]) == (0, 2)
    # a target that changes at the last bar never fills with fill="open"
    res = run(panel(O4, H4, L4, C4), [0, 0, 0, 1])
    np.testing.assert_allclose(eq(res), [1, 1, 1, 1])
    assert res.metrics["n_trades"][0] == 0 and len(res.trades) == 0


def test_fees():
    # 10 bps taker: buy 0.01 sh at 100 -> fee 0.001, cash = -0.001
    # E1 = -0.001 + 1.1 = 1.099, E2 = 1.199; sell 0.01 at 120 -> fee 0.0012
    # cash = -0.001 + 1.2 - 0.0012 = 1.1978
    res = run(panel(O4, H4, L4, C4), [1, 1, 0, 0], Costs(fees=Fees(taker_bps=10, maker_bps=1)))
    np.testing.assert_allclose(eq(res), [1.0, 1.099, 1.199, 1.1978], rtol=1e-13)
    assert res.trades.pnl[0] == pytest.approx(0.1978, rel=1e-12)
    assert res.metrics["fees_paid"][0] == pytest.approx(0.0022, rel=1e-12)
    # maker rate when asked: 1 bp
    res = run(panel(O4, H4, L4, C4), [1, 1, 0, 0], Costs(fees=Fees(10, 1, liquidity="maker")))
    assert eq(res)[-1] == pytest.approx(1.2 - 0.0001 - 0.00012, rel=1e-13)


def test_slippage():
    # 50 bps: shares = 1 * E / 100 (sized at the base price) = 0.01, bought at 100.5
    # cash = 1 - 1.005 = -0.005; E1 = 1.095, E2 = 1.195; sold at 120 * 0.995 = 119.4
    # cash = -0.005 + 1.194 = 1.189
    res = run(panel(O4, H4, L4, C4), [1, 1, 0, 0], Costs(slippage=Slippage(bps=50)))
    np.testing.assert_allclose(eq(res), [1.0, 1.095, 1.195, 1.189], rtol=1e-13)
    assert res.trades.entry_price[0] == pytest.approx(100.5)
    assert res.trades.exit_price[0] == pytest.approx(119.4)
    # a short pays it too: sells at 99.5, buys back at 120.6
    res = run(panel(O4, H4, L4, C4), [-1, -1, 0, 0], Costs(slippage=Slippage(bps=50)))
    # short 0.01 at 99.5: cash = 1 + 0.995 = 1.995; buy back at 120.6: cash = 1.995 - 1.206
    assert eq(res)[-1] == pytest.approx(1.995 - 1.206, rel=1e-13)


def test_volume_impact():
    # impact = k * (q * px / (volume * close)) ** 0.5 with k = 100 bps
    # buy: notional 0.01 * 100 = 1, bar 1 notional volume 4 -> sqrt(0.25) * 100 = 50 bps
    # sell: notional 0.01 * 120 = 1.2, bar 3 notional volume 4.8 -> 50 bps: as slippage 50
    vol = [1.0, 4.0 / 110.0, 1.0, 4.8 / 115.0]
    res = run(panel(O4, H4, L4, C4, vol), [1, 1, 0, 0], Costs(impact=VolumeImpact(k_bps=100)))
    np.testing.assert_allclose(eq(res), [1.0, 1.095, 1.195, 1.189], rtol=1e-12)
    # capped at max_bps; a bar without volume pays max_bps
    vol0 = [1.0, 0.0, 1.0, 4.8 / 115.0]
    res = run(panel(O4, H4, L4, C4, vol0), [1, 1, 0, 0], Costs(impact=VolumeImpact(100, 0.5, 200)))
    # buy at 100 * 1.02 = 102: cash = -0.02; sell at 119.4: cash = -0.02 + 1.194
    assert eq(res)[-1] == pytest.approx(1.174, rel=1e-12)
    assert res.trades.entry_price[0] == pytest.approx(102.0)


def test_funding_rates_array():
    # long 0.01 sh from the open of bar 1; rates charged at the closes of bars 1 and 3:
    # bar 1: 0.001 * 0.01 * 110 = 0.0011 ; bar 3: 0.002 * 0.01 * 115 = 0.0023
    fund = Funding(rates=np.array([0.0, 0.001, 0.0, 0.002]))
    res = run(panel(O4, H4, L4, C4), [1, 1, 1, 1], Costs(funding=fund))
    np.testing.assert_allclose(
        eq(res), [1.0, 1.1 - 0.0011, 1.2 - 0.0011, 1.15 - 0.0011 - 0.0023], rtol=1e-13
    )
    assert res.metrics["funding_paid"][0] == pytest.approx(0.0034)
    # a short receives it
    res = run(panel(O4, H4, L4, C4), [-1, -1, -1, -1], Costs(funding=fund))
    assert eq(res)[-1] == pytest.approx(1 - 0.15 + 0.0034, rel=1e-12)
    assert res.trades.pnl[0] == pytest.approx(-0.15 + 0.0034, rel=1e-12)  # open trade
    assert res.trades.exit_reason[0] == "open"


def test_funding_per_8h_counts_funding_times():
    # hourly bars from 00:00: funding times 00:00, 08:00, 16:00 fall in bars 0, 8, 16
    f = Funding(rate_per_8h=1e-4).per_bar(T0 + np.arange(24) * 3_600_000_000_000, 3_600 * 10**9, 1)
    assert np.flatnonzero(f[:, 0]).tolist() == [0, 8, 16]
    # daily bars hold three funding times each
    f = Funding(rate_per_8h=1e-4).per_bar(T0 + np.arange(3) * 86_400 * 10**9, 86_400 * 10**9, 2)
    np.testing.assert_allclose(f, 3e-4)
    with pytest.raises(CostError, match="shape"):
        Funding(rates=np.zeros(5)).per_bar(np.arange(4), MIN, 1)


# bars for the stop cases: entry at the open of bar 1 (100)
def test_stop_loss_and_flat_until_target_changes():
    o = [100, 100, 97, 98, 99, 100]
    h = [100, 101, 99, 99, 100, 102]
    lo = [100, 95, 96, 97, 98, 99]
    c = [100, 97, 98, 98, 100, 101]
    # sl 4 %: level 96; bar 1 low 95 -> exit at 96. E1 = 0.96 (0.01 sh * 96)
    # the target stays 1 through bar 3: flat; it changes to 0 at bar 3 and back to 1 at
    # bar 4 -> re-entry at the open of bar 5 (100): 0.0096 sh; E5 = 0.96 * 1.01
    w = [1, 1, 1, 0, 1, 1]
    res = run(panel(o, h, lo, c), w, stops=Stops(stop_loss=0.04))
    np.testing.assert_allclose(eq(res), [1, 0.96, 0.96, 0.96, 0.96, 0.96 * 1.01], rtol=1e-13)
    tr = res.trades
    assert tr.exit_reason.tolist() == ["stop_loss", "open"]
    assert tr.exit_price[0] == pytest.approx(96.0) and tr.exit_bar[0] == 1
    assert tr.entry_bar[1] == 5


def test_take_profit():
    # tp 8 %: level 108; bar 1 high 110 -> exit at 108: E1 = 1.08
    res = run(panel(O4, H4, L4, C4), [1, 1, 1, 1], stops=Stops(take_profit=0.08))
    np.testing.assert_allclose(eq(res), [1, 1.08, 1.08, 1.08], rtol=1e-13)
    assert res.trades.exit_reason.tolist() == ["take_profit"]


def test_stop_wins_when_both_inside_the_bar():
    # bar 1: low 95 <= 96 (stop) and high 110 >= 108 (take-profit): the stop wins
    res = run(panel(O4, H4, L4, C4), [1, 1, 1, 1], stops=Stops(stop_loss=0.04, take_profit=0.08))
    np.testing.assert_allclose(eq(res), [1, 0.96, 0.96, 0.96], rtol=1e-13)
    assert res.trades.exit_reason.tolist() == ["stop_loss"]


def test_gap_through_fills_at_the_open():
    # sl 10 %: level 90; bar 1 holds (low 95); bar 2 opens at 85 < 90 -> exit at 85
    o = [100, 100, 85, 86]
    h = [100, 101, 88, 87]
    lo = [100, 95, 84, 85]
    c = [100, 97, 86, 86]
    res = run(panel(o, h, lo, c), [1, 1, 1, 1], stops=Stops(stop_loss=0.10))
    np.testing.assert_allclose(eq(res), [1, 0.97, 0.85, 0.85], rtol=1e-13)
    assert res.trades.exit_price[0] == pytest.approx(85.0)
    # a short gapping up through its stop: short 0.01 at 100, bar 2 opens 112 > 110
    o = [100, 100, 112, 112]
    h = [100, 104, 113, 113]
    lo = [100, 99, 111, 111]
    c = [100, 103, 112, 112]
    res = run(panel(o, h, lo, c), [-1, -1, -1, -1], stops=Stops(stop_loss=0.10))
    # cash 2 after the short sale; bought back at 112 -> E = 2 - 1.12 = 0.88
    np.testing.assert_allclose(eq(res), [1, 0.97, 0.88, 0.88], rtol=1e-13)
    assert res.trades.exit_reason[0] == "stop_loss"


def test_trailing_stop_follows_closes():
    # trailing 5 %: bar 1 best = entry 100 -> level 95, low 96 holds; close 110 -> best 110
    # bar 2 level 104.5, low 103 -> exit at 104.5: E2 = 1.045
    o = [100, 100, 110, 104]
    h = [100, 111, 111, 105]
    lo = [100, 96, 103, 103]
    c = [100, 110, 105, 104]
    res = run(panel(o, h, lo, c), [1, 1, 1, 1], stops=Stops(trailing=0.05))
    np.testing.assert_allclose(eq(res), [1, 1.1, 1.045, 1.045], rtol=1e-13)
    assert res.trades.exit_reason.tolist() == ["trailing_stop"]
    # with a looser stop-loss too the trailing level is the tighter one and wins
    res = run(panel(o, h, lo, c), [1, 1, 1, 1], stops=Stops(stop_loss=0.2, trailing=0.05))
    assert res.trades.exit_reason.tolist() == ["trailing_stop"]


def test_short_take_profit_and_stops_per_param():
    # two parameter sets with their own stop-loss: 2 % (level 102) and 5 % (level 105)
    o = [100, 100, 103, 101]
    h = [100, 103, 104, 102]
    lo = [100, 99, 102, 90]
    c = [100, 103, 103, 91]
    w = np.full((4, 2), -1.0)
    res = run(panel(o, h, lo, c), w, stops=Stops(stop_loss=[0.02, 0.05], take_profit=0.08))
    e = np.asarray(res.equity)
    # set 0: short 0.01 at 100, stopped at 102 in bar 1 -> E = 2 - 1.02 = 0.98
    np.testing.assert_allclose(e[:, 0], [1, 0.98, 0.98, 0.98], rtol=1e-13)
    # set 1: holds (high 103, 104 < 105); bar 3 low 90 <= 92 (take-profit) -> exit at 92
    np.testing.assert_allclose(e[:, 1], [1, 0.97, 0.97, 2 - 0.92], rtol=1e-13)
    assert res.trades.exit_reason.tolist() == ["stop_loss", "take_profit"]


def test_max_position_and_leverage_caps():
    # w = 2 clipped to max_position 0.5: 0.005 sh; E = 1 + 0.005 * (c - 100)
    res = run(panel(O4, H4, L4, C4), [2, 2, 2, 2], max_position=0.5)
    np.testing.assert_allclose(eq(res), [1, 1.05, 1.1, 1.075], rtol=1e-13)
    # leverage 2 lets w = 2 through (max_position 3): 0.02 sh, cash -1
    res = run(panel(O4, H4, L4, C4), [2, 2, 2, 2], max_position=3.0, leverage=2.0)
    np.testing.assert_allclose(eq(res), [1, 1.2, 1.4, 1.3], rtol=1e-13)
    # leverage 1.5 scales it down to 1.5; per-parameter max_position
    w = np.full((4, 2), 2.0)
    res = run(panel(O4, H4, L4, C4), w, max_position=np.array([0.25, 3.0]), leverage=1.5)
    e = np.asarray(res.equity)
    np.testing.assert_allclose(e[-1], [1 + 0.0025 * 15, 1 + 0.015 * 15], rtol=1e-13)


def test_nan_target_is_flat():
    # w = [1, NaN, NaN, 1]: buy at bar 1's open (100), NaN -> 0: sell at bar 2's open (110)
    res = run(panel(O4, H4, L4, C4), [1, np.nan, np.nan, 1])
    np.testing.assert_allclose(eq(res), [1, 1.1, 1.1, 1.1], rtol=1e-13)
    assert res.metrics["n_trades"][0] == 1


def test_masked_bar_defers_the_trade():
    bars = panel(O4, H4, L4, C4)
    mask = bars.mask.copy()
    mask[1, 0] = False  # no bar 1: the buy waits for bar 2's open (110)
    bars.mask = mask
    res = run(bars, [1, 1, 1, 1])
    # 1/110 sh bought at 110; E2 = 120/110, E3 = 115/110
    np.testing.assert_allclose(eq(res), [1, 1, 120 / 110, 115 / 110], rtol=1e-13)
    assert res.trades.entry_bar[0] == 2
    # stops are not checked on a masked bar either
    mask = bars.mask.copy()
    mask[:, 0] = True
    mask[2, 0] = False
    bars.mask = mask
    res = run(bars, [1, 1, 1, 1], stops=Stops(stop_loss=0.001))
    # entered bar 1 at 100 (level 99.9): low 95 -> stopped in bar 1 already
    assert res.trades.exit_bar.tolist() == [1]


def multi_panel():
    # two assets; asset B: opens 50, 50, 40, 60, closes 50, 40, 60, 60
    o = np.array([[100, 50], [100, 50], [110, 40], [120, 60]], dtype=float)
    c = np.array([[100, 50], [110, 40], [120, 60], [115, 60]], dtype=float)
    h = np.maximum(o, c) + 1
    lo = np.minimum(o, c) - 1
    ts = T0 + np.arange(4) * MIN
    return BarPanel.from_arrays(ts, o, h, lo, c, np.full_like(c, 1e12), symbols=["A", "B"])


def test_multi_asset_shared_cash():
    # bar 1 open: E_f = 1 -> A 0.5/100 = 0.005 sh, B 0.5/50 = 0.01 sh, cash 0
    # E1 = 0.005*110 + 0.01*40 = 0.95
    # targets change to A 0, B 1 (decided at bar 1's close) -> fill at bar 2's open:
    # E_f = 0.005*110 + 0.01*40 = 0.95; sell A: cash 0.55; B to 0.95/40 = 0.02375 sh:
    # buy 0.01375 sh at 40 = 0.55 -> cash 0. E2 = 0.02375 * 60 = 1.425 = E3
    w = np.zeros((4, 2, 1))
    w[0, :, 0] = [0.5, 0.5]
    w[1:, :, 0] = [0.0, 1.0]
    res = simulate(multi_panel(), w, backend="cpu", record=("equity", "positions"), trades=True)
    np.testing.assert_allclose(np.asarray(res.equity)[:, 0], [1, 0.95, 1.425, 1.425], rtol=1e-13)
    pos = np.asarray(res.positions)
    assert pos.shape == (4, 2, 1)
    np.testing.assert_allclose(pos[1, :, 0], [0.55 / 0.95, 0.4 / 0.95], rtol=1e-13)
    np.testing.assert_allclose(pos[3, :, 0], [0.0, 1.0], rtol=1e-13)
    tr = res.trades
    assert sorted(zip(tr.asset, tr.exit_reason, strict=True)) == [
        ("A", "signal"),
        ("B", "open"),
    ]
    a = tr[tr.asset == "A"].iloc[0]
    assert a.pnl == pytest.approx(0.005 * 10)
    # the leverage cap scales both: 0.8 + 0.8 -> 0.5 + 0.5, the same as above
    w2 = w.copy()
    w2[0, :, 0] = [0.8, 0.8]
    w2[1:, :, 0] = [0.0, 1.0]
    res2 = simulate(multi_panel(), w2, backend="cpu", record=("equity",))
    np.testing.assert_allclose(np.asarray(res2.equity), np.asarray(res.equity), rtol=1e-13)


def test_ruin_closes_and_stays_flat():
    # short 2x (leverage 2): -0.02 sh at 100, cash 3. Bar 2 closes at 160:
    # E2 = 3 - 3.2 = -0.2 <= 0 -> closed at that close, flat for good
    o = [100, 100, 120, 100]
    h = [100, 121, 161, 101]
    lo = [100, 99, 119, 50]
    c = [100, 120, 160, 60]
    res = run(panel(o, h, lo, c), [-2, -2, 0, 1], max_position=2, leverage=2)
    np.testing.assert_allclose(eq(res), [1, 0.6, -0.2, -0.2], rtol=1e-13)
    assert res.trades.exit_reason.tolist() == ["ruin"]
    m = res.metrics
    assert m["total_return"][0] == pytest.approx(-1.2)
    assert m["cagr"][0] == -1.0
    assert m["max_drawdown"][0] == pytest.approx(1.2)


def test_bad_inputs_are_one_line_errors():
    bars = panel(O4, H4, L4, C4)
    with pytest.raises(SimulationError, match="rows but bars has 4"):
        simulate(bars, np.ones((3, 2)), backend="cpu")
    with pytest.raises(SimulationError, match="fill must be"):
        simulate(bars, np.ones(4), backend="cpu", fill="mid")
    with pytest.raises(SimulationError, match="record"):
        simulate(bars, np.ones(4), backend="cpu", record=("pnl",))
    with pytest.raises(SimulationError, match="max_position"):
        simulate(bars, np.ones((4, 2)), backend="cpu", max_position=[1, 2, 3])
    with pytest.raises(StopError, match="stop_loss"):
        simulate(bars, np.ones((4, 2)), backend="cpu", stops=Stops(stop_loss=[0.1, 0.1, 0.1]))
    with pytest.raises(CostError, match="taker_bps"):
        Fees(taker_bps=-1)
    bad = panel([100, np.nan, 110, 120], H4, L4, C4)  # NaN open on a real bar
    with pytest.raises(SimulationError, match=r"row 1 .*'open'"):
        simulate(bad, np.ones(4), backend="cpu")
    # a NaN close makes from_arrays mask the bar: no error, no trade there
    gap = panel(O4, H4, L4, [100, np.nan, 120, 115])
    assert not gap.mask[1, 0]
    res = simulate(gap, np.ones(4), backend="cpu", record=("equity",))
    assert np.asarray(res.equity)[-1, 0] == pytest.approx(115 / 110)
    # a position held through a masked bar with a NaN close is valued at the last close
    gap = panel(O4, H4, L4, [100, 110, np.nan, 115])
    res = simulate(gap, np.ones(4), backend="cpu", record=("equity",))
    np.testing.assert_allclose(np.asarray(res.equity)[:, 0], [1, 1.1, 1.1, 1.15], rtol=1e-13)
    multi = multi_panel()
    with pytest.raises(SimulationError, match=r"\(T, A, P\)"):
        simulate(multi, np.ones((4, 3)), backend="cpu")


def test_backend_choice():
    assert get_backend("cpu").name == "cpu"
    assert get_backend("auto").name in ("cpu", "gpu")
    with pytest.raises(BackendError, match="unknown backend"):
        get_backend("tpu")
    if get_backend("auto").name == "cpu":
        with pytest.raises(BackendError, match="backend='cpu'"):
            get_backend("gpu")


def test_metrics_frame_and_trade_columns():
    res = run(panel(O4, H4, L4, C4), np.ones((4, 3)))
    df = res.metrics_frame()
    assert isinstance(df, pd.DataFrame) and df.shape[0] == 3 and "sharpe" in df.columns
    assert list(res.trades.columns[:11]) == [
        "param", "asset", "entry_ts", "exit_ts", "direction", "size", "entry_price",
        "exit_price", "pnl", "return", "exit_reason",
    ]  # fmt: skip
    assert str(res.trades.entry_ts.dtype).startswith("datetime64")
