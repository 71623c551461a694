"""Bar and tick agents under one live director: a momentum agent on a replayed bar feed and a
market maker on the replayed Binance USD-M tick capture, as threads and as Ray actors. The
market maker's fills and final account are exactly its standalone tick backtest's; its daily
equity mark is where the director reads it, and every reallocation lists it; both traders
compact their finished days."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.engine.api import load_bars_any
from quantarena.engine.tick import core as C
from quantarena.engine.tick.events import load_events
from quantarena.live.events import read_events
from quantarena.live.feed import replay
from quantarena.live.service import LiveService, load_live_config
from quantarena.live.tick_feed import replay_ticks
from quantarena.live.tick_redis import read_tick_events
from quantarena.tick_backtest import tick_backtest

USDM = "BINANCE-USDM:BTCUSDT"
MM = {"gamma": 0.001, "k": 1.0, "horizon_s": 0.1, "min_half_spread": 0.5, "max_inventory": 10.0}
REDIS_URL = "redis://127.0.0.1:6379/0"
NS_PER_DAY = 86_400_000_000_000
CAPTURE_DAY = int(pd.Timestamp("2024-08-08", tz="UTC").value) // NS_PER_DAY
FIELDS = [i for i in range(C.N_AC) if i != C.A_NLOG]


@pytest.fixture(scope="module")
def store(usdm_store: Path) -> Path:
    return usdm_store


@pytest.fixture(scope="module")
def bars(sample_dir: Path):
    """Two weeks of Coinbase BTC/USD hourly bars, moved to 2024-08-01 .. 08-14 (around the
    tick capture's day) — real prices on the capture's calendar."""
    p = load_bars_any(sample_dir / "Coinbase_BTCUSD_1h.csv", None, "2018-01-01", "2018-01-15", None)
    shift = int(pd.Timestamp("2024-08-01", tz="UTC").value) - int(p.ts[0])
    return dataclasses.replace(p, ts=p.ts + shift)


@pytest.fixture(scope="module")
def backtest(store: Path):
    """The market maker's standalone tick backtest; the live cap max_position_qty 0.004 BTC
    = 2 order sizes of 0.002 is the backtest's max_inventory 2."""
    params = {k: [v] for k, v in {**MM, "max_inventory": 2.0}.items()}
    return tick_backtest(store, "market_maker", params, symbol=USDM, depth=False, max_log=100_000)


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    r = redis.Redis.from_url(REDIS_URL)
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    return r


def _config(prefix: str, out: Path, **over):
    return load_live_config({
        "redis": REDIS_URL, "redis_prefix": prefix, "feed": "bars", "tick_feed": "ticks",
        "out": str(out), "limits": {"max_drawdown": 0.5, "daily_loss": None, "max_orders": None},
        "allocation": {"every_days": 3, "capital": 100000.0,
                       "gates": {"min_sharpe": None, "min_win_rate": None, "max_drawdown": 0.5}},
        "agents": [
            {"name": "mom", "agent": "momentum", "params": {"fast": 12, "slow": 48}},
            {"name": "mm", "agent": "market_maker", "params": MM,
             "limits": {"max_position_qty": 0.004}},
        ],
        **over,
    })  # fmt: skip


def _mixed_run(r, prefix, out, store, bars, **over):
    for k in r.scan_iter(match=prefix + ":*"):
        r.delete(k)
    cfg = _config(prefix, out, **over)
    svc = LiveService(cfg, r)
    replay(r, svc.keys.feed("bars"), bars)
    replay_ticks(r, svc.keys.feed("ticks"), [load_events(store, USDM, depth=False)])
    reallocs = svc.run(idle_stop_s=2.0, poll_s=0.05)
    return cfg, svc, reallocs


def _check(r, cfg, svc, reallocs, bars, backtest):
    res = backtest
    # the market maker: every fill and the final account of the standalone tick backtest
    ev = read_tick_events(cfg.out, "mm")
    f = ev[ev.kind == "fill"]
    bf = res.state.fills(0)
    assert len(f) == len(bf["ts"]) > 100 and not f["id"].duplicated().any()
    np.testing.assert_array_equal(f["ts"].to_numpy(), bf["ts"])
    np.testing.assert_array_equal(f["price"].to_numpy(), bf["px"])
    np.testing.assert_array_equal(f["qty"].to_numpy(), bf["qty"])
    st = {k.decode(): v.decode() for k, v in r.hgetall(svc.keys.status("mm")).items()}
    assert float(st["equity"]) == res.state.equity()[0]
    assert float(st["fees"]) == res.state.account("fees")[0]
    assert json.loads(st["positions"]) == {USDM: res.state.account("position")[0]}
    # its daily mark, where the director reads bar agents' marks: the last sample of the day
    eq = ev[ev.kind == "equity"]
    daily = {int(k): float(v) for k, v in r.hgetall(svc.keys.daily("mm")).items()}
    assert daily == {CAPTURE_DAY: float(eq["equity"].iloc[-1])}
    np.testing.assert_array_equal(eq["equity"].to_numpy(), res.equity[:-1, 0])
    # the bar agent traded every bar
    assert int(r.hget(svc.keys.status("mom"), "bars")) == bars.n_bars
    # every 3 days of bar time from 08-01 (the earliest feed's first day): 08-04 .. 08-13;
    # the tick feed (one day, long over) holds nobody back once it is read
    first = int(bars.ts[0]) // NS_PER_DAY
    assert [x.day for x in reallocs] == [first + 3, first + 6, first + 9, first + 12]
    rec = [json.loads(v[b"json"]) for _, v in r.xrange(svc.keys.allocations())]
    assert [x["day"] for x in rec] == [x.day for x in reallocs]
    for x in rec:
        assert set(x["weights"]) == set(x["capital"]) == set(x["gates_failed"]) == {"mom", "mm"}
        assert "paper" in x["gates_failed"]["mm"] and x["weights"]["mm"] == 0.0
    # after the capture's day the director saw the market maker's one day of paper trading
    after = [x for x in reallocs if x.day > CAPTURE_DAY]
    assert after and all(x.leaderboard.loc["mm", "paper_days"] == 1 for x in after)
    assert all(x.leaderboard.loc["mom", "paper_days"] == x.day - first for x in reallocs)
    # both traders compacted their finished days: day files, batch files of the last day only
    # (the capture ends just past midnight: the market maker compacted 2024-08-08)
    mm_files = sorted(p.name[:12] for p in (Path(cfg.out) / "mm").glob("day-*"))
    assert mm_files == ["day-20240808"]
    last_day = int(bars.ts[-1]) // NS_PER_DAY
    files = sorted(p.name for p in (Path(cfg.out) / "mom").iterdir())
    days = sorted(n for n in files if n.startswith("day-"))
    stamp = pd.Timestamp(last_day * NS_PER_DAY, tz="UTC").strftime("%Y%m%d")
    assert days and all(n[4:12] < stamp for n in days), files  # finished days only
    for n in (n for n in files if n.startswith("events-")):
        d = pd.read_parquet(Path(cfg.out) / "mom" / n)["ts"].dropna() // NS_PER_DAY
        assert (d == last_day).any(), n  # a batch file left holds the last day's events
    assert not [n for n in files if n.endswith(".tmp")]
    assert not read_events(cfg.out, "mom").empty


def test_bar_and_tick_agents_under_one_director(
    redis_client, tmp_path, store, bars, backtest
) -> None:
    cfg, svc, reallocs = _mixed_run(redis_client, "qa-live-mixed-test", tmp_path / "live",
                                    store, bars, compact=True)  # fmt: skip
    try:
        _check(redis_client, cfg, svc, reallocs, bars, backtest)
    finally:
        for k in redis_client.scan_iter(match="qa-live-mixed-test:*"):
            redis_client.delete(k)


@pytest.mark.slow
def test_bar_and_tick_agents_as_ray_actors(redis_client, tmp_path, store, bars, backtest) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, namespace="quantarena-live-mixed-test")
    prefix = "qa-live-mixed-ray-test"
    try:
        cfg, svc, reallocs = _mixed_run(redis_client, prefix, tmp_path / "live", store, bars,
                                        ray=True, compact=True)  # fmt: skip
        _check(redis_client, cfg, svc, reallocs, bars, backtest)
        mm = ray.get_actor("paper:mm")
        np.testing.assert_array_equal(
            np.asarray(ray.get(mm.account.remote()))[FIELDS], backtest.state.AC[0, FIELDS]
        )
    finally:
        ray.shutdown()
        for k in redis_client.scan_iter(match=prefix + ":*"):
            redis_client.delete(k)


