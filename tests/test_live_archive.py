"""The Parquet archive of a Redis paper trader, and its Redis round trips per message.

Redis holds every event from its commit on; the Parquet files are written when due. A trader
that dies with committed events not yet archived leaves them to its restart, which archives
them from the events stream: the Parquet events then equal an undisturbed run's, once each.
A private redis-server (port 6397, append-only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from quantarena.engine.api import load_bars_any
from quantarena.live.feed import replay
from quantarena.live.redis_io import LiveKeys, connect
from quantarena.live.redis_trader import RedisTrader, read_events
from quantarena.live.risk import RiskLimits
from quantarena.live.trader import PaperTrader
from quantarena.strategies.registry import get_agent

sys.path.insert(0, str(Path(__file__).parent))
from live_redis import RedisServer  # noqa: E402

pytest.importorskip("redis")
if not __import__("shutil").which("redis-server"):
    pytest.skip("redis-server is not installed", allow_module_level=True)

PARAMS = {"fast": 5, "slow": 20, "ma": "sma"}
LOOSE = RiskLimits(
    max_position=1.0, max_gross=None, daily_loss=None, max_drawdown=None, max_orders=None
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = RedisServer(tmp_path_factory.mktemp("redis6397"), port=6397).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bars(btc_1m_csv: Path):
    return load_bars_any(btc_1m_csv, None, None, None, None).select(slice(0, 800))


def _trader(bars, name="a1"):
    return PaperTrader(name, get_agent("momentum"), PARAMS, bars.symbols, bars.interval_ns,
                       limits=LOOSE)  # fmt: skip


def _setup(server, prefix, bars):
    r = connect(server.url)
    keys = LiveKeys(prefix)
    for k in r.scan_iter(match=keys.prefix + "*"):
        r.delete(k)
    replay(r, keys.feed("f"), bars)
    return r, keys


def _fills(df):
    f = df[df.kind == "fill"]
    assert not f["id"].duplicated().any(), "a fill was archived twice"
    return f.set_index("id")[["bar", "qty", "price", "fee"]].sort_index()


def test_restart_archives_what_a_dead_trader_had_committed(server, bars, tmp_path):
    r, keys = _setup(server, "qa-archive-plain", bars)
    plain = RedisTrader(r, _trader(bars), "f", tmp_path / "plain", keys=keys, archive_s=0)
    assert plain.run(idle_stop_s=0.3) == bars.n_bars
    want = _fills(read_events(tmp_path / "plain", "a1"))
    assert len(want) > 10

    r, keys = _setup(server, "qa-archive-dead", bars)
    out = tmp_path / "dead"
    t1 = RedisTrader(r, _trader(bars), "f", out, keys=keys, batch=9, archive_s=1e9)
    t1.flush_archive = lambda: None  # dies before any archive file: a SIGKILL's effect
    t1._archive_day = t1.clock_day()  # (and no day flush either)
    assert t1.run(max_messages=500) == 500
    assert not list((out / "a1").glob("events-*.parquet"))
    redis_ids = [json.loads(v[b"json"])["id"] for _, v in r.xrange(keys.events("a1"))]
    assert sum(i in want.index for i in redis_ids) > 0  # the fills are durable in Redis
    t2 = RedisTrader(r, _trader(bars), "f", out, keys=keys, batch=9, archive_s=1e9)
    assert len(t2._archive) > 0  # what t1 committed, read back from the events stream
    assert t2.run(idle_stop_s=0.3) == bars.n_bars - 500
    got = _fills(read_events(out, "a1"))
    assert got.equals(want)
    assert t2.trader.exchange.equity == plain.trader.exchange.equity
    # one file per UTC day of bars at most (plus the restart's), not one per batch
    assert len(list((out / "a1").glob("events-*.parquet"))) <= 3


def test_one_round_trip_to_read_and_one_to_commit(server, bars, tmp_path):
    """Per message (one per batch, as a trader that keeps up reads them): XREADGROUP and the
    kill switch in one pipeline, the commit in one MULTI/EXEC."""
    import redis

    r, keys = _setup(server, "qa-archive-trips", bars.select(slice(0, 60)))
    rt = RedisTrader(r, _trader(bars), "f", tmp_path, keys=keys, batch=1)
    sends = []
    orig = redis.connection.Connection.send_packed_command

    def counted(self, *a, **k):
        sends.append(1)
        return orig(self, *a, **k)

    redis.connection.Connection.send_packed_command = counted
    try:
        assert rt.run(max_messages=60) == 60
    finally:
        redis.connection.Connection.send_packed_command = orig
    # 60 reads + 60 commits, and one read of the (empty) pending entries first
    assert len(sends) == 2 * 60 + 1
    r.set(keys.kill(), "drill")  # the switch read with the next message still halts it
    rt2 = RedisTrader(r, _trader(bars), "f", tmp_path, keys=keys, batch=1)
    replay(r, keys.feed("f"), bars.select(slice(60, 62)), first_seq=60)
    rt2.run(max_messages=1)
    assert r.hget(keys.status("a1"), "state") == b"HALTED"
