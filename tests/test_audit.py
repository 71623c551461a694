"""The look-ahead audit: every shipped agent passes; planted leaks are caught and located."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.strategies import Agent, Int, list_agents
from quantarena.strategies.audit import CHECKS, audit, default_cuts, perturb_after

MINUTE = 60_000_000_000
SPARSE = ("truncate", "perturb", "stream")  # the checks at a few cut points


@pytest.fixture(scope="module")
def bars(btc_1m_csv: Path) -> BarPanel:
    df = pd.read_csv(btc_1m_csv, parse_dates=["timestamp"]).set_index("timestamp")
    return BarPanel.from_frame(df.iloc[:6_000], symbol="BTC-PERP")


class PeeksNextClose(Agent):
    """Leaks: long when the NEXT close is higher (close shifted by -1)."""

    name = "peeks_next_close"
    space = {"k": Int(1, 5, default=1)}
    default_grid = {"k": [1, 2]}

    def indicators(self, bars, params, xp=np):
        c = bars.close[:, 0]
        nxt = np.full_like(c, np.nan)
        nxt[:-1] = c[1:]  # close[t+1]: the future
        return np.nan_to_num(np.sign(nxt - c))

    def signal(self, state, params, xp, t0, t1):
        blk = state[t0:t1, None] * np.ones(len(params["k"]))
        return (blk * self.max_position).astype(np.float32)


class FullSampleMean(PeeksNextClose):
    """Leaks subtly: compares the close with the mean of the WHOLE series."""

    name = "full_sample_mean"

    def indicators(self, bars, params, xp=np):
        c = bars.close[:, 0]
        return np.sign(c - c.mean())


class IgnoresT0(PeeksNextClose):
    """Causal, but its blocks are wrong: always serves rows from bar 0."""

    name = "ignores_t0"

    def indicators(self, bars, params, xp=np):
        c = bars.close[:, 0]
        prev = np.r_[np.nan, c[:-1]]
        return np.nan_to_num(np.sign(c - prev))

    def signal(self, state, params, xp, t0, t1):
        return super().signal(state, params, xp, 0, t1 - t0)


class PeeksEveryNth(Agent):
    """A user agent with a PARTIAL leak: one-bar momentum (causal), except on bars whose open
    time is a multiple of ``every`` minutes, where it takes the sign of the NEXT close.
    ``every = 60``: it cheats on the top-of-hour bars only, 1 bar in 60."""

    name = "peeks_every_nth"
    space = {"k": Int(1, 5, default=1)}
    default_grid = {"k": [1, 2, 3]}
    every = 60

    def indicators(self, bars, params, xp=np):
        c = bars.close[:, 0]
        honest = np.sign(c - np.r_[np.nan, c[:-1]])
        nxt = np.r_[c[1:], np.nan]  # close[t+1]: the future
        cheat = (bars.ts // MINUTE) % self.every == 0
        return np.nan_to_num(np.where(cheat & np.isfinite(nxt), np.sign(nxt - c), honest))

    def signal(self, state, params, xp, t0, t1):
        blk = state[t0:t1, None] * np.ones(len(params["k"]))
        return (blk * self.max_position).astype(np.float32)


class PeeksOneIn1000(PeeksEveryNth):
    name = "peeks_one_in_1000"
    every = 1000


def brute_force_first_leak(agent: Agent, bars: BarPanel) -> int | None:
    """The first bar c whose weights on bars[:c+1] differ from the full run's (every prefix,
    the slow definition the every-bar check must agree with)."""
    full = np.asarray(agent.positions(bars, agent.grid()))
    for c in range(bars.n_bars):
        head = np.asarray(agent.positions(bars.select(slice(0, c + 1)), agent.grid()))
        if not np.allclose(head[c], full[c], rtol=0, atol=1e-7, equal_nan=True):
            return c
    return None


@pytest.mark.parametrize(
    "name", ["breakout", "buy_hold", "mean_reversion", "momentum", "vol_target"]
)
def test_every_shipped_agent_passes(name: str, bars: BarPanel) -> None:
    assert name in list_agents()
    res = audit(name, bars, n_cuts=5, seed=1)
    assert res.passed, res.message()
    assert res.verdict == "PASS" and res.first_bar is None and len(res.cuts) >= 4
    assert res.checks == list(CHECKS)


@pytest.mark.parametrize(("cls", "every"), [(PeeksEveryNth, 60), (PeeksOneIn1000, 1000)])
def test_a_leak_on_one_bar_in_n_is_caught_on_real_data(
    cls: type[PeeksEveryNth], every: int, bars: BarPanel
) -> None:
    res = audit(cls(), bars, seed=0)
    assert not res.passed and res.check == "every_bar"
    # the flagged bar is one the agent cheats on, and the cut is that bar
    assert res.first_ts % (every * MINUTE) == 0 and res.first_bar == res.cut
    assert res.first_ts == int(bars.ts[res.first_bar])
    assert res.first_bar >= bars.n_bars - 5_000  # the default span: the last 5,000 bars
    stamp = pd.Timestamp(res.first_ts, unit="ns", tz="UTC").isoformat()
    msg = res.message()
    assert f"bar {res.first_bar}" in msg and stamp in msg and "\n" not in msg


def test_the_hourly_leak_is_worth_a_lot(bars: BarPanel) -> None:
    """Why it matters: peeking on 1 bar in 60 adds about 15 to the annualised Sharpe ratio
    (before fees) of the same agent without the peek (computed here by hand: the weight of
    bar t earns the return of bar t+1)."""

    class NoPeek(PeeksEveryNth):
        every = 10**12  # never on a cheating bar in this data

    c = bars.close[:, 0]
    nxt = np.r_[c[1:] / c[:-1] - 1.0, 0.0]

    def sharpe(agent: Agent) -> float:
        pnl = np.asarray(agent.positions(bars, {"k": [1]}))[:, 0] * nxt
        return float(pnl.mean() / pnl.std() * np.sqrt(365 * 1440))

    assert sharpe(PeeksEveryNth()) - sharpe(NoPeek()) > 10


def test_the_sparse_cuts_alone_miss_the_partial_leak(bars: BarPanel) -> None:
    """Why the every-bar check exists: a few cut points rarely land on a cheating bar."""
    cuts = [1000, 2222, 3001, 4567]  # none is on the hour
    assert all(bars.ts[c] % (60 * MINUTE) != 0 for c in cuts)
    assert audit(PeeksEveryNth(), bars, cuts=cuts, checks=SPARSE).passed
    assert not audit(PeeksEveryNth(), bars, cuts=cuts).passed
    # the 1-in-1,000 leak slips through the spread cuts whatever their seed
    assert all(audit(PeeksOneIn1000(), bars, seed=s, checks=SPARSE).passed for s in range(20))


def test_every_bar_agrees_with_the_brute_force_definition(bars: BarPanel) -> None:
    small = bars.select(slice(0, 700))
    want = brute_force_first_leak(PeeksEveryNth(), small)
    assert want is not None and small.ts[want] % (60 * MINUTE) == 0
    res = audit(
        PeeksEveryNth(), small, checks=("every_bar",), window=50, block=7, every_bar_span=None
    )
    assert not res.passed and res.first_bar == want and res.cut == want
    # a causal agent passes with any window / block / horizon
    for w, b, h in [(1, 1, 1), (30, 5, 3), (200, 64, 16)]:
        r = audit("mean_reversion", small, checks=("every_bar",), window=w, block=b, horizon=h)
        assert r.passed, r.message()


def test_every_bar_checks_a_spread_of_parameter_sets(bars: BarPanel) -> None:
    class LeaksForK3(PeeksEveryNth):
        def signal(self, state, params, xp, t0, t1):
            w = super().signal(state, params, xp, t0, t1)
            honest = np.r_[0.0, np.sign(np.diff(self._c))][t0:t1] * self.max_position
            keep = np.asarray(params["k"]) != 3  # only k = 3 cheats
            return np.where(keep[None, :], honest[:, None], w).astype(np.float32)

        def indicators(self, bars, params, xp=np):
            self._c = bars.close[:, 0]
            return super().indicators(bars, params, xp)

    res = audit(LeaksForK3(), bars.select(slice(0, 2000)), checks=("every_bar",))
    assert not res.passed and res.params == {"k": 3} and res.param_index == 2


class LongWarmup(PeeksEveryNth):
    """The hourly peek of :class:`PeeksEveryNth`, but flat until 1,200 bars of its data exist
    (a causal warm-up, as a long moving average has)."""

    name = "long_warmup"

    def indicators(self, bars, params, xp=np):
        w = super().indicators(bars, params, xp)
        w[:1200] = 0.0
        return w


def test_the_window_widens_over_a_long_warm_up(bars: BarPanel) -> None:
    # a fixed 512-bar window sees only the flat warm-up in every short run: the leak hides
    fixed = audit(LongWarmup(), bars, checks=("every_bar",), max_window=512)
    assert fixed.passed and fixed.every_bar_window == 512
    res = audit(LongWarmup(), bars, checks=("every_bar",))
    assert res.every_bar_window == 2 * 1200  # twice the warm-up seen in the full run
    assert not res.passed and res.first_ts % (60 * MINUTE) == 0
    assert audit("momentum", bars, checks=("every_bar",)).every_bar_window == 512


def test_bad_every_bar_options_are_errors(bars: BarPanel) -> None:
    with pytest.raises(ValueError, match="window must be at least 1"):
        audit("momentum", bars, window=0)


def test_next_close_leak_fails_at_the_cut(bars: BarPanel) -> None:
    res = audit(PeeksNextClose(), bars, cuts=[1234, 4000], checks=SPARSE)
    assert not res.passed and res.verdict == "FAIL"
    assert res.check == "truncate" and res.cut == 1234
    # bar 1234 needs close[1235], missing when the data stop at 1234: that bar is flagged
    assert res.first_bar == 1234 and res.param_index == 0 and res.params == {"k": 1}
    assert res.first_ts == int(bars.ts[1234])
    assert res.got == 0.0 and abs(res.expected) == pytest.approx(0.1)
    msg = res.message()
    assert "FAIL" in msg and "bar 1234" in msg and "\n" not in msg


def test_full_sample_statistic_leak_fails(bars: BarPanel) -> None:
    res = audit(FullSampleMean(), bars, cuts=[3000], checks=SPARSE)
    assert not res.passed and res.check in ("truncate", "perturb")
    assert res.first_bar is not None and res.first_bar <= 3000
    res = audit(FullSampleMean(), bars, checks=("every_bar",))
    assert not res.passed and res.check == "every_bar"


def test_perturb_check_alone_catches_the_leak(bars: BarPanel) -> None:
    res = audit(PeeksNextClose(), bars, cuts=[2500], checks=("perturb",))
    assert not res.passed and res.check == "perturb" and res.cut == 2500
    assert res.first_bar == 2500  # the last bar before the altered future
    assert res.checks == ["perturb"]
    with pytest.raises(ValueError, match="unknown audit check"):
        audit("momentum", bars, checks=("nope",))


def test_block_inconsistency_fails_the_stream_check(bars: BarPanel) -> None:
    res = audit(IgnoresT0(), bars, cuts=[100, 2000])
    assert not res.passed and res.check == "stream"
    assert res.first_bar is not None and res.first_bar >= 997  # the first block is right


def test_perturb_after_keeps_the_past_and_stays_consistent(bars: BarPanel) -> None:
    alt = perturb_after(bars, 2999, seed=3)
    for k in ("open", "high", "low", "close", "volume"):
        a, b = getattr(alt, k), getattr(bars, k)
        assert np.array_equal(a[:3000], b[:3000])
        assert not np.array_equal(a[3000:], b[3000:])
    assert (alt.high >= np.maximum(alt.open, alt.close) - 1e-9).all()
    assert (alt.low <= np.minimum(alt.open, alt.close) + 1e-9).all()
    assert alt.open[3000, 0] == bars.close[2999, 0]  # the walk starts at the cut's close
    assert np.array_equal(perturb_after(bars, 2999, seed=3).close, alt.close)  # seeded


def test_default_cuts_are_inside_and_seeded() -> None:
    c = default_cuts(10_000, 8, seed=2)
    assert c == default_cuts(10_000, 8, seed=2) and len(c) >= 6
    assert all(0 <= x < 9_999 for x in c) and c == sorted(c)
    with pytest.raises(ValueError, match="outside"):
        audit(
            "buy_hold",
            BarPanel.from_arrays(np.arange(5) * 60_000_000_000, *[np.ones(5)] * 4),
            cuts=[10],
        )


def test_documented_example_agent_passes(bars: BarPanel) -> None:
    path = Path(__file__).resolve().parent.parent / "examples" / "my_agent.py"
    res = audit(f"{path}:RSIReversion", bars, n_cuts=4)
    assert res.passed, res.message()


# ---------------------------------------------------------------- the ML agent

ML_TINY = {"hidden": 4, "window": 2, "lookback": 300, "retrain_every": 200, "epochs": 2}


def test_ml_agent_is_audited_at_its_refit_bars(bars: BarPanel) -> None:
    """The ML agent really trains at every audited cut (small model, real data); its cuts
    include the refit bars, where a training leak shows."""
    pytest.importorskip("torch")
    from quantarena.strategies.ml import MLAgent

    small = bars.select(slice(0, 1000))
    spec = {**ML_TINY, "model": "mlp", "sizing": "scaled"}
    ag = MLAgent()
    refits = [300, 500, 700, 900]
    assert ag.audit_bars(small, ag.grid(**spec)) == [300, 499, 500, 899, 900]
    res = audit(ag, small, spec, n_cuts=2, seed=0)
    assert res.passed, res.message()
    assert "every_bar" not in res.checks and {300, 499, 500, 899, 900} <= set(res.cuts)
    assert len(ag.last_refits[0]) == len(refits)  # the last run trained at every refit

    class LeaksOneBar(MLAgent):
        """Trains the refit at r on sample t = r too: its label needs close[r+1]."""

        def _rows(self):
            return lambda r, lookback: (max(0, r + 1 - lookback), r + 1)

    bad = audit(LeaksOneBar(), small, spec, n_cuts=2, seed=0)
    assert not bad.passed and bad.check in ("truncate", "perturb")
    assert bad.first_bar in refits and bad.cut == bad.first_bar


# ---------------------------------------------------------------- several assets

DAY = 86_400 * 10**9


@pytest.fixture(scope="module")
def stocks() -> BarPanel:
    from quantarena.engine.api import load_bars_any

    path = Path(__file__).resolve().parent.parent / "data" / "sample" / "stocks_daily.csv"
    return load_bars_any(path)


class PeeksOnOneAsset(Agent):
    """Per-asset one-bar momentum; on one asset, on 1 day in 25, the sign of the NEXT close."""

    name = "peeks_on_one_asset"
    space = {"k": Int(1, 5, default=1)}
    default_grid = {"k": [1, 2]}
    asset = "NVDA"

    def indicators(self, bars, params, xp=np):
        c = bars.close
        prev = np.vstack([np.full((1, c.shape[1]), np.nan), c[:-1]])
        nxt = np.vstack([c[1:], np.full((1, c.shape[1]), np.nan)])
        w = np.sign(c - prev)
        j = bars.symbols.index(self.asset)
        cheat = ((bars.ts // DAY) % 25 == 0) & np.isfinite(nxt[:, j])
        w[:, j] = np.where(cheat, np.sign(nxt[:, j] - c[:, j]), w[:, j])
        return np.nan_to_num(w)

    def signal(self, state, params, xp, t0, t1):
        blk = state[t0:t1, :, None] * np.ones(len(params["k"]))
        return (blk * self.max_position).astype(np.float32)


@pytest.mark.parametrize(
    "name", ["breakout", "buy_hold", "mean_reversion", "momentum", "vol_target"]
)
def test_shipped_agents_pass_on_several_assets(name: str, stocks: BarPanel) -> None:
    res = audit(name, stocks, n_cuts=4, every_bar_params=4)
    assert res.passed, res.message()


def test_a_leak_on_one_asset_names_that_asset(stocks: BarPanel) -> None:
    assert stocks.n_assets == 6
    res = audit(PeeksOnOneAsset(), stocks)
    assert not res.passed and res.check == "every_bar" and res.asset == "NVDA"
    assert (res.first_ts // DAY) % 25 == 0 and res.first_bar == res.cut