def test_config_errors_for_tick_agents() -> None:
    base = {"agents": [{"name": "mm", "agent": "market_maker"}]}
    with pytest.raises(ValueError, match=r"agents\[0\] \(mm\): a tick agent needs a tick feed"):
        load_live_config(base)
    with pytest.raises(ValueError, match=r"limits \['max_orders'\]: a tick agent takes"):
        load_live_config({"tick_feed": "t", "agents": [
            {"name": "mm", "agent": "market_maker", "limits": {"max_orders": 5}}]})  # fmt: skip
    with pytest.raises(ValueError, match=r"limits.max_drawdown must be a fraction > 0"):
        load_live_config({"tick_feed": "t", "agents": [
            {"name": "mm", "agent": "market_maker", "limits": {"max_drawdown": -0.1}}]})  # fmt: skip
    cfg = load_live_config({"tick_feed": "t", "agents": [
        {"name": "mm", "agent": "market_maker", "limits": {"max_drawdown": 0.1}}]})  # fmt: skip
    assert cfg.agents[0].limits["max_drawdown"] == 0.1  # the breakers apply to tick agents
    with pytest.raises(ValueError, match="trades two legs: set symbol: A,B"):
        load_live_config({"tick_feed": "t", "agents": [{"agent": "cross_venue_arb"}]})
    with pytest.raises(ValueError, match=r"limits \['max_position_qty'\]: an arbitrage agent"):
        load_live_config({"tick_feed": "t", "agents": [
            {"agent": "pairs_arb", "symbol": "A,B", "limits": {"max_position_qty": 1}}]})  # fmt: skip
    with pytest.raises(ValueError, match="compact must be true or false"):
        load_live_config({**base, "tick_feed": "t", "compact": "yes"})
    cfg = load_live_config({**base, "agents": [{"agent": "market_maker", "feed": "t2"}]})
    assert cfg.agents[0].feed == "t2" and cfg.compact is False  # off unless asked for
