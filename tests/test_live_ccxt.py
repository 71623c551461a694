"""The ccxt live source against a local fake exchange serving recorded Binance responses:
closed candles only, errors and rate limits retried, gaps and reordering reported."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ccxt")

from quantarena.live.ccxt_source import CcxtSource  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from fake_exchange import FakeBinance  # noqa: E402


@pytest.fixture
def fake():
    f = FakeBinance()
    yield f
    f.close()


def _source(fake, **kw):
    slept: list[float] = []
    src = CcxtSource.from_id("binance", ["ADA/BTC"], api_url=fake.url, timeframe="1m",
                             sleep=slept.append, **kw)  # fmt: skip
    return src, slept


def test_closed_candles_only_with_recorded_prices(fake):
    src, _ = _source(fake, since_ms=fake.rows[0][0])
    fake.visible = 4  # 4 candles, the 4th still forming
    got = src.poll()
    assert [t for t, _ in got] == [r[0] for r in fake.rows[:3]]
    ts, row = got[0]
    o, h, lo, c, v = row[:, 0]
    rec = fake.rows[0]
    assert (o, h, lo, c, v) == tuple(float(x) for x in rec[1:6])  # exactly the recorded numbers
    fake.visible = 6
    got = src.poll()
    assert [t for t, _ in got] == [r[0] for r in fake.rows[3:5]]  # no candle twice
    assert src.reports == []


def test_rate_limits_and_errors_are_retried_with_backoff(fake):
    src, slept = _source(fake, since_ms=fake.rows[0][0])
    fake.visible = 5
    fake.script = ["429", "503", "429"]
    got = src.poll()
    assert len(got) == 4
    assert slept == [0.5, 1.0, 2.0]  # exponential backoff
    kinds = [r.split(": ")[1].split(" (")[0] for r in src.reports]
    assert kinds == ["rate limited", "network error", "rate limited"]


def test_gives_up_with_a_one_line_error(fake):
    src, _ = _source(fake, since_ms=fake.rows[0][0], max_retries=2)
    fake.visible = 5
    fake.script = ["503", "503"]
    with pytest.raises(ConnectionError, match="ADA/BTC: network error 2 times"):
        src.poll()


def test_gap_between_the_two_days_is_reported(fake):
    src, _ = _source(fake, since_ms=fake.rows[0][0])
    fake.visible = 10  # the whole first day (9 closed)
    assert len(src.poll()) == 9
    fake.visible = 10 + 4  # the exchange jumps to the next day's candles
    got = src.poll()
    first_next = fake.rows[10][0]
    assert [t for t, _ in got][0] == fake.rows[9][0]  # the 27th's last candle closed
    assert first_next in [t for t, _ in got]
    gaps = [r for r in src.reports if "gap" in r]
    n = (first_next - fake.rows[9][0]) // 60000 - 1
    assert gaps == [f"binance: gap of {n} bar(s) before {first_next} (exchange time, ms)"]


def test_reordered_and_stale_candles_are_not_published_twice(fake):
    src, _ = _source(fake, since_ms=fake.rows[0][0])
    fake.visible = 5
    fake.script = ["reorder"]
    got = src.poll()  # ccxt sorts the response: used in order
    assert [t for t, _ in got] == [r[0] for r in fake.rows[:4]]
    fake.visible = 7
    fake.script = ["stale-revised"]
    got = src.poll()
    assert [t for t, _ in got] == [r[0] for r in fake.rows[4:6]]  # only the new ones
    assert src.reports == []  # ccxt drops candles before `since`; none is sent twice


def test_published_messages_reach_a_paper_trader(fake, tmp_path):
    """The source's messages are the feed's: a trader reads them like a replay."""
    import shutil

    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    from live_redis import RedisServer

    from quantarena.live.ccxt_source import run_source
    from quantarena.live.redis_io import LiveKeys, connect
    from quantarena.live.redis_trader import RedisTrader, read_events
    from quantarena.live.trader import PaperTrader
    from quantarena.strategies.registry import get_agent

    srv = RedisServer(tmp_path / "redis").start()
    try:
        r = connect(srv.url)
        keys = LiveKeys("qa-live-ccxt-test")
        src, _ = _source(fake, since_ms=fake.rows[0][0])
        fake.visible = 10
        n1 = run_source(r, keys.feed("ada"), src, polls=1, sleep=lambda s: None)
        fake.visible = 21
        n2 = run_source(r, keys.feed("ada"), src, polls=1, first_seq=n1, sleep=lambda s: None)
        tr = PaperTrader("bh", get_agent("buy_hold"), None, ["ADABTC"], 60_000_000_000)
        rt = RedisTrader(r, tr, "ada", tmp_path / "out", keys=keys)
        rt.run(idle_stop_s=0.3)
        ev = read_events(tmp_path / "out", "bh")
        assert (ev.kind == "gap").sum() == 1  # the trader sees the day's gap too
        assert n1 + n2 == 20 and rt.trader.exchange.shares[0] > 0
        np.testing.assert_allclose(
            float(r.hget(keys.status("bh"), "bars")), rt.trader.exchange.n_bars
        )
    finally:
        srv.stop()


def test_feed_exchange_command(fake, tmp_path):
    import shutil

    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    from live_redis import RedisServer
    from typer.testing import CliRunner

    from quantarena.cli import app

    srv = RedisServer(tmp_path / "redis").start()
    try:
        fake.visible = 8
        res = CliRunner().invoke(app, [
            "feed", "exchange", "--symbols", "ADA/BTC", "--api-url", fake.url, "--polls", "1",
            "--since", "2021-11-27 00:00", "--feed", "ada", "--redis", srv.url,
            "--redis-prefix", "qa-live-ccxt-cli",
        ])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "published 7 bar messages of ADABTC to qa-live-ccxt-cli:feed:ada" in res.output
    finally:
        srv.stop()
