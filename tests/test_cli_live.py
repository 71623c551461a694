"""The live command line: feed replay, live trade, live status, kill and resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
