"""The live command line: feed replay, live trade, live status, kill and resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from quantarena.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from live_redis import RedisServer  # noqa: E402

if not __import__("shutil").which("redis-server"):
    pytest.skip("redis-server is not installed", allow_module_level=True)

runner = CliRunner()
PREFIX = "qa-live-cli-test"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = RedisServer(tmp_path_factory.mktemp("redis6396")).start()
    yield s
    s.stop()


def _run(server, *args):
    args = [*args, "--redis", server.url, "--redis-prefix", PREFIX]
    res = runner.invoke(app, args, env={"COLUMNS": "200"})
    return res


def test_feed_trade_status_kill_resume(server, btc_1m_csv, tmp_path):
    res = _run(server, "feed", "replay", "--store", str(btc_1m_csv), "--end", "2022-01-01 03:00",
               "--reset", "--feed", "btc")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "published 239 bar messages" in res.output  # 23:01 .. 02:59
    res = _run(server, "kill", "--agent", "bh", "--reason", "drill")
    assert res.exit_code == 0 and "kill switch set for bh: drill" in res.output
    res = _run(server, "live", "trade", "--agent", "buy_hold", "--name", "bh", "--feed", "btc",
               "--out", str(tmp_path), "--idle-stop", "0.3")  # fmt: skip
    assert res.exit_code == 0, res.output
    res = _run(server, "live", "status")
    assert res.exit_code == 0
    assert "bh" in res.output and "HALTED (kill set)" in res.output and "flat" in res.output
    res = _run(server, "resume")
    assert res.exit_code == 0 and "resumed all agents" in res.output
    res = _run(server, "feed", "replay", "--store", str(btc_1m_csv), "--start", "2022-01-01 03:00",
               "--end", "2022-01-01 03:10", "--feed", "btc", "--speed", "6000x")  # fmt: skip
    assert res.exit_code == 0, res.output
    res = _run(server, "live", "trade", "--agent", "buy_hold", "--name", "bh", "--feed", "btc",
               "--out", str(tmp_path), "--idle-stop", "0.3")  # fmt: skip
    res = _run(server, "live", "status")
    assert "ACTIVE" in res.output and "10.00%" in res.output
    res = _run(server, "live", "status", "--json")
    st = json.loads(res.output)["bh"]
    assert st["state"] == "ACTIVE" and st["kill"] is None and float(st["exposure"]) > 0.09


def test_bad_options_are_one_line_errors(server, btc_1m_csv):
    res = _run(server, "feed", "replay", "--store", str(btc_1m_csv), "--speed", "warp")
    assert res.exit_code == 2 and "--speed 'warp'" in res.output
    res = _run(server, "live", "trade", "--agent", "momentum", "--feed", "nothing-here")
    assert res.exit_code == 2 and "is empty" in res.output


def test_feed_replay_trades_from_a_store(server, sample_dir, tmp_path):
    from quantarena.data.read import load_trades
    from quantarena.data.store import Store
    from quantarena.live.messages import TradeMessage, decode
    from quantarena.live.redis_io import LiveKeys, connect

    store = tmp_path / "store"
    Store(store).ingest(sample_dir / "XRPETH-aggTrades-2019-10-11_13.csv")
    res = _run(server, "feed", "replay", "--store", str(store), "--symbols", "XRPETH", "--trades",
               "--feed", "xrp-trades", "--reset")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "published 12477 trade messages" in res.output
    r = connect(server.url)
    msgs = [decode(f) for _, f in r.xrange(LiveKeys(PREFIX).feed("xrp-trades"))]
    assert all(isinstance(m, TradeMessage) for m in msgs)
    tr = load_trades(store, "XRPETH")
    assert [m.seq for m in msgs] == list(range(len(tr.ts)))
    np.testing.assert_array_equal([m.price for m in msgs], tr.price)
    np.testing.assert_array_equal([m.ts for m in msgs], tr.ts)
    sides = {"buy": 1, "sell": -1, "": 0}
    np.testing.assert_array_equal([sides[m.side] for m in msgs], tr.side)
    res = _run(server, "feed", "replay", "--store", str(store), "--trades", "--feed", "x")
    assert res.exit_code == 2 and "--trades needs --symbols" in res.output
