"""Streaming equals one-shot, sources equal arrays, the fast kernel equals the general one,
and runs are deterministic — all bit for bit, on real BTC-PERP bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine import (
    Costs,
    Fees,
    Funding,
    Slippage,
    Stops,
    VolumeImpact,
    kernels_cpu,
    simulate,
)


@pytest.fixture(scope="module")
def bars(btc_1m_csv) -> BarPanel:
    df = pd.read_csv(btc_1m_csv, nrows=6_000)
    df.index = pd.to_datetime(df["timestamp"], utc=True)
    df["volume"] = df["volume"] / df["close"]  # the file's volume is in USD: to BTC
    return BarPanel.from_frame(df, symbol="BTC-PERP")


@pytest.fixture(scope="module")
def weights(bars) -> np.ndarray:
    c = pd.Series(bars.close[:, 0])
    cols = []
    for j, (f, s) in enumerate([(5, 20), (10, 40), (15, 90), (3, 50), (20, 60)]):
        w = np.where(c.rolling(f).mean() > c.rolling(s).mean(), 1.0, -0.6 + 0.1 * j)
        w[::37] = np.nan if j == 2 else w[::37]
        cols.append(w)
    return np.stack(cols, axis=1)


COSTS = Costs(
    fees=Fees(taker_bps=7.5),
    slippage=Slippage(bps=1.5),
    impact=VolumeImpact(k_bps=20.0, alpha=0.6),
    funding=Funding(rate_per_8h=1e-4),
)
STOPS = Stops(stop_loss=[0.003, 0.01, np.nan, 0.02, 0.005], take_profit=0.006, trailing=0.004)


def same(a, b) -> None:
    assert a.metrics.keys() == b.metrics.keys()
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    for k in ("returns", "equity", "positions"):
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=k)
    if a.trades is not None:
        pd.testing.assert_frame_equal(a.trades, b.trades)


CASES = {
    "fast path": dict(costs=Costs(fees=Fees(10.0), slippage=Slippage(2.0))),
    "stops+funding+impact": dict(costs=COSTS, stops=STOPS),
    "fill close": dict(costs=COSTS, stops=STOPS, fill="close"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_block_size_does_not_matter(bars, weights, case):
    kw = dict(CASES[case], record=("returns", "equity", "positions"), trades=True, backend="cpu")
    big = simulate(bars, weights, block=100_000, **kw)
    small = simulate(bars, weights, block=7, **kw)
    same(big, small)
    assert big.metrics["n_trades"].min() > 10


class Source:
    """A PositionSource over an array that checks the engine asks in order."""

    def __init__(self, w: np.ndarray, dtype=np.float64) -> None:
        self.w = w.astype(dtype)
        self.n_params = w.shape[-1]
        self.calls: list[tuple[int, int]] = []

    def __call__(self, t0: int, t1: int) -> np.ndarray:
        self.calls.append((t0, t1))
        return self.w[t0:t1]


@pytest.mark.parametrize("case", list(CASES))
def test_source_equals_array(bars, weights, case):
    kw = dict(CASES[case], record=("returns",), trades=True, backend="cpu", block=1000)
    src = Source(weights)
    a = simulate(bars, weights, **kw)
    b = simulate(bars, src, **kw)
    same(a, b)
    # two passes (the trade list replays the source), each contiguous and in order
    starts = [c[0] for c in src.calls]
    assert starts == list(range(0, bars.n_bars, 1000)) * 2
    # float32 weights: the same as their float64 values
    c = simulate(bars, Source(weights, np.float32), **kw)
    d = simulate(bars, weights.astype(np.float32).astype(np.float64), **kw)
    same(c, d)


@pytest.mark.parametrize("with_stops", [False, True], ids=["plain", "stops"])
def test_fast_kernel_equals_general_kernel(bars, weights, with_stops, monkeypatch):
    """The one-asset fast kernel and the general kernel give bit-identical results."""
    kw = dict(record=("returns", "equity"), trades=True, backend="cpu", block=999)
    kw["costs"] = Costs(fees=Fees(10.0), slippage=Slippage(2.0), impact=VolumeImpact(30.0))
    if with_stops:
        kw["stops"] = STOPS
    fast = simulate(bars, weights, max_position=0.8, **kw)
    monkeypatch.setattr(kernels_cpu, "FORCE_GENERAL", True)
    general = simulate(bars, weights, max_position=0.8, **kw)
    same(fast, general)
    if with_stops:
        assert {"stop_loss", "take_profit", "trailing_stop"} <= set(fast.trades.exit_reason)
    # leverage > 1 with ruin: both kernels close at the same bar
    w = weights * 40
    w[:, 0] = 40.0  # held at 40x: ruined by the first 2.5 % move against it
    w[:, 1] = -40.0
    kw2 = dict(kw, max_position=40.0, leverage=40.0)
    g = simulate(bars, w, **kw2)
    monkeypatch.setattr(kernels_cpu, "FORCE_GENERAL", False)
    f = simulate(bars, w, **kw2)
    same(f, g)
    if not with_stops:  # (the stops cut the losses before ruin)
        assert (f.trades.exit_reason == "ruin").sum() >= 1


def test_multi_asset_streaming(bars, weights):
    # two assets: BTC and a scaled, shifted copy with a few masked bars
    n = bars.n_bars
    o = np.stack([bars.open[:, 0], bars.open[::-1, 0] * 0.01], 1)
    c = np.stack([bars.close[:, 0], bars.close[::-1, 0] * 0.01], 1)
    h = np.maximum(np.stack([bars.high[:, 0], bars.high[::-1, 0] * 0.01], 1), np.maximum(o, c))
    lo = np.minimum(np.stack([bars.low[:, 0], bars.low[::-1, 0] * 0.01], 1), np.minimum(o, c))
    v = np.stack([bars.volume[:, 0], bars.volume[::-1, 0] * 100], 1)
    multi = BarPanel.from_arrays(bars.ts, o, h, lo, c, v, symbols=["BTC", "REV"])
    mask = multi.mask.copy()
    mask[100:130, 1] = False
    multi.mask = mask
    w = np.stack([weights * 0.5, -weights[::-1] * 0.7], axis=1)  # (T, 2, P)
    kw = dict(costs=COSTS, stops=STOPS, trades=True, record=("equity", "positions"))
    a = simulate(multi, w, block=100_000, backend="cpu", leverage=1.0, **kw)
    b = simulate(multi, w, block=13, backend="cpu", leverage=1.0, **kw)
    same(a, b)
    # gross exposure right after each fill never exceeds the leverage cap (1.0) by much
    gross = np.abs(np.asarray(a.positions)).sum(axis=1)
    assert gross.max() < 1.2
    assert set(a.trades.asset) == {"BTC", "REV"}
    t = a.trades
    assert not ((t.asset == "REV") & t.entry_bar.between(100, 129)).any()
    total = t.groupby("param").pnl.sum().to_numpy()
    np.testing.assert_allclose(total, np.asarray(a.equity)[-1] - 1.0, rtol=1e-9, atol=1e-12)
    assert n == multi.n_bars


def test_deterministic(bars, weights):
    kw = dict(costs=COSTS, stops=STOPS, trades=True, record=("returns",), backend="cpu")
    same(simulate(bars, weights, **kw), simulate(bars, weights, **kw))


# --------------------------------------------------------------------------- carried accounts


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("k", [1, 777, 4096])
def test_chained_replays_equal_one_replay(bars, weights, case, k):
    """Replay [0, k), then [k, T) from the account the first replay ended with: the equity,
    returns and positions of the second are those of one replay over all the bars."""
    kw = dict(CASES[case], record=("returns", "equity", "positions"), backend="cpu")
    one = simulate(bars, weights, **kw)
    head = simulate(bars.select(slice(0, k)), weights[:k], **kw)
    for j in range(weights.shape[1]):
        # every set starts from set j's account; set j's own column continues it
        tail = simulate(bars.select(slice(k, None)), weights[k:], start=head.account(j), **kw)
        for name in ("returns", "equity", "positions"):
            np.testing.assert_array_equal(
                np.asarray(getattr(tail, name))[:, j],
                np.asarray(getattr(one, name))[k:, j],
                err_msg=f"{name} of set {j}",
            )
        np.testing.assert_array_equal(tail.metrics["end_equity"][j], one.metrics["end_equity"][j])


@pytest.mark.parametrize("k", [500, 3001])
def test_pending_targets_switch_sets_like_one_spliced_replay(bars, weights, k):
    """An account running set j until bar k-1 whose decision at the close of bar k-1 comes
    from set m (``pending``), then set m: one replay of the spliced weights
    ``w[:k-1, j] ++ w[k-1:, m]`` — only the difference between the two targets is traded."""
    stops = Stops(stop_loss=0.004, take_profit=0.006, trailing=0.003)
    kw = dict(costs=COSTS, stops=stops, record=("equity", "positions"), backend="cpu")
    head = simulate(bars.select(slice(0, k)), weights[:k], **kw)
    for j, m in [(0, 3), (4, 1), (2, 2)]:
        spliced = np.r_[weights[: k - 1, j], weights[k - 1 :, m]]
        one = simulate(bars, spliced, **kw)
        tail = simulate(
            bars.select(slice(k, None)),
            weights[k:, m],
            start=head.account(j),
            pending=weights[k - 1, m : m + 1],
            **kw,
        )
        np.testing.assert_array_equal(np.asarray(tail.equity)[:, 0], np.asarray(one.equity)[k:, 0])
        np.testing.assert_array_equal(
            np.asarray(tail.positions)[:, 0], np.asarray(one.positions)[k:, 0]
        )
    # a flat account with pending targets = a replay that starts one bar earlier
    flat = simulate(bars.select(slice(k, None)), weights[k:], pending=weights[k - 1], **kw)
    early = simulate(bars.select(slice(k - 1, None)), weights[k - 1 :], **kw)
    np.testing.assert_array_equal(np.asarray(flat.equity), np.asarray(early.equity)[1:])


def test_carried_open_trade_keeps_its_entry_and_bad_pending_is_refused(bars, weights):
    kw = dict(costs=COSTS, stops=Stops(trailing=0.01), backend="cpu")
    head = simulate(bars.select(slice(0, 1000)), weights[:1000, :1], **kw)
    acc = head.account(0)
    assert acc.shares[0] != 0.0  # the set holds a position at the split
    tail = simulate(bars.select(slice(1000, None)), weights[1000:, 0], start=acc, trades=True, **kw)
    first = tail.trades.iloc[tail.trades["exit_bar"].argmin()]
    assert first["entry_bar"] == -1 and pd.isna(first["entry_ts"])
    with pytest.raises(ValueError, match=r"pending has shape \(2,\), expected \(5,\)"):
        simulate(bars, weights, pending=np.zeros(2), backend="cpu")
    with pytest.raises(ValueError, match="pending targets fill at the first open"):
        simulate(bars, weights, pending=np.zeros(5), fill="close", backend="cpu")
