"""The every-bar check's incremental pass: a shipped agent's stream confirms a pass at every
bar; a user agent, a forced truncation or a stream that differs from the positions goes to the
truncation check, which keeps its detection power."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.strategies.audit import _first_diff, audit, has_shipped_stream
from quantarena.strategies.momentum import Momentum
from quantarena.strategies.registry import get_agent
from quantarena.strategies.streaming import ChannelStream

MINUTE = 60_000_000_000
SHIPPED = ["breakout", "buy_hold", "mean_reversion", "momentum", "vol_target"]


@pytest.fixture(scope="module")
def bars(btc_1m_csv: Path) -> BarPanel:
    df = pd.read_csv(btc_1m_csv, parse_dates=["timestamp"]).set_index("timestamp")
    return BarPanel.from_frame(df.iloc[:3_000], symbol="BTC-PERP")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_agents_pass_by_stream_and_by_truncation(name: str, bars: BarPanel) -> None:
    assert has_shipped_stream(get_agent(name))
    fast = audit(name, bars, checks=("every_bar",))
    assert fast.passed and fast.every_bar_method == "stream", fast.message()
    slow = audit(name, bars, checks=("every_bar",), every_bar_method="truncate")
    assert slow.passed and slow.every_bar_method == "truncate", slow.message()
    assert fast.every_bar_window == slow.every_bar_window


def test_user_subclasses_are_checked_by_truncation(bars: BarPanel) -> None:
    class MyMomentum(Momentum):
        name = "my_momentum"

    assert not has_shipped_stream(MyMomentum())
    res = audit(MyMomentum(), bars.select(slice(0, 800)), checks=("every_bar",))
    assert res.passed and res.every_bar_method == "truncate"
    with pytest.raises(ValueError, match="unknown every_bar_method"):
        audit("momentum", bars, every_bar_method="nope")


def test_a_leak_in_a_shipped_agent_falls_back_to_truncation_and_is_caught(
    bars: BarPanel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Momentum's positions made to peek at the next close on the top-of-hour bars (its
    stream unchanged): the stream differs, so the truncation check runs and names the bar."""
    ind, sig = Momentum.indicators, Momentum.signal

    def peeking_indicators(self, b, params, xp=np):
        c = b.close[:, 0]
        nxt = np.r_[c[1:], np.nan]  # close[t+1]: the future
        cheat = ((b.ts // MINUTE) % 60 == 0) & np.isfinite(nxt)
        return ind(self, b, params, xp), np.where(cheat, np.sign(nxt - c), np.nan)

    def peeking_signal(self, state, params, xp, t0, t1):
        base, peek = state
        w = np.asarray(sig(self, base, params, xp, t0, t1))
        pk = peek[t0:t1, None]
        return np.where(np.isfinite(pk), pk * self.max_position, w).astype(np.float32)

    monkeypatch.setattr(Momentum, "indicators", peeking_indicators)
    monkeypatch.setattr(Momentum, "signal", peeking_signal)
    res = audit("momentum", bars, checks=("every_bar",))
    assert not res.passed and res.check == "every_bar" and res.every_bar_method == "truncate"
    assert res.first_ts % (60 * MINUTE) == 0 and res.first_bar == res.cut


def test_a_stream_that_cannot_run_leaves_the_truncation_check(
    bars: BarPanel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_stream(self, params, n_assets, interval_ns):
        raise NotImplementedError("no stream here")

    monkeypatch.setattr(Momentum, "_stream", no_stream)
    res = audit("momentum", bars.select(slice(0, 800)), checks=("every_bar",))
    assert res.passed and res.every_bar_method == "truncate"


def test_first_diff_is_isclose_with_rtol_0() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 2, 7)).astype(np.float32)
    a[3, 1, 2] = np.nan
    a[4, 0, 0] = np.inf
    assert _first_diff(a, a.copy(), 1e-7) is None
    b = a.copy()
    b[10, 1, 3] += np.float32(1e-8)  # within atol: equal
    assert _first_diff(a, b, 1e-7) is None
    for where, v in [((20, 0, 5), 1e-3), ((7, 1, 1), np.nan), ((4, 0, 0), -np.inf)]:
        c = b.copy()
        c[where] = v if np.isnan(v) or np.isinf(v) else c[where] + v
        want = np.argwhere(~np.isclose(c, a, rtol=0, atol=1e-7, equal_nan=True))[0]
        assert _first_diff(a, c, 1e-7) == where == tuple(int(x) for x in want)


def test_channel_stream_matches_a_direct_scan_with_gaps() -> None:
    """The vectorised channel scan against the definition: max / min of the prior w bars,
    NaN while fewer than w exist or one of them is not finite."""
    rng = np.random.default_rng(1)
    T, C, windows = 300, 2, [1, 3, 17, 40]
    hi, lo = rng.normal(size=(T, C)), rng.normal(size=(T, C))
    hi[[50, 51, 200], 0] = np.nan
    lo[120, 1] = np.inf
    cs = ChannelStream(windows, C)
    for t in range(T):
        up, dn = cs.update(hi[t], lo[t])
        for j, w in enumerate(windows):
            for c in range(C):
                hs, ls = hi[t - w : t, c], lo[t - w : t, c]
                want_up = hs.max() if t >= w and np.isfinite(hs).all() else np.nan
                want_dn = ls.min() if t >= w and np.isfinite(ls).all() else np.nan
                assert np.array_equal([up[c, j], dn[c, j]], [want_up, want_dn], equal_nan=True)
