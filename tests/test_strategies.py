"""Agents, parameter spaces and indicators, checked against pandas / numpy / plain-Python
reference implementations on the bundled real market data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from quantarena.data.panel import BarPanel
from quantarena.strategies import Agent, Choice, Float, Int, get_agent, grid, list_agents
from quantarena.strategies import indicators as ind
from quantarena.strategies.params import parse_param, sample
from quantarena.strategies.registry import get_agent_class, register_agent

SHIPPED = ["breakout", "buy_hold", "mean_reversion", "momentum", "vol_target"]


@pytest.fixture(scope="module")
def btc(btc_1m_csv: Path) -> pd.DataFrame:
    df = pd.read_csv(btc_1m_csv, parse_dates=["timestamp"]).set_index("timestamp")
    return df.iloc[:12_000]


@pytest.fixture(scope="module")
def bars(btc: pd.DataFrame) -> BarPanel:
    return BarPanel.from_frame(btc, symbol="BTC-PERP")


@pytest.fixture(scope="module")
def multi(sample_dir: Path) -> BarPanel:
    """Three Binance alt/BTC 5-minute series, aligned on their common times."""
    frames = {
        s: pd.read_feather(sample_dir / "crypto_5m_binance" / f"{s}_BTC-5m.feather").set_index(
            "date"
        )
        for s in ("ETH", "LTC", "XMR")
    }
    idx = frames["ETH"].index
    for f in frames.values():
        idx = idx.intersection(f.index)
    cols = {
        k: np.stack([frames[s].loc[idx, k].to_numpy() for s in frames], axis=1)
        for k in ("open", "high", "low", "close", "volume")
    }
    ts = pd.DatetimeIndex(idx).as_unit("ns").asi8
    return BarPanel.from_arrays(
        ts,
        cols["open"],
        cols["high"],
        cols["low"],
        cols["close"],
        cols["volume"],
        symbols=list(frames),
    )


# ----------------------------------------------------------------------------- params


def test_parse_param_forms() -> None:
    assert parse_param("5:50:5") == list(range(5, 51, 5))  # stop included
    assert parse_param("5:8") == [5, 6, 7, 8]
    assert parse_param("5:52:5")[-1] == 50  # stop not on the step: not included
    assert parse_param("7") == [7] and isinstance(parse_param("7")[0], int)
    assert parse_param("5,10,20") == [5, 10, 20]
    assert parse_param("0.5:2:0.5") == [0.5, 1.0, 1.5, 2.0]
    assert parse_param("0.1:0.3:0.1") == [0.1, 0.2, 0.3]  # no float drift dropping the stop
    assert parse_param("sma,ema") == ["sma", "ema"]
    for bad in ("5:1", "1:5:0", "a:5", "1:2:3:4", ""):
        with pytest.raises(ValueError):
            parse_param(bad)


def test_coerce_of_arrays_equals_coerce_of_lists() -> None:
    """The vectorised checks of numeric arrays give the element loop's values and errors."""
    i, f = Int(2, 200), Float(0.5, 2.0)
    a = np.array([2, 77, 200])
    for dim, arr in ((i, a), (f, np.array([0.5, 1.25, 2.0])), (f, a[:1] // 2 + 1)):
        got, want = dim.coerce("p", arr), dim.coerce("p", arr.tolist())
        assert got.dtype == want.dtype and np.array_equal(got, want)
    for dim, bad in ((i, np.array([5, 201])), (f, np.array([1.0, 2.5])), (f, np.array([np.nan]))):
        with pytest.raises(ValueError) as arr_err:
            dim.coerce("p", bad)
        with pytest.raises(ValueError) as list_err:
            dim.coerce("p", bad.tolist())
        assert str(arr_err.value) == str(list_err.value)
    ch = Choice(["sma", "ema", 3])
    vals = np.asarray(["ema", "sma", "ema", "3"], dtype=object)
    assert ch.coerce("ma", vals).tolist() == ["ema", "sma", "ema", "3"]
    two = Choice(["True", 1])  # 1 and True hash alike but match different choices
    vals2 = [1, True, 1, True]
    got = [str(v) for v in two.coerce("b", vals2)]
    assert got == [str(two.coerce("b", [v])[0]) for v in vals2] == ["1", "True", "1", "True"]
    assert two.coerce("b", [True])[0] == "True" and two.coerce("b", [1])[0] == 1
    with pytest.raises(ValueError, match="'wma' is not one of"):
        ch.coerce("ma", ["sma", "wma"])


def test_grid_is_the_filtered_cartesian_product() -> None:
    space = {"fast": Int(2, 100), "slow": Int(3, 400), "kind": Choice(["a", "b"])}
    p = grid(
        space, fast="5:50:5", slow="50:200:10", kind="a", valid=lambda q: q["fast"] < q["slow"]
    )
    pairs = {(int(f), int(s)) for f, s in zip(p["fast"], p["slow"], strict=True)}
    expected = {(f, s) for f in range(5, 51, 5) for s in range(50, 201, 10) if f < s}
    assert pairs == expected and len(p["fast"]) == len(expected) == 159
    assert p["fast"].dtype == np.int64 and set(p["kind"]) == {"a"}
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        grid(space, nope=3)
    with pytest.raises(ValueError, match="'fast'.*not an integer"):
        grid(space, fast="abc")
    with pytest.raises(ValueError, match="outside its range"):
        grid(space, fast=1)
    with pytest.raises(ValueError, match="'kind'.*not one of"):
        grid(space, kind="c")


def test_sample_is_seeded_valid_and_in_range() -> None:
    space = {"fast": Int(2, 50, step=2), "slow": Int(10, 200), "x": Float(1e-3, 1.0, log=True)}
    valid = lambda q: q["fast"] < q["slow"]  # noqa: E731
    a = sample(space, 300, seed=5, valid=valid)
    b = sample(space, 300, seed=5, valid=valid)
    c = sample(space, 300, seed=6, valid=valid)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["x"], c["x"])
    assert len(a["fast"]) == 300 and (a["fast"] < a["slow"]).all()
    assert (a["fast"] % 2 == 0).all() and a["fast"].min() >= 2 and a["fast"].max() <= 50
    assert 1e-3 <= a["x"].min() and a["x"].max() <= 1.0
    # log-uniform: about half the draws below the geometric midpoint sqrt(1e-3 * 1)
    assert 0.4 < np.mean(a["x"] < np.sqrt(1e-3)) < 0.6


# ----------------------------------------------------------------------------- indicators


def _exact_std(x: np.ndarray, w: int, ddof: int) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    out[w - 1 :] = sliding_window_view(x, w).std(axis=-1, ddof=ddof)
    return out


@pytest.mark.parametrize("w", [1, 2, 5, 20, 200, 3000])
def test_rolling_mean_max_min_match_pandas(btc: pd.DataFrame, w: int) -> None:
    x = np.stack([btc["close"].to_numpy(), btc["close"].to_numpy() * 1.1], axis=1)
    x[:7, 1] = np.nan  # an asset that starts late
    ref = pd.DataFrame(x).rolling(w)
    mean = ind.rolling_mean(x, w)
    np.testing.assert_allclose(mean, ref.mean().to_numpy(), rtol=1e-12, equal_nan=True)
    # the device (xp) formulation agrees too
    np.testing.assert_allclose(
        ind.Rolling(x, np, [w]).mean(w), ref.mean().to_numpy(), rtol=1e-11, equal_nan=True
    )
    assert np.array_equal(ind.rolling_max(x, w), ref.max().to_numpy(), equal_nan=True)
    assert np.array_equal(ind.rolling_min(x, w), ref.min().to_numpy(), equal_nan=True)


@pytest.mark.parametrize("w", [2, 5, 20, 200])
def test_rolling_std_matches_an_exact_two_pass(btc: pd.DataFrame, w: int) -> None:
    c = btc["close"].to_numpy() * 1.1  # not integers: rounding matters
    for ddof in (0, 1):
        ref = _exact_std(c, w, ddof)
        got = ind.rolling_std(c, w, ddof=ddof)
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        flat = ref == 0
        assert (got[flat] == 0).all()  # a window of identical prices has std exactly 0
        ok = ref > 0
        np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-5)
        dev = ind.Rolling(c, np, [w]).std(w, ddof)
        assert (dev[flat] == 0).all()
        np.testing.assert_allclose(dev[ok], ref[ok], rtol=5e-4)


