"""Paper traders on Redis Streams: parity through the feed, restarts, Redis restarts, kill
switch, gaps. A private redis-server on port 6396 (append-only, fsync always)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from quantarena.engine.api import load_bars_any
from quantarena.engine.costs import DEFAULT_COSTS
from quantarena.live.feed import parse_speed, replay
from quantarena.live.messages import encode_bars
from quantarena.live.redis_io import LiveKeys, connect
from quantarena.live.redis_trader import RedisTrader, read_events
from quantarena.live.risk import RiskLimits
from quantarena.live.trader import PaperTrader
from quantarena.strategies.registry import get_agent
from quantarena.strategies.runner import run_population

sys.path.insert(0, str(Path(__file__).parent))
from live_redis import RedisServer  # noqa: E402

pytest.importorskip("redis")
if not __import__("shutil").which("redis-server"):
    pytest.skip("redis-server is not installed", allow_module_level=True)

N_BARS = 1200
PARAMS = {"fast": 5, "slow": 20, "ma": "sma"}
LOOSE = RiskLimits(
    max_position=1.0, max_gross=None, daily_loss=None, max_drawdown=None, max_orders=None
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = RedisServer(tmp_path_factory.mktemp("redis6396")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bars(btc_1m_csv: Path):
    return load_bars_any(btc_1m_csv, None, None, None, None).select(slice(0, N_BARS))


@pytest.fixture(scope="module")
def reference(bars):
    agent = get_agent("momentum")
    ref = run_population(agent, bars, {k: [v] for k, v in PARAMS.items()}, costs=DEFAULT_COSTS,
                         record=("equity",))  # fmt: skip
    return np.asarray(ref.equity)[:, 0], ref.account()


@pytest.fixture
def keys(request):
    return LiveKeys(f"qa-live-test-{request.node.name[:40]}")


def _trader(bars, name="m1"):
    return PaperTrader(
        name, get_agent("momentum"), PARAMS, bars.symbols, bars.interval_ns, limits=LOOSE
    )


def _publish(server, keys, bars, feed="btc"):
    r = connect(server.url)
    r.delete(keys.feed(feed))
    assert replay(r, keys.feed(feed), bars) == bars.n_bars
    return r


def _fills(df):
    f = df[df.kind == "fill"]
    assert not f["id"].duplicated().any(), "a fill was recorded twice"
    return f.set_index("id")[["bar", "qty", "price", "fee"]].sort_index()


def _redis_fills(r, keys, name):
    out = [json.loads(v[b"json"]) for _, v in r.xrange(keys.events(name))]
    ids = [e["id"] for e in out if e["kind"] == "fill"]
    assert len(ids) == len(set(ids)), "a fill was recorded twice in Redis"
    return sorted(ids)


def _undisturbed(server, bars, tmp_path):
    keys = LiveKeys("qa-live-test-undisturbed")
    r = _publish(server, keys, bars)
    for k in r.scan_iter(match=keys.prefix + "live:*"):
        r.delete(k)
    rt = RedisTrader(r, _trader(bars), "btc", tmp_path / "undisturbed", keys=keys, batch=50)
    assert rt.run(idle_stop_s=0.5) == bars.n_bars
    return _fills(read_events(tmp_path / "undisturbed", "m1"))


def test_speed_option():
    assert parse_speed("600x") == 600.0 and parse_speed("max") is None
    with pytest.raises(ValueError, match="--speed 'fast-ish'"):
        parse_speed("fast-ish")


def test_trader_through_redis_equals_backtest(server, keys, bars, reference, tmp_path):
    r = _publish(server, keys, bars)
    rt = RedisTrader(r, _trader(bars), "btc", tmp_path, keys=keys, batch=64)
    assert rt.run(idle_stop_s=0.5) == N_BARS
    eq, acc = reference
    assert rt.trader.exchange.equity == eq[-1]
    assert rt.trader.exchange.cash == acc.cash
    st = r.hgetall(keys.status("m1"))
    assert float(st[b"equity"]) == eq[-1] and st[b"state"] == b"ACTIVE"
    # every entry acknowledged; fills durable in Redis and Parquet, once each
    assert r.xpending(keys.feed("btc"), "agent:m1")["pending"] == 0
    fills = _fills(read_events(tmp_path, "m1"))
    assert len(fills) > 10
    assert sorted(fills.index) == _redis_fills(r, keys, "m1")


def test_killed_trader_restarts_without_losing_or_doubling_fills(
    server, keys, bars, reference, tmp_path
):
    """SIGKILL a trader process mid-stream, start another: same fills, same equity."""
    base = _undisturbed(server, bars, tmp_path)
    r = _publish(server, keys, bars)
    out = tmp_path / "killed"
    script = f"""
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
from quantarena.engine.api import load_bars_any
from quantarena.live.redis_io import LiveKeys, connect
from quantarena.live.redis_trader import RedisTrader
from test_live_redis import _trader, N_BARS
bars = load_bars_any({str(Path(__file__).parents[1] / "data/sample/btc-perp-20211231-20220201_1m.csv")!r}, None, None, None, None).select(slice(0, N_BARS))
rt = RedisTrader(connect({server.url!r}), _trader(bars), "btc", {str(out)!r}, keys=LiveKeys({keys.prefix!r}), batch=7)
rt.run(idle_stop_s=1.0)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    p = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        n = r.hget(keys.status("m1"), "bars")
        if n is not None and int(n) >= 400:
            break
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    done_before = int(r.hget(keys.status("m1"), "bars"))
    assert 400 <= done_before < N_BARS, "the kill must land mid-stream"
    p2 = subprocess.run([sys.executable, "-c", script], env=env, timeout=300)
    assert p2.returncode == 0
    eq, _ = reference
    assert float(r.hget(keys.status("m1"), "equity")) == eq[-1]
    got = _fills(read_events(out, "m1"))
    assert got.equals(base)
    assert sorted(got.index) == _redis_fills(r, keys, "m1")


