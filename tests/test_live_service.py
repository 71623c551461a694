"""The live service: paper traders plus the weekly director, on real data through Redis;
a paper actor killed with ray.kill and restarted."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from quantarena.engine.api import load_bars_any
from quantarena.live.feed import replay
from quantarena.live.redis_io import connect
from quantarena.live.redis_trader import read_events
from quantarena.live.service import LiveService, load_live_config

sys.path.insert(0, str(Path(__file__).parent))
from live_redis import RedisServer  # noqa: E402

if not __import__("shutil").which("redis-server"):
    pytest.skip("redis-server is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = RedisServer(tmp_path_factory.mktemp("redis6396")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def hourly(sample_dir: Path):
    """Coinbase BTC/USD hourly bars, 2018-01 .. 2018-03 (about 9 weeks)."""
    return load_bars_any(
        sample_dir / "Coinbase_BTCUSD_1h.csv", None, "2018-01-01", "2018-03-05", None
    )


def _config(server, tmp_path, prefix, **over):
    d = {
        "redis": server.url,
        "redis_prefix": prefix,
        "feed": "btc1h",
        "out": str(tmp_path / "live"),
        "limits": {"max_drawdown": 0.5, "daily_loss": None, "max_orders": None},
        "allocation": {"every_days": 3, "capital": 100000.0,
                       "gates": {"min_sharpe": 0.0, "min_win_rate": None, "max_drawdown": 0.5}},
        "agents": [
            {"name": "mom", "agent": "momentum", "params": {"fast": 12, "slow": 48}},
            {"name": "mr", "agent": "mean_reversion", "params": {"window": 48}},
            {"name": "brk", "agent": "breakout", "params": {"window": 48, "exit_window": 24}},
            {"name": "vt", "agent": "vol_target", "params": {"lookback": 48, "vol_window": 48}},
            {"name": "hold", "agent": "buy_hold"},
        ],
        **over,
    }  # fmt: skip
    return load_live_config(d)


def test_config_errors_name_the_key(server, tmp_path):
    with pytest.raises(ValueError, match="unknown key 'agnts'"):
        load_live_config({"agnts": []})
    with pytest.raises(ValueError, match=r"agents\[0\] \(x\).*fast"):
        load_live_config({"agents": [{"name": "x", "agent": "momentum", "params": {"fast": 0}}]})


def test_five_agents_reallocated_every_3_days_with_the_paper_gate(server, tmp_path, hourly):
    prefix = "qa-live-svc-test"
    r = connect(server.url)
    for k in r.scan_iter(match=prefix + ":*"):
        r.delete(k)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = _config(server, tmp_path, prefix, mlflow={"uri": uri, "experiment": "live-test"})
    svc = LiveService(cfg, r)
    replay(r, svc.keys.feed("btc1h"), hourly)
    reallocs = svc.run(idle_stop_s=1.0, poll_s=0.05)
    days = hourly.n_bars // 24
    # every 3 days of bar time: on day d (once every trader has a bar of day d), using days
    # < d; the feed's last day (62) is never complete, so the last one is on day 60
    assert len(reallocs) == (days - 1) // 3
    # days 3 and 6: less than 7 days of paper trading, no capital for anyone
    for res in reallocs[:2]:
        assert all(w == 0.0 for w in res.weights.values())
        assert all("paper" in g.failed for g in res.gates.values())
    assert all("paper" not in g.failed for g in reallocs[2].gates.values())  # day 9
    assert any(w > 0 for res in reallocs[2:] for w in res.weights.values())
    later = reallocs[-1]
    assert all("paper" not in g.failed for g in later.gates.values())
    # weights are the allocator's: within caps, cash kept, zero for gated-out agents
    for res in reallocs:
        w = np.array(list(res.weights.values()))
        assert (w >= 0).all() and (w <= 0.5 + 1e-9).all() and w.sum() <= 1.0 + 1e-9
        for n, g in res.gates.items():
            if not g.passed and set(g.failed) & {"sharpe", "max_drawdown", "paper"}:
                assert res.weights[n] == 0.0
    cap = {s.name: r.get(svc.keys.capital(s.name)) for s in cfg.agents}
    assert sum(float(v) for v in cap.values()) == pytest.approx(sum(later.capital.values()))
    rec = [json.loads(v[b"json"]) for _, v in r.xrange(svc.keys.allocations())]
    assert len(rec) == len(reallocs)
    # each reallocation is a step of one MLflow run, with the leaderboard
    import mlflow

    client = mlflow.tracking.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("live-test").experiment_id])
    hist = client.get_metric_history(run.info.run_id, "weight.mom")
    assert [m.step for m in hist] == list(range(len(reallocs)))
    assert [m.value for m in hist] == [res.weights["mom"] for res in reallocs]
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "leaderboard")}
    assert f"leaderboard/step-{len(reallocs) - 1:04d}.csv" in arts
    # each agent traded the whole feed, every fill recorded once
    for s in cfg.agents:
        assert int(r.hget(svc.keys.status(s.name), "bars")) == hourly.n_bars
        ev = read_events(cfg.out, s.name)
        assert not ev[ev.kind == "fill"]["id"].duplicated().any()


def test_paper_actor_killed_with_ray_kill_restarts_without_loss(server, tmp_path, hourly):
    """ray.kill a paper actor mid-stream, start it again: same fills, same final equity."""
    ray = pytest.importorskip("ray")
    from quantarena.actors.paper import start_paper_actor
    from quantarena.live.service import make_trader

    prefix = "qa-live-ray-test"
    r = connect(server.url)
    for k in r.scan_iter(match=prefix + ":*"):
        r.delete(k)
    cfg = _config(server, tmp_path, prefix, batch=5)
    spec = cfg.agents[0]
    svc = LiveService(cfg, r)
    replay(r, svc.keys.feed("btc1h"), hourly)
    # the undisturbed run, in this process
    from quantarena.live.redis_io import LiveKeys
    from quantarena.live.redis_trader import RedisTrader

    bkeys = LiveKeys(prefix + "-base")
    for k in r.scan_iter(match=bkeys.prefix + "*"):
        r.delete(k)
    replay(r, bkeys.feed("btc1h"), hourly)
    base_tr = make_trader(spec, hourly.symbols, hourly.interval_ns, cfg.limits)
    base = RedisTrader(r, base_tr, "btc1h", tmp_path / "base", keys=bkeys)
    base.run(idle_stop_s=0.5)
    import socket
    import urllib.request

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        mport = sk.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, namespace="quantarena-live-test",
             _metrics_export_port=mport, _system_config={"metrics_report_interval_ms": 500})  # fmt: skip
    try:
        a = start_paper_actor(cfg, spec, hourly.symbols, hourly.interval_ns)
        ref = a.run.remote(idle_stop_s=5.0)
        while int(r.hget(svc.keys.status(spec.name), "bars") or 0) < 300:
            time.sleep(0.002)
        ray.kill(a)
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(ref)
        stopped = int(r.hget(svc.keys.status(spec.name), "bars"))
        assert 300 <= stopped < hourly.n_bars
        a2 = start_paper_actor(cfg, spec, hourly.symbols, hourly.interval_ns)
        ref2 = a2.run.remote(idle_stop_s=3.0)
        # the paper actor's Ray metrics, scraped from Ray's metrics endpoint while it trades
        # (Ray prefixes application metrics with ray_; counters end in _total)
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(seen) < 4:
            try:
                url = f"http://127.0.0.1:{mport}/metrics"
                text = urllib.request.urlopen(url, timeout=5).read().decode()
            except OSError:
                text = ""
            for x in text.splitlines():
                if x.startswith("ray_quantarena_paper_") and 'agent="mom"' in x:
                    name = x.split("{")[0]
                    if name in ("ray_quantarena_paper_fills_total", "ray_quantarena_paper_equity",
                                "ray_quantarena_paper_exposure",
                                "ray_quantarena_paper_latency_seconds_count"):  # fmt: skip
                        seen[name] = max(seen.get(name, 0.0), float(x.rsplit(" ", 1)[1]))
            time.sleep(0.5)
        ray.get(ref2)
        assert ray.get(a2.equity.remote()) == base.trader.exchange.equity
        ray.kill(a2)
        # the director as a named, detached actor, its traders actors too, on a fresh prefix
        from quantarena.actors.paper import start_live_director

        p3 = prefix + "-director"
        for k in r.scan_iter(match=p3 + ":*"):
            r.delete(k)
        cfg3 = _config(server, tmp_path / "d", p3)
        replay(r, LiveKeys(p3).feed("btc1h"), hourly)
        d = start_live_director(cfg3)
        assert ray.get_actor("live-director") is not None
        n = ray.get(d.run.remote(2.0), timeout=600)
        assert n == (hourly.n_bars // 24 - 1) // 3
        assert ray.get(d.reallocations.remote())[-1]["weights"].keys() == {
            a.name for a in cfg3.agents
        }
        ray.kill(d)
        assert seen.get("ray_quantarena_paper_fills_total", 0) > 0, seen
        assert seen.get("ray_quantarena_paper_latency_seconds_count", 0) > 0, seen
        assert 0.9 < seen.get("ray_quantarena_paper_equity", 0) < 1.2, seen
    finally:
        ray.shutdown()
    got = read_events(cfg.out, spec.name)
    want = read_events(tmp_path / "base", spec.name)
    f_got = got[got.kind == "fill"].set_index("id")[["qty", "price", "fee"]].sort_index()
    f_want = want[want.kind == "fill"].set_index("id")[["qty", "price", "fee"]].sort_index()
    assert len(f_want) > 10 and f_got.equals(f_want)


def test_demo_live_runs_with_its_kill_drill(server, tmp_path):
    from quantarena.live.demo import run_demo

    cfgfile = tmp_path / "live.yaml"
    text = (Path(__file__).parents[1] / "configs" / "live.yaml").read_text()
    cfgfile.write_text(
        text.replace('redis_prefix: "quantarena-demo:"', 'redis_prefix: "qa-live-demo-test:"')
    )
    svc = run_demo(cfgfile, server.url, tmp_path / "out", echo=False)
    assert len(svc.reallocations) == 8  # 63 days of hourly bars, weekly
    ev = read_events(tmp_path / "out", "mr")
    rej = ev[ev.kind == "rejection"]
    assert len(rej) > 0 and rej["reason"].str.contains("kill switch: demo drill").all()
    states = ev[ev.kind == "state"]["reason"].tolist()
    assert any(s.startswith("HALTED kill switch") for s in states) and "resumed" in states
    r = connect(server.url)
    assert r.hget(svc.keys.status("mr"), "state") == b"ACTIVE"