@pytest.mark.parametrize("cols", [1, 2])
def test_device_stacks_equal_the_per_window_formulation_bit_for_bit(
    btc: pd.DataFrame, cols: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device path's batched stacks (``Rolling.means`` / ``stds``, a few array operations
    for all windows) equal its one-window-at-a-time formulation exactly, for one and two
    columns (one starting late, one with flat stretches), windows across prefix-sum blocks
    and longer than the series, and when the stack is computed in chunks of windows."""
    c = btc["close"].to_numpy()[:6000] * 1.1
    x = c if cols == 1 else np.stack([c, np.round(c, -2)], axis=1)
    if cols == 2:
        x[:7, 0] = np.nan
    ws = [1, 2, 3, 5, 20, 199, 4100, 7000]
    r = ind.Rolling(x, np, ws)
    for ddof in (0, 1):
        per = [(r.mean(w), r.std(w, ddof) if w > ddof else None) for w in ws]
        for chunk in (1 << 24, 6000 * cols * 3):  # one step; steps of 3 windows
            monkeypatch.setattr(ind, "STACK_ELEMENTS", chunk)
            means = r.means(ws)
            assert means.shape == x.shape + (len(ws),)
            for k, (m, _) in enumerate(per):
                assert np.array_equal(means[..., k], m, equal_nan=True)
            ok = [w for w in ws if w > ddof]
            stds = r.stds(ok, ddof)
            for k, w in enumerate(ok):
                assert np.array_equal(stds[..., k], per[ws.index(w)][1], equal_nan=True)
    if cols == 2:  # flat windows of the rounded column stay exactly 0
        assert (r.stds([20])[:, 1] == 0).any()
    with pytest.raises(ValueError, match="too short for ddof=1"):
        r.stds([1, 5], ddof=1)


def test_ema_is_sma_seeded_recursion(btc: pd.DataFrame) -> None:
    c = btc["close"].to_numpy()
    for w in (3, 20, 100):
        got = ind.ema(c, w)
        assert np.isnan(got[: w - 1]).all()
        seeded = pd.Series(np.r_[c[:w].mean(), c[w:]]).ewm(span=w, adjust=False).mean()
        np.testing.assert_allclose(got[w - 1 :], seeded.to_numpy(), rtol=1e-12)


def test_zscores_lag_and_returns(btc: pd.DataFrame) -> None:
    c = btc["close"].to_numpy()
    z = ind.zscore(c, 30)
    s = pd.Series(c)
    sd = s.rolling(30).std(ddof=0)
    ref = ((s - s.rolling(30).mean()) / sd).where(sd > 1e-9).to_numpy()
    both = np.isfinite(ref) & np.isfinite(z)
    assert both.sum() > 0.95 * len(c)
    np.testing.assert_allclose(z[both], ref[both], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ind.lag(c, 3)[3:], c[:-3])
    assert np.isnan(ind.lag(c, 3)[:3]).all()
    with pytest.raises(ValueError, match="look-ahead"):
        ind.lag(c, -1)
    np.testing.assert_allclose(ind.pct_change(c, 5), s.pct_change(5).to_numpy(), rtol=1e-12)


def test_indicators_on_a_prefix_equal_the_full_rows(btc: pd.DataFrame) -> None:
    """Causality, bit for bit: the indicator over x[:k] equals rows :k of the full one."""
    c = btc["close"].to_numpy()
    k = 7_777
    for fn in (ind.moving_averages, ind.rolling_stds, ind.rolling_maxes, ind.rolling_zscores):
        full = fn(c, [5, 60, 1500])
        head = fn(c[:k], [5, 60, 1500])
        assert np.array_equal(full[:k], head, equal_nan=True), fn.__name__
    full = ind.moving_averages(c, [5, 60], kind="ema")
    assert np.array_equal(full[:k], ind.moving_averages(c[:k], [5, 60], kind="ema"), equal_nan=True)


def test_time_last_moving_averages_equal_the_stacked_ones_bit_for_bit(btc: pd.DataFrame) -> None:
    """The fused kernels' (C, W, T) SMA/EMA = moving_averages' (T, C, W), transposed, exactly:
    NaN holes, a column without NaN, a window of 1, windows past the 1024-row refresh, equal
    to and longer than the data."""
    c = btc["close"].to_numpy()[:6_000].copy()
    clean = c * 0.5  # no NaN: the kernel's NaN-free loop
    c[100] = np.nan
    c[3_000:3_004] = np.nan
    x = np.stack([c, c[::-1] * 1.5, clean], axis=1)
    ws = [1, 2, 7, 60, 1023, 1024, 1025, 2_500, 6_000, 7_000]
    for kind in ("sma", "ema"):
        tl = ind.moving_averages_time_last(x, ws, kind)
        assert tl.shape == (3, len(ws), 6_000) and tl.flags.c_contiguous
        ref = ind.moving_averages(x, ws, kind=kind).transpose(1, 2, 0)
        assert np.array_equal(tl, ref, equal_nan=True), kind
        one = ind.moving_averages_time_last(c, ws, kind)  # a 1-D series: one column
        assert np.array_equal(one[0], tl[0], equal_nan=True)
    with pytest.raises(ValueError, match="unknown moving average"):
        ind.moving_averages_time_last(c, [5], "wma")


def test_momentum_block_path_reads_the_time_last_averages(bars: BarPanel) -> None:
    """On the CPU the state holds the time-last stack and a (T, A, W) view of it; the block
    path (signal) gives the crossover of those same averages."""
    ag = get_agent("momentum")
    p = ag.grid(fast="5,20", slow="50,120", ma="sma,ema")
    state = ag.indicators(bars, p)
    assert np.shares_memory(state["ma"], state["ma_tl"])
    ma = state["ma_tl"].transpose(2, 0, 1)
    pos = ag.signal(state, p, np, 0, bars.n_bars)
    f, s = ma[:, 0, state["fi"]], ma[:, 0, state["si"]]
    want = np.where(f > s, 1.0, np.where(f < s, -1.0, 0.0)) * ag.max_position
    np.testing.assert_array_equal(pos, want.astype(np.float32))


# ----------------------------------------------------------------------------- agents vs references


def test_momentum_matches_pandas_crossover(btc: pd.DataFrame, bars: BarPanel) -> None:
    ag = get_agent("momentum")
    p = ag.grid(fast="5,20,45", slow="50,120", ma="sma,ema")
    pos = ag.positions(bars, p)
    assert pos.shape == (bars.n_bars, 12) and pos.dtype == np.float32
    s = btc["close"]
    for j in range(12):
        f, sl, kind = int(p["fast"][j]), int(p["slow"][j]), p["ma"][j]
        if kind == "sma":
            mf, ms = s.rolling(f).mean(), s.rolling(sl).mean()
        else:

            def seeded(w: int) -> pd.Series:
                v = np.r_[s.iloc[:w].mean(), s.iloc[w:].to_numpy()]
                return pd.Series(
                    np.r_[np.full(w - 1, np.nan), pd.Series(v).ewm(span=w, adjust=False).mean()]
                )

            mf, ms = seeded(f), seeded(sl)
        mf, ms = np.asarray(mf, float), np.asarray(ms, float)
        ref = np.where(mf > ms, 0.1, np.where(mf < ms, -0.1, 0.0))
        diff = ~np.isclose(pos[:, j], ref)
        # a disagreement may only come from MAs equal to within rounding
        assert (np.abs(mf - ms)[diff] < 1e-9 * s.to_numpy()[diff]).all()
        assert diff.sum() <= 3
        assert (pos[: sl - 1, j] == 0).all()  # flat until the slow window is full


def test_momentum_shares_one_average_per_distinct_window(bars: BarPanel) -> None:
    ag = get_agent("momentum")
    p = ag.grid(fast="5:50:5", slow="50:200:10")
    state = ag.indicators(bars, p)
    distinct = set(p["fast"].tolist()) | set(p["slow"].tolist())
    assert state["n_windows"] == len(distinct) == 25
    assert state["ma"].shape == (bars.n_bars, 1, 25)
    assert len(p["fast"]) == 159


def _mr_reference(z: np.ndarray, entry: float, exit_: float) -> np.ndarray:
    out = np.zeros(z.size)
    cur = 0.0
    for t, v in enumerate(z):
        if not np.isfinite(v):
            cur = 0.0
        elif v > entry:
            cur = -1.0
        elif v < -entry:
            cur = 1.0
        elif abs(v) < exit_:
            cur = 0.0
        out[t] = cur
    return out


def test_mean_reversion_matches_a_python_state_machine(btc: pd.DataFrame, bars: BarPanel) -> None:
    ag = get_agent("mean_reversion", max_position=0.25)
    p = ag.grid(window="20,90", entry="1.5,2.5", exit="0,0.5")
    pos = ag.positions(bars, p)
    s = btc["close"]
    for j in range(len(p["window"])):
        w = int(p["window"][j])
        sd = s.rolling(w).std(ddof=0)
        z = ((s - s.rolling(w).mean()) / sd).where(sd > 1e-9).to_numpy()
        ref = 0.25 * _mr_reference(z, float(p["entry"][j]), float(p["exit"][j]))
        np.testing.assert_array_equal(pos[:, j], ref.astype(np.float32))
        assert set(np.unique(pos[:, j])) <= {-0.25, 0.0, 0.25}
    assert (pos != 0).any(axis=0).all()  # every set trades on a month of 1-minute bars


def _donchian_reference(c, hh, ll, xh, xl) -> np.ndarray:
    out = np.zeros(c.size)
    cur = 0.0
    for t in range(c.size):
        if not (np.isfinite(hh[t]) and np.isfinite(ll[t])):
            cur = 0.0
        elif cur == 0:
            cur = 1.0 if c[t] > hh[t] else (-1.0 if c[t] < ll[t] else 0.0)
        elif cur > 0:
            cur = -1.0 if c[t] < ll[t] else (0.0 if c[t] < xl[t] else 1.0)
        else:
            cur = 1.0 if c[t] > hh[t] else (0.0 if c[t] > xh[t] else -1.0)
        out[t] = cur
    return out


def test_breakout_matches_pandas_channels(btc: pd.DataFrame, bars: BarPanel) -> None:
    ag = get_agent("breakout")
    p = ag.grid(window="20,60", exit_window="10,20")
    pos = ag.positions(bars, p)
    c, h, lo = (btc[k] for k in ("close", "high", "low"))
    for j in range(len(p["window"])):
        w, e = int(p["window"][j]), int(p["exit_window"][j])
        ref = 0.1 * _donchian_reference(
            c.to_numpy(),
            h.rolling(w).max().shift(1).to_numpy(),
            lo.rolling(w).min().shift(1).to_numpy(),
            h.rolling(e).max().shift(1).to_numpy(),
            lo.rolling(e).min().shift(1).to_numpy(),
        )
        np.testing.assert_array_equal(pos[:, j], ref.astype(np.float32))
        assert (pos[:w, j] == 0).all()
    assert (pos > 0).any() and (pos < 0).any()


def test_vol_target_matches_pandas(btc: pd.DataFrame, bars: BarPanel) -> None:
    ag = get_agent("vol_target", max_position=0.5)
    p = ag.grid(lookback="30,120", vol_window="60", target_vol="0.3,0.8")
    pos = ag.positions(bars, p)
    s = btc["close"]
    ppy = 365 * 24 * 60
    for j in range(len(p["lookback"])):
        r = s.pct_change(int(p["lookback"][j])).to_numpy()
        vol = np.log(s).diff().rolling(int(p["vol_window"][j])).std(ddof=0).to_numpy() * np.sqrt(
            ppy
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(vol > 0, np.minimum(1.0, p["target_vol"][j] / vol), 1.0)
        ref = np.where(np.isfinite(r) & np.isfinite(vol), np.sign(r) * 0.5 * scale, 0.0)
        np.testing.assert_allclose(pos[:, j], ref, atol=2e-6)
    assert np.abs(pos).max() <= 0.5 + 1e-7
    assert (np.abs(pos) < 0.49).any()  # the scaling really bites on some bars


def test_buy_hold_and_long_only(bars: BarPanel) -> None:
    bh = get_agent("buy_hold", max_position=0.3).positions(bars)
    assert bh.shape == (bars.n_bars, 1) and np.allclose(bh, 0.3)
    both = get_agent("momentum").positions(bars, {"fast": [10], "slow": [60]})
    longs = get_agent("momentum", long_only=True).positions(bars, {"fast": [10], "slow": [60]})
    np.testing.assert_array_equal(longs, np.maximum(both, 0))
    assert (both < 0).any() and (longs >= 0).all()


@pytest.mark.parametrize("name", SHIPPED)
def test_multi_asset_columns_equal_single_asset_runs(name: str, multi: BarPanel) -> None:
    ag = get_agent(name)
    p = ag.grid()
    pos = ag.positions(multi, p)
    assert pos.shape == (multi.n_bars, 3, len(next(iter(p.values()))))
    for a, sym in enumerate(multi.symbols):
        one = ag.positions(multi.asset(sym), p)
        np.testing.assert_array_equal(pos[:, a, :], one)


def test_buy_hold_is_flat_before_an_assets_first_price(multi: BarPanel) -> None:
    late = multi.select(slice(None))
    late.close[:50, 1] = np.nan
    late.mask[:50, 1] = False
    pos = get_agent("buy_hold").positions(late)
    assert (pos[:50, 1, 0] == 0).all() and (pos[50:, 1, 0] == np.float32(0.1)).all()
    assert (pos[:, 0, 0] == np.float32(0.1)).all()


@pytest.mark.parametrize("name", SHIPPED)
def test_streaming_blocks_in_any_order_equal_positions(name: str, bars: BarPanel) -> None:
    ag = get_agent(name)
    p = ag.grid()
    full = ag.positions(bars, p)
    src = ag.source(bars, p)
    assert src.n_params == full.shape[1]
    edges = [0, 1, 700, 4096, 4100, 9000, bars.n_bars]
    blocks = [src(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate(blocks), full)
    # out of order (a replay from bar 0 for path-dependent agents), then a repeat
    np.testing.assert_array_equal(src(4100, 9000), full[4100:9000])
    np.testing.assert_array_equal(src(700, 4096), full[700:4096])
    np.testing.assert_array_equal(src(700, 4096), full[700:4096])
    # deterministic
    np.testing.assert_array_equal(ag.positions(bars, p), full)


def test_check_params_and_max_position(bars: BarPanel) -> None:
    ag = get_agent("momentum")
    with pytest.raises(ValueError, match="invalid parameter set #1"):
        ag.check_params({"fast": [5, 60], "slow": [50, 50]})
    with pytest.raises(ValueError, match="differ in length"):
        ag.check_params({"fast": [5, 6], "slow": [50]})
    with pytest.raises(ValueError, match="max_position"):
        get_agent("momentum", max_position=0)
    filled = ag.check_params({"fast": [5, 6]})
    assert filled["slow"].tolist() == [50, 50] and filled["ma"].tolist() == ["sma", "sma"]
    a = get_agent("momentum", max_position=0.05).positions(bars, {"fast": [7], "slow": [30]})
    assert set(np.unique(a)) == {np.float32(-0.05), np.float32(0), np.float32(0.05)}


# ----------------------------------------------------------------------------- registry


class _Flat(Agent):
    name = "flat_for_tests"
    space = {"k": Int(1, 3, default=1)}
    default_grid = {"k": [1, 2]}

    def indicators(self, bars, params, xp=np):
        return bars.n_bars

    def signal(self, state, params, xp, t0, t1):
        return np.zeros((t1 - t0, len(params["k"])), np.float32)


def test_registry(tmp_path: Path) -> None:
    assert set(SHIPPED) <= set(list_agents())
    with pytest.raises(ValueError, match="unknown agent 'nope'"):
        get_agent("nope")
    register_agent(_Flat)
    assert "flat_for_tests" in list_agents() and isinstance(get_agent("flat_for_tests"), _Flat)
    assert get_agent_class(f"{_Flat.__module__}:_Flat") is _Flat
    f = tmp_path / "agent_file.py"
    f.write_text(
        "import numpy as np\nfrom quantarena.strategies import Agent, Int\n"
        "class Mine(Agent):\n    name = 'mine'\n    space = {'k': Int(1, 5)}\n"
        "    def indicators(self, bars, params, xp=np):\n        return None\n"
        "    def signal(self, state, params, xp, t0, t1):\n"
        "        return np.ones((t1 - t0, len(params['k'])), np.float32) * self.max_position\n"
    )
    mine = get_agent(f"{f}:Mine", max_position=0.2)
    assert mine.name == "mine" and mine.max_position == 0.2
    with pytest.raises(ValueError, match="not an Agent subclass"):
        get_agent(f"{f}:np")
    with pytest.raises(ValueError, match="cannot import"):
        get_agent("no_such_module_xyz:Thing")


@pytest.mark.gpu
@pytest.mark.parametrize("name", SHIPPED)
def test_gpu_positions_match_cpu(name: str, bars: BarPanel, max_abs_diff) -> None:
    """CuPy (device indicators / signals) vs NumPy + Numba. The device SMA/std use blocked
    prefix sums instead of the CPU's running sums, so a comparison of two values equal to
    within rounding may resolve differently: allow a handful of such bars."""
    cp = pytest.importorskip("cupy")
    ag = get_agent(name)
    p = ag.grid()
    cpu = ag.positions(bars, p, np)
    gpu = ag.positions(bars, p, cp)
    assert isinstance(gpu, cp.ndarray) and gpu.dtype == cp.float32 and gpu.shape == cpu.shape
    g = cp.asnumpy(gpu)
    max_abs_diff(f"strategy-{name}:positions", cpu, g)
    close = np.isclose(g, cpu, rtol=1e-4, atol=1e-6)
    assert close.mean() > 0.9999, f"{(~close).sum()} of {close.size} weights differ"
    src = ag.source(bars, p, cp)
    blocks = cp.concatenate(
        [src(a, min(a + 4096, bars.n_bars)) for a in range(0, bars.n_bars, 4096)]
    )
    assert cp.array_equal(blocks, gpu)


def test_documented_example_agent_matches_pandas(btc: pd.DataFrame, bars: BarPanel) -> None:
    """examples/my_agent.py (the docs' one-file agent) loads by path and computes Cutler's RSI."""
    path = Path(__file__).resolve().parent.parent / "examples" / "my_agent.py"
    ag = get_agent(f"{path}:RSIReversion", max_position=0.2)
    p = ag.grid(window="7,14", band="25,30")
    pos = ag.positions(bars, p)
    d = btc["close"].diff()
    for j in range(len(p["window"])):
        w, band = int(p["window"][j]), int(p["band"][j])
        gain, loss = d.clip(lower=0).rolling(w).mean(), (-d).clip(lower=0).rolling(w).mean()
        rsi = (100 * gain / (gain + loss)).where(gain + loss > 0, 50.0).to_numpy()
        ref = np.where(rsi < band, 0.2, np.where(rsi > 100 - band, -0.2, 0.0))
        ref[~np.isfinite(gain.to_numpy())] = 0.0
        diff = ~np.isclose(pos[:, j], ref)
        # the only disagreements: an RSI on the band itself, resolved differently by rounding
        on_band = (np.abs(rsi - band) < 1e-9) | (np.abs(rsi - (100 - band)) < 1e-9)
        assert on_band[diff].all() and diff.mean() < 0.005
        assert (pos[:, j] != 0).mean() > 0.05