def test_crash_between_parquet_and_commit_is_redone_once(server, keys, bars, reference, tmp_path):
    r = _publish(server, keys, bars)
    rt = RedisTrader(r, _trader(bars), "btc", tmp_path, keys=keys, batch=25)
    calls = {"n": 0}

    def boom():
        calls["n"] += 1
        if calls["n"] == 9:
            raise RuntimeError("crash before EXEC")

    rt.fail_before_commit = boom
    with pytest.raises(RuntimeError, match="crash before EXEC"):
        rt.run(idle_stop_s=0.5)
    assert r.xpending(keys.feed("btc"), "agent:m1")["pending"] == 25  # the batch is pending
    rt2 = RedisTrader(r, _trader(bars), "btc", tmp_path, keys=keys, batch=25)
    assert rt2.trader.exchange.n_bars == 200
    rt2.run(idle_stop_s=0.5)
    eq, _ = reference
    assert rt2.trader.exchange.equity == eq[-1]
    _fills(read_events(tmp_path, "m1"))
    _redis_fills(r, keys, "m1")


def test_redis_restart_under_a_running_trader(server, keys, bars, reference, tmp_path):
    base = _undisturbed(server, bars, tmp_path)
    r = _publish(server, keys, bars)
    rt = RedisTrader(r, _trader(bars), "btc", tmp_path / "rr", keys=keys, batch=10)
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("n", rt.run(idle_stop_s=3.0)))
    th.start()
    while int(r.hget(keys.status("m1"), "bars") or 0) < 300:
        time.sleep(0.005)
    server.kill()  # SIGKILL under the trader
    time.sleep(0.5)
    server.start()
    th.join(120)
    assert not th.is_alive()
    assert rt.reconnects >= 1
    eq, _ = reference
    r = connect(server.url)
    assert rt.trader.exchange.equity == eq[-1]
    assert float(r.hget(keys.status("m1"), "equity")) == eq[-1]
    got = _fills(read_events(tmp_path / "rr", "m1"))
    assert got.equals(base)


def test_kill_switch_through_redis_and_explicit_resume(server, keys, bars, tmp_path):
    r = _publish(server, keys, bars.select(slice(0, 300)))
    tr = PaperTrader("bh", get_agent("buy_hold"), None, bars.symbols, bars.interval_ns)
    rt = RedisTrader(r, tr, "btc", tmp_path, keys=keys, batch=1)
    rt.run(max_messages=100)
    assert rt.trader.exchange.shares[0] > 0
    r.set(keys.kill(), "drill")  # quantarena kill
    rt.run(max_messages=2)  # the first message halts and orders flat, the next fills it
    assert rt.trader.exchange.shares[0] == 0.0
    assert r.hget(keys.status("bh"), "state") == b"HALTED"
    rt.run(max_messages=50)
    assert rt.trader.exchange.shares[0] == 0.0  # nothing trades around the halt
    r.delete(keys.kill())
    rt.run(max_messages=5)
    assert r.hget(keys.status("bh"), "state") == b"HALTED"  # no resume without `resume`
    r.incr(keys.resume())  # quantarena resume
    rt.run(max_messages=5)
    assert r.hget(keys.status("bh"), "state") == b"ACTIVE"
    assert rt.trader.exchange.shares[0] > 0
    ev = read_events(tmp_path, "bh")
    assert (ev.kind == "rejection").sum() >= 50
    assert ev[ev.kind == "rejection"]["reason"].str.startswith("halted (kill switch: drill)").all()


def test_gaps_are_reported_and_out_of_order_refused(server, keys, bars, tmp_path):
    r = connect(server.url)
    s = keys.feed("gappy")
    r.delete(s)
    # (seq, bar): bars 3-4 missing (seq 3-4 too), then bar 4 arrives late
    for seq, t in [(0, 0), (1, 1), (2, 2), (5, 5), (6, 6), (4, 4), (7, 7)]:
        fields = encode_bars(seq, int(bars.ts[t]), bars.interval_ns, bars.symbols, bars.open[t],
                             bars.high[t], bars.low[t], bars.close[t], bars.volume[t])  # fmt: skip
        r.xadd(s, fields)
    tr = PaperTrader("g", get_agent("buy_hold"), None, bars.symbols, bars.interval_ns)
    rt = RedisTrader(r, tr, "gappy", tmp_path, keys=keys)
    rt.run(idle_stop_s=0.3)
    ev = read_events(tmp_path, "g")
    gaps = ev[ev.kind == "gap"]["reason"].tolist()
    assert any("2 bar(s) missing" in g for g in gaps)
    refused = ev[ev.kind == "refused"]["reason"].tolist()
    assert len(refused) == 1 and "out of order" in refused[0]
    assert any("messages 3..4 missing" in g for g in gaps)
    assert rt.trader.exchange.n_bars == 8  # 0..7 with 3 and 4 masked
