"""Promotion from the latest backtest tournament into paper trading, and demotion.

A small real tournament (3 agents, 2 weekly rounds of FTX BTC-PERP 15-minute bars) is run in
process; its candidates must be the leaderboard's gate passers with the parameters chosen in
the last round (read back independently from the checkpoint). A live run on replayed Coinbase
BTC/USD hourly bars then promotes them, demotes the ones failing a live gate (stopped,
capital 0) and promotes a newer tournament's changed parameters mid-run as a new account.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.live.promotion import (
    account_name,
    latest_tournament,
    read_tournament,
    select,
)

ROOT = Path(__file__).resolve().parent.parent
NS_PER_DAY = 86_400_000_000_000
REDIS_URL = "redis://127.0.0.1:6379/0"

TOURNAMENT = {
    "name": "promo-small",
    "seed": 1,
    "data": {
        "files": [{"path": str(ROOT / "data/sample/btc-perp-20211231-20220201_1m.csv"),
                   "symbol": "BTCPERP"}],
        "interval": "15m", "start": "2022-01-11", "end": "2022-02-01",
    },
    "schedule": {"round": "7d", "lookback": "5d", "warmup": "1d"},
    "agents": [
        {"name": "trend", "kind": "momentum", "params": {"fast": [4, 8], "slow": [24, 48]}},
        {"name": "channel", "kind": "breakout", "params": {"window": [10, 20], "exit_window": 5}},
        {"name": "hodl", "kind": "buy_hold"},
    ],
    "costs": {"fee_bps": 5, "slippage_bps": 1},
    "allocation": {"min_rounds": 1},
    "gates": {"min_sharpe": 0.0, "max_drawdown": 0.3, "min_win_rate": None,
              "min_history_days": None, "min_paper_days": 7},
}  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of runs holding one finished tournament, ``runs/small``."""
    from quantarena.actors.driver import run_in_process
    from quantarena.config import TournamentConfig

    root = tmp_path_factory.mktemp("runs")
    cfg = TournamentConfig.model_validate(
        {**TOURNAMENT, "tracking": {"output_dir": str(root / "small")}}
    )
    run_in_process(cfg, log_mlflow=False, backend="cpu")
    return root


def _last_chosen_from_checkpoint(folder: Path) -> dict[str, dict]:
    from quantarena.tournaments.checkpoint import load_checkpoint

    ck = load_checkpoint(folder / "checkpoint.pkl")
    return {a: dict(r.chosen) for a, r in ck.results[-1].items()}


@pytest.mark.slow
def test_candidates_are_the_gate_passers_with_their_last_round_params(runs: Path) -> None:
    folder = latest_tournament(runs)
    assert folder == runs / "small"
    t = select(read_tournament(runs), top=5, require_gates=True)
    board = pd.read_csv(folder / "leaderboard.csv")
    # passers: every failed gate is the paper gate (no backtest can meet it)
    passers = [
        row.agent for row in board.sort_values("rank").itertuples()
        if set(str(row.gates_failed).replace(" ", "").split(",")) <= {"paper", "nan", ""}
    ]  # fmt: skip
    assert passers, "the fixture tournament should have a gate passer"
    assert len(passers) < len(board), "and an agent failing a gate"
    assert [c.agent for c in t.candidates if c.promote] == passers
    assert [c.agent for c in t.candidates] == list(board.sort_values("rank")["agent"])
    chosen = _last_chosen_from_checkpoint(folder)
    kinds = {a["name"]: a["kind"] for a in TOURNAMENT["agents"]}
    for c in t.candidates:
        assert c.params == chosen[c.agent]
        assert c.kind == kinds[c.agent]
        assert c.account == account_name(c.agent, c.kind, chosen[c.agent], {"max_position": 0.1})
        if not c.promote:
            assert c.reason.startswith("failed gates: ")
    # without the gates every agent may paper-trade; top caps them, by rank
    t2 = select(read_tournament(runs), top=2, require_gates=False)
    assert [c.promote for c in t2.candidates] == [True, True, False]
    assert t2.candidates[2].reason == "below the top 2"


@pytest.mark.slow
def test_newest_finished_run_wins_and_old_outputs_use_the_checkpoint(
    runs: Path, tmp_path: Path
) -> None:
    many = tmp_path / "many"
    shutil.copytree(runs / "small", many / "a")
    shutil.copytree(runs / "small", many / "b", ignore=shutil.ignore_patterns("final_params*"))
    (many / "unfinished").mkdir()
    shutil.copy(runs / "small" / "leaderboard.csv", many / "unfinished")  # no summary.json
    s = json.loads((many / "b" / "summary.json").read_text())
    (many / "b" / "summary.json").write_text(
        json.dumps({**s, "finished_at": "2099-01-01T00:00:00Z"})
    )
    assert latest_tournament(many) == many / "b"
    # b has no final_params.json (an output written before it existed): the checkpoint's
    # last round gives the same candidates
    a = read_tournament(many / "a").candidates
    b = read_tournament(many).candidates
    assert [(c.agent, c.kind, c.params, c.account) for c in a] == [
        (c.agent, c.kind, c.params, c.account) for c in b
    ]


@pytest.mark.slow
def test_bad_input_is_one_line(runs: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no such folder"):
        read_tournament(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no finished tournament"):
        read_tournament(tmp_path / "empty")
    bad = tmp_path / "bad"
    shutil.copytree(runs / "small", bad)
    fp = json.loads((bad / "final_params.json").read_text())
    fp["agents"]["trend"]["kind"] = "no_such_agent"
    (bad / "final_params.json").write_text(json.dumps(fp))
    with pytest.raises(ValueError) as e:
        read_tournament(bad)
    msg = str(e.value)
    assert "\n" not in msg and "leaderboard.csv row" in msg and "'trend'" in msg
    assert "unknown agent kind 'no_such_agent'" in msg
    from quantarena.live.service import load_live_config

    with pytest.raises(ValueError, match=r"promote: unknown key 'topp'"):
        load_live_config({"promote": {"from": str(runs), "topp": 3}})
    with pytest.raises(ValueError, match=r"promote: needs 'from'"):
        load_live_config({"promote": {"top": 3}})


def test_tick_agents_are_skipped_with_a_reason(tmp_path: Path) -> None:
    out = tmp_path / "t"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"name": "ticks"}))
    pd.DataFrame({"rank": [1, 2], "agent": ["mm", "mom"], "sharpe": [2.0, 1.0],
                  "dsr": [0.9, 0.8], "gates_failed": ["paper", "paper"]}).to_csv(
        out / "leaderboard.csv", index=False)  # fmt: skip
    (out / "final_params.json").write_text(json.dumps({"agents": {
        "mm": {"kind": "market_maker", "params": {}, "max_position": 0.1},
        "mom": {"kind": "momentum", "params": {"fast": 5, "slow": 20}, "max_position": 0.2,
                "stops": {"stop_loss": 0.02, "take_profit": None, "trailing": None}},
    }}))  # fmt: skip
    t = select(read_tournament(out))
    assert [c.promote for c in t.candidates] == [False, True]
    assert t.candidates[0].reason == (
        "tick agent: no tick feed configured (tick_feed: in the live config)"
    )
    # a bar agent with stops is promoted with them (tests/test_live_stops.py)
    assert t.candidates[1].stops == {"stop_loss": 0.02, "take_profit": None, "trailing": None}
    # with a tick feed the market maker is a candidate; so is an arbitrageur on its legs
    t = select(read_tournament(out, tick_feed="ticks"))
    assert [c.promote for c in t.candidates] == [True, True]
    fp = json.loads((out / "final_params.json").read_text())
    fp["agents"]["mm"] = {**fp["agents"]["mm"], "kind": "cross_venue_arb", "legs": ["A", "B"]}
    (out / "final_params.json").write_text(json.dumps(fp))
    c = read_tournament(out, tick_feed="ticks").candidates[0]
    assert (c.reason, c.symbol, c.streaming) == ("", "A,B", True)
    c = read_tournament(out).candidates[0]
    assert c.reason == "tick agent: no tick feed configured (tick_feed: in the live config)"


def test_the_promotion_module_is_pure() -> None:
    code = (
        "import sys, quantarena.live.promotion; "
        "print(sorted(m for m in ('ray', 'mlflow', 'redis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- live


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    r = redis.Redis.from_url(REDIS_URL)
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    return r


@pytest.mark.slow
def test_live_run_promotes_trades_and_demotes(runs, redis_client, tmp_path, sample_dir):
    from quantarena.engine.api import load_bars_any
    from quantarena.live.director import paper_stats
    from quantarena.live.feed import replay
    from quantarena.live.redis_trader import read_events
    from quantarena.live.service import LiveService, load_live_config, make_trader

    r = redis_client
    prefix = "qa-promote-test:"
    for k in r.scan_iter(match=prefix + "*"):
        r.delete(k)
    bars = load_bars_any(sample_dir / "Coinbase_BTCUSD_1h.csv", None, "2018-01-01",
                         "2018-03-05", None)  # fmt: skip
    src = tmp_path / "runs"
    shutil.copytree(runs / "small", src / "a")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load_live_config({
        "redis": REDIS_URL, "redis_prefix": prefix, "feed": "btc1h", "out": str(tmp_path / "live"),
        "limits": {"max_drawdown": 0.5, "daily_loss": None, "max_orders": None},
        "allocation": {"every_days": 7, "capital": 100000.0,
                       "gates": {"min_sharpe": 0.0, "min_win_rate": None, "max_drawdown": 0.5}},
        "mlflow": {"uri": uri, "experiment": "promote-test"},
        "promote": {"from": str(src), "top": 3, "require_gates": False, "warmup_bars": 200},
        "agents": [{"name": "hold", "agent": "buy_hold"}],
    })  # fmt: skip
    newer: dict[str, str] = {}

    def on_step(res) -> None:  # after the first reallocation a newer tournament appears
        if newer:
            return
        shutil.copytree(src / "a", src / "b")
        fp = json.loads((src / "b" / "final_params.json").read_text())
        fp["agents"]["channel"]["params"] = {"window": 20, "exit_window": 5}
        (src / "b" / "final_params.json").write_text(json.dumps(fp))
        s = json.loads((src / "b" / "summary.json").read_text())
        (src / "b" / "summary.json").write_text(
            json.dumps({**s, "finished_at": "2099-01-01T00:00:00Z"})
        )
        newer["day"] = str(res.day)

    svc = LiveService(cfg, r, on_step=on_step)
    replay(r, svc.keys.feed("btc1h"), bars)
    reallocs = svc.run(idle_stop_s=1.0, poll_s=0.05)
    assert len(reallocs) == (bars.n_bars // 24 - 1) // 7

    log = [json.loads(v[b"json"]) for _, v in r.xrange(svc.keys.promotion_log())]
    recs = {k.decode(): json.loads(v) for k, v in r.hgetall(svc.keys.promotions()).items()}
    t0 = select(read_tournament(src / "a"), top=3, require_gates=False)
    start_accounts = [c.account for c in t0.candidates]
    # at the start: the three candidates, promoted (day None), in rank order
    assert [e["account"] for e in log[:3]] == start_accounts
    assert all(e["state"] == "promoted" and e["day"] is None for e in log[:3])
    assert "hold" not in recs  # the config's own agent is never promoted or demoted

    # each demotion: at a reallocation, after >= 7 paper days, for a failed binding gate —
    # checked against the agent's daily marks in Redis, recomputed here
    demoted = [e for e in log if e["state"] == "demoted" and not e["reason"].startswith("replaced")]
    assert demoted, "the run should demote an agent failing a live gate"
    for e in demoted:
        d = e["day"]
        h = r.hgetall(svc.keys.daily(e["account"]))
        marks = pd.Series({int(k): float(v) for k, v in h.items()}).sort_index()
        st = paper_stats(marks[marks.index < d])
        assert st["paper_days"] >= 7
        assert not (st["sharpe"] > 0.0 and st["max_drawdown"] < 0.5), (e, st)
        # stopped (in a fast replay the traders run ahead of the director: it stops at the
        # bar it had reached when the director demoted it — since traders read the kill switch
        # once per batch, they may have read the whole replayed feed by then)
        assert float(r.get(svc.keys.capital(e["account"]))) == 0.0
        status = r.hgetall(svc.keys.status(e["account"]))
        assert int(status[b"last_ts"]) // NS_PER_DAY >= d
        assert int(status[b"bars"]) <= bars.n_bars
        assert next(t for t in svc._traders if t.name == e["account"]).stop_requested
        assert e["account"] not in [a.name for a in svc.agents]
        assert recs[e["account"]]["state"] == "demoted"
        later = [x for x in reallocs if x.day > d]
        assert all(e["account"] not in x.weights or x.weights[e["account"]] == 0 for x in later)
    # and every review decided as recomputed here: demoted iff >= 7 paper days and a gate failed
    for x in reallocs:
        for acct in x.gates:
            if acct == "hold" or (acct in recs and recs[acct]["state"] == "demoted"
                                  and recs[acct]["day"] < x.day):  # fmt: skip
                continue
            h = r.hgetall(svc.keys.daily(acct))
            marks = pd.Series({int(k): float(v) for k, v in h.items()}, dtype=float).sort_index()
            st = paper_stats(marks[marks.index < x.day])
            fail = (st["paper_days"] or 0) >= 7 and not (
                st["sharpe"] > 0 and st["max_drawdown"] < 0.5
            )
            was = any(e["account"] == acct and e["day"] == x.day for e in demoted)
            assert was == fail, (acct, x.day, st)
    survivors = [a for a in start_accounts if recs[a]["state"] == "promoted"]
    # the config's agent is judged but never demoted: it traded every bar
    assert int(r.hget(svc.keys.status("hold"), "bars")) == bars.n_bars
    # every reallocation's record names its promotions and demotions
    alloc = [json.loads(v[b"json"]) for _, v in r.xrange(svc.keys.allocations())]
    assert sum(len(a["demoted"]) for a in alloc) == len([e for e in log if e["state"] == "demoted"])

    # the newer tournament's changed channel parameters: a new account, promoted at the next
    # reallocation, from that day's first bar, warmed up on the 200 bars before it
    (new,) = [e for e in log if e["state"] == "promoted" and e["day"] is not None]
    assert new["agent"] == "channel" and new["params"] == {"window": 20, "exit_window": 5}
    old = next(c.account for c in t0.candidates if c.agent == "channel")
    assert new["account"] != old
    if recs[old]["day"] == new["day"]:  # still promoted then: retired by the new one
        assert recs[old]["reason"] == f"replaced by {new['account']} (parameters changed)"
    d = new["day"]
    assert d > int(newer["day"]) - 1
    start = int(np.searchsorted(bars.ts, d * NS_PER_DAY))
    spec = (
        next(a for a in svc.agents if a.name == new["account"])
        if new["account"] in [a.name for a in svc.agents]
        else None
    )
    assert spec is not None or recs[new["account"]]["state"] == "demoted"
    # independent replay: the same trader warmed on bars[start-200:start], fed bars[start:]
    from quantarena.live.service import AgentSpec

    ref = make_trader(AgentSpec(new["account"], "breakout", new["params"], new["options"]),
                      bars.symbols, bars.interval_ns, cfg.limits)  # fmt: skip
    ref.warm_up(bars.select(slice(start - 200, start)))
    n_done = int(r.hget(svc.keys.status(new["account"]), "bars"))
    ref.run(bars.select(slice(start, start + n_done)))
    assert float(r.hget(svc.keys.status(new["account"]), "equity")) == pytest.approx(
        ref.exchange.equity, rel=1e-12
    )
    ev = read_events(cfg.out, new["account"])
    assert int(ev["ts"].dropna().min()) >= d * NS_PER_DAY
    assert survivors or demoted  # the run made decisions either way

    # MLflow: tags per account and the CSV of every promotion/demotion
    import mlflow

    client = mlflow.tracking.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("promote-test").experiment_id])
    tags = run.data.tags
    for e in demoted:
        assert tags[f"promotion.{e['account']}"].startswith("demoted day")
    assert tags[f"promotion.{new['account']}"].startswith(("promoted day", "demoted day"))
    csv = client.download_artifacts(run.info.run_id, "promotions.csv", str(tmp_path))
    df = pd.read_csv(csv)
    assert len(df) == len(log)
    for k in r.scan_iter(match=prefix + "*"):
        r.delete(k)


def test_changed_parameters_retire_the_old_account(runs, redis_client, tmp_path):
    from quantarena.live.promoter import Promoter
    from quantarena.live.promotion import PromoteConfig
    from quantarena.live.redis_io import LiveKeys

    r = redis_client
    keys = LiveKeys("qa-promote-retire-test:")
    for k in r.scan_iter(match=keys.prefix + "*"):
        r.delete(k)
    src = tmp_path / "runs"
    shutil.copytree(runs / "small", src / "a")
    p = Promoter(PromoteConfig(str(src), top=5, require_gates=False), r, keys, {"hold"})
    first, retired = p.promote(None)
    assert len(first) == 3 and retired == []
    assert p.promote(3) == ([], [])  # the same tournament again: nothing new
    shutil.copytree(src / "a", src / "b")
    fp = json.loads((src / "b" / "final_params.json").read_text())
    fp["agents"]["trend"]["params"]["fast"] = 8
    (src / "b" / "final_params.json").write_text(json.dumps(fp))
    s = json.loads((src / "b" / "summary.json").read_text())
    (src / "b" / "summary.json").write_text(
        json.dumps({**s, "finished_at": "2099-01-01T00:00:00Z"})
    )
    new, retired = p.promote(7)
    old = next(x["account"] for x in first if x["agent"] == "trend")
    assert [x["agent"] for x in new] == ["trend"] and retired == [old]
    assert new[0]["params"]["fast"] == 8 and new[0]["account"] != old
    recs = p.records()
    assert recs[old]["state"] == "demoted" and recs[old]["day"] == 7
    assert recs[old]["reason"] == f"replaced by {new[0]['account']} (parameters changed)"
    assert set(p.active()) == {x["account"] for x in first if x["agent"] != "trend"} | {
        new[0]["account"]
    }
    # a demoted account is never promoted again (its paper record failed or was replaced)
    (src / "b" / "final_params.json").write_text(json.dumps({**fp, "agents": {
        **fp["agents"], "trend": json.loads((src / "a" / "final_params.json").read_text())["agents"]["trend"]}}))  # fmt: skip
    assert p.promote(14)[0] == []
    for k in r.scan_iter(match=keys.prefix + "*"):
        r.delete(k)


@pytest.mark.slow
def test_cli_promote_and_status(runs, redis_client, tmp_path):
    from typer.testing import CliRunner

    from quantarena.cli import app
    from quantarena.live.promoter import Promoter
    from quantarena.live.promotion import PromoteConfig
    from quantarena.live.redis_io import LiveKeys

    env = {"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    runner = CliRunner()
    res = runner.invoke(app, ["live", "promote", "--from", str(runs)], env=env)
    assert res.exit_code == 0, res.output
    t = select(read_tournament(runs))
    for c in t.candidates:
        line = next(x for x in res.stdout.splitlines() if f" {c.agent} " in x)
        assert c.account in line and ("promote" in line) == c.promote
    assert f"{sum(c.promote for c in t.candidates)} of 3 agents would be promoted" in res.stdout
    res = runner.invoke(app, ["live", "promote", "--from", str(runs), "--json", "--any-gates",
                              "--top", "2"], env=env)  # fmt: skip
    doc = json.loads(res.stdout)
    assert [c["promote"] for c in doc["candidates"]] == [True, True, False]
    assert doc["candidates"][0]["params"] == t.candidates[0].params
    res = runner.invoke(app, ["live", "promote", "--from", str(tmp_path / "none")], env=env)
    assert res.exit_code == 2 and "no such folder" in res.output
    assert len(res.output.strip().splitlines()) == 1
    # status shows the promotion state of each account
    keys = LiveKeys("qa-promote-status-test:")
    r = redis_client
    for k in r.scan_iter(match=keys.prefix + "*"):
        r.delete(k)
    p = Promoter(PromoteConfig(str(runs), top=1), r, keys, set())
    (rec,), _ = p.promote(None)
    p.review({}, ("sharpe",), {}, 7)  # no gates for it: stays promoted
    r.sadd(keys.agents(), rec["account"])
    res = runner.invoke(app, ["live", "status", "--redis-prefix", keys.prefix], env=env)
    assert res.exit_code == 0, res.output
    assert "promoted at start: rank 1 of promo-small" in res.stdout
    res = runner.invoke(app, ["live", "status", "--json", "--redis-prefix", keys.prefix], env=env)
    assert json.loads(res.stdout)[rec["account"]]["promotion"]["state"] == "promoted"
    for k in r.scan_iter(match=keys.prefix + "*"):
        r.delete(k)


@pytest.mark.slow
def test_demo_live_promotes_from_its_tournament(redis_client, tmp_path):
    from quantarena.live.demo import run_demo

    cfgfile = tmp_path / "live.yaml"
    text = (ROOT / "configs" / "live.yaml").read_text()
    cfgfile.write_text(text.replace('"quantarena-demo:"', '"qa-promote-demo-test:"'))
    svc = run_demo(cfgfile, REDIS_URL, tmp_path / "out", echo=False, tournament=True)
    assert len(svc.reallocations) == 8
    t = select(read_tournament(tmp_path / "out" / "tournament"), top=3)
    promoted = [e["account"] for e in svc.promoter.events if e["state"] == "promoted"]
    assert promoted == [c.account for c in t.candidates if c.promote] and promoted
    for k in redis_client.scan_iter(match="qa-promote-demo-test:*"):
        redis_client.delete(k)


# ---------------------------------------------------------------------------- tick agents

USDM = "BINANCE-USDM:BTCUSDT"


@pytest.mark.slow
def test_market_makers_promoted_onto_the_tick_feed(redis_client, tmp_path, usdm_store):
    """configs/ticks.yaml shrunk to its two market makers on the USD-M capture: a live run
    with a tick feed promotes both with their last round's parameters; each one's paper
    account equals its standalone tick backtest with those parameters."""
    import yaml

    from quantarena.actors.driver import run_in_process
    from quantarena.config import TournamentConfig
    from quantarena.engine.tick.events import load_events
    from quantarena.live.launch import tick_position
    from quantarena.live.service import LiveService, load_live_config
    from quantarena.live.tick_feed import replay_ticks
    from quantarena.live.tick_redis import read_tick_events
    from quantarena.tick_backtest import tick_backtest

    d = yaml.safe_load((ROOT / "configs" / "ticks.yaml").read_text())
    d["data"]["files"] = [str(ROOT / d["data"]["files"][0])]  # the USD-M capture
    d["data"]["symbols"] = [USDM]
    d["agents"] = [a for a in d["agents"] if a["kind"] in ("market_maker", "glft")]
    d["agents"][0]["params"] = {"gamma": [0.001, 0.1], "k": [1.0], "horizon_s": [0.1, 10.0]}
    d["agents"][1]["params"] = {"gamma": [0.01, 1.0], "min_half_spread": [0.5]}
    d["tracking"] = {"output_dir": str(tmp_path / "runs" / "ticks")}
    d.pop("ray", None)
    run_in_process(TournamentConfig.model_validate(d), log_mlflow=False, backend="cpu")
    last = _last_chosen_from_checkpoint(tmp_path / "runs" / "ticks")
    # without a tick feed in the live config they are skipped, with the reason
    cands = select(read_tournament(tmp_path / "runs"), require_gates=False).candidates
    assert {c.agent: c.promote for c in cands} == {"maker": False, "glft": False}

    r = redis_client
    prefix = "qa-promote-tick-test"
    for k in r.scan_iter(match=prefix + ":*"):
        r.delete(k)
    assert Path(d["data"]["files"][0]).name == "binance-usdm-BTCUSDT-20240808-capture.gz"
    store = usdm_store
    ev = load_events(store, USDM, depth=False)
    cfg = load_live_config({
        "redis": REDIS_URL, "redis_prefix": prefix, "tick_feed": "ticks",
        "out": str(tmp_path / "live"),
        "promote": {"from": str(tmp_path / "runs"), "require_gates": False},
    })  # fmt: skip
    svc = LiveService(cfg, r)
    try:
        replay_ticks(r, svc.keys.feed("ticks"), [ev])
        # where a market maker promoted mid-run starts: after the last message before
        head = r.xrange(svc.keys.feed("ticks"), count=2000)
        ts = [int(f[b"ts"]) for _, f in head]
        k = next(i for i in range(1000, 2000) if ts[i] > ts[i - 1])
        assert tick_position(r, svc.keys.feed("ticks"), ts[k]) == head[k - 1][0].decode()
        assert tick_position(r, svc.keys.feed("ticks"), ts[0]) == "0"
        svc.run(idle_stop_s=1.0, poll_s=0.05)
        recs = {a: json.loads(v) for a, v in
                ((k.decode(), v) for k, v in r.hgetall(svc.keys.promotions()).items())}  # fmt: skip
        assert {rec["agent"] for rec in recs.values()} == {"maker", "glft"}
        for acct, rec in recs.items():
            assert rec["state"] == "promoted" and rec["day"] is None
            assert rec["params"] == last[rec["agent"]]  # the last round's choice
            res = tick_backtest(store, rec["kind"], {k: [v] for k, v in rec["params"].items()},
                                symbol=USDM, depth=False, max_log=100_000)  # fmt: skip
            st = r.hgetall(svc.keys.status(acct))
            assert float(st[b"equity"]) == res.state.equity()[0]
            assert float(st[b"fees"]) == res.state.account("fees")[0]
            f = read_tick_events(cfg.out, acct)
            f = f[f.kind == "fill"]
            assert len(f) == res.state.account("n_fills")[0] > 0
            np.testing.assert_array_equal(f["qty"].to_numpy(), res.state.fills(0)["qty"])
    finally:
        for k in r.scan_iter(match=prefix + ":*"):
            r.delete(k)


SPOT = "BINANCE:BTCUSDT"


@pytest.fixture(scope="module")
def arb_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/ticks.yaml shrunk to its two arbitrageurs (two sets each), run in process: a
    folder of runs holding ``ticks-arb`` (its store: ``ticks-arb/store``)."""
    import yaml

    from quantarena.actors.driver import run_in_process
    from quantarena.config import TournamentConfig

    root = tmp_path_factory.mktemp("arbruns")
    d = yaml.safe_load((ROOT / "configs" / "ticks.yaml").read_text())
    d["data"]["files"] = [str(ROOT / f) for f in d["data"]["files"]]
    d["agents"] = [a for a in d["agents"] if a["kind"] in ("pairs_arb", "cross_venue_arb")]
    d["agents"][0]["params"] = {"window": [30, 60], "z_entry": [1.5], "z_exit": [0.5]}
    d["agents"][1]["params"] = {"threshold_bps": [-15.0, -10.0], "max_inventory": [5.0]}
    d["tracking"] = {"output_dir": str(root / "ticks-arb")}
    d.pop("ray", None)
    run_in_process(TournamentConfig.model_validate(d), log_mlflow=False, backend="cpu")
    return root


@pytest.mark.slow
def test_arbitrageurs_promoted_onto_the_tick_feed_trade_as_configured(
    arb_runs, redis_client, tmp_path
):
    """A tick tournament records each arbitrageur's legs (its data's first two symbols, in
    order); without a tick feed they are skipped with the reason; a live run with one
    promotes both on those legs, and each promoted account's fills and equity equal the same
    agent configured by hand in a live config (``symbol: A,B``; its trader built by the
    config's launcher and fed the same events). A reallocation whose binding gate they fail
    demotes them (stopped, capital 0)."""
    from quantarena.engine.tick.events import load_events
    from quantarena.live.launch import make_arb_trader
    from quantarena.live.service import LiveService, load_live_config
    from quantarena.live.tick_feed import overlap, replay_ticks
    from quantarena.live.tick_redis import read_tick_events

    folder = arb_runs / "ticks-arb"
    legs = [USDM, SPOT]  # configs/ticks.yaml's data.symbols: USD-M first
    fp = json.loads((folder / "final_params.json").read_text())["agents"]
    assert {a: fp[a]["legs"] for a in fp} == {"pairs": legs, "crossvenue": legs}
    last = _last_chosen_from_checkpoint(folder)
    # without a tick feed: skipped, with the reason
    cands = select(read_tournament(arb_runs), require_gates=False).candidates
    assert {c.agent: (c.promote, c.reason) for c in cands} == {
        a: (False, "tick agent: no tick feed configured (tick_feed: in the live config)")
        for a in ("pairs", "crossvenue")
    }
    cands = select(read_tournament(arb_runs, "ticks"), require_gates=False).candidates
    for c in cands:
        assert c.promote and c.symbol == f"{USDM},{SPOT}" and c.params == last[c.agent]
        assert c.account == account_name(c.agent, c.kind, last[c.agent], {"max_position": 0.1},
                                         symbol=f"{USDM},{SPOT}")  # fmt: skip

    r = redis_client
    prefix = "qa-promote-arb-test"
    for k in r.scan_iter(match=prefix + ":*"):
        r.delete(k)
    cfg = load_live_config({
        "redis": REDIS_URL, "redis_prefix": prefix, "feed": "ticks", "tick_feed": "ticks",
        "out": str(tmp_path / "live"),
        "allocation": {"every_days": 7, "gates": {"min_sharpe": 0.0, "max_drawdown": None,
                                                  "min_win_rate": None, "min_paper_days": 1}},
        "promote": {"from": str(arb_runs), "require_gates": False},
    })  # fmt: skip
    # the same agents configured by hand, with the legs written as a config's symbol: A,B
    kinds = {c.agent: c.kind for c in cands}
    hand = load_live_config({"tick_feed": "ticks", "agents": [
        {"name": a, "agent": kinds[a], "params": last[a], "symbol": f"{USDM},{SPOT}"}
        for a in kinds]})  # fmt: skip
    svc = LiveService(cfg, r)
    try:
        ev = [load_events(folder / "store", s, depth=False) for s in legs]
        cut = int(max(e.ts[0] for e in ev)) + 150 * 10**9  # 150 s of both legs: enough fills
        ev = overlap([e.slice(0, int(np.searchsorted(e.ts, cut))) for e in ev])
        replay_ticks(r, svc.keys.feed("ticks"), ev)
        assert svc.run(idle_stop_s=1.0, poll_s=0.05) == []  # minutes of data: no reallocation
        recs = {k.decode(): json.loads(v) for k, v in r.hgetall(svc.keys.promotions()).items()}
        assert {rec["agent"] for rec in recs.values()} == {"pairs", "crossvenue"}
        cols = ["ts", "symbol", "qty", "price", "fee"]
        for acct, rec in recs.items():
            assert rec["state"] == "promoted" and rec["symbol"] == f"{USDM},{SPOT}"
            tr = next(t for t in svc._traders if t.name == acct)
            assert type(tr).__name__ == "ArbRedisTrader" and tr.trader.symbols == tuple(legs)
            assert (tr.trader.max_position, tr.trader.max_gross) == (0.10, 1.0)  # the defaults
            ref = make_arb_trader(next(a for a in hand.agents if a.name == rec["agent"]))
            steps = [ref.on_events(*ev), ref.flush()]
            want = pd.DataFrame([(f.ts, f.symbol, f.qty, f.price, f.fee)
                                 for st in steps for f in st.fills], columns=cols)  # fmt: skip
            got = read_tick_events(cfg.out, acct)
            got = got[got.kind == "fill"][cols].reset_index(drop=True)
            assert len(got) == len(want) > 0
            pd.testing.assert_frame_equal(got, want, check_dtype=False)
            assert float(r.hget(svc.keys.status(acct), "equity")) == ref.equity
            assert r.hgetall(svc.keys.daily(acct))  # the director's input for the gates
        # demotion: one paper day, its Sharpe undefined (NaN), fails min_sharpe — each
        # promoted account is demoted by the director (its trader stopped, capital 0)
        day = max(int(k) for k in r.hgetall(svc.keys.daily(next(iter(recs))))) + 1
        res = svc.step(day)
        after = {k.decode(): json.loads(v) for k, v in r.hgetall(svc.keys.promotions()).items()}
        for acct in recs:
            assert after[acct]["state"] == "demoted" and after[acct]["day"] == day
            assert after[acct]["reason"].startswith("failed sharpe after 1 paper days")
            assert res.capital[acct] == 0.0 and float(r.get(svc.keys.capital(acct))) == 0.0
        assert svc.agents == []
    finally:
        for k in r.scan_iter(match=prefix + ":*"):
            r.delete(k)


def test_arbitrageur_without_recorded_legs_is_skipped(tmp_path: Path) -> None:
    """A final-params file written before legs were recorded: the arbitrageur is skipped with
    a one-line reason to re-run; malformed legs are a one-line error naming the file."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text(json.dumps({"name": "ticks"}))
    pd.DataFrame({"rank": [1, 2], "agent": ["pairs", "crossvenue"], "sharpe": [2.0, 1.0],
                  "dsr": [0.9, 0.8], "gates_failed": ["paper", ""]}).to_csv(
        old / "leaderboard.csv", index=False)  # fmt: skip
    fp = {"agents": {
        "pairs": {"kind": "pairs_arb", "params": {"window": 30}, "max_position": 0.1},
        "crossvenue": {"kind": "cross_venue_arb", "params": {"threshold_bps": -10.0},
                       "max_position": 0.1, "legs": [USDM, SPOT]},
    }}  # fmt: skip
    (old / "final_params.json").write_text(json.dumps(fp))
    c = {c.agent: c for c in select(read_tournament(old, "ticks")).candidates}
    assert not c["pairs"].promote and c["pairs"].symbol is None
    assert c["pairs"].reason == (
        "arbitrage agent 'pairs_arb': final_params.json records no legs (a tournament run "
        "before they were recorded) — re-run the tournament to promote it"
    )
    assert c["crossvenue"].promote and c["crossvenue"].symbol == f"{USDM},{SPOT}"
    fp["agents"]["pairs"]["legs"] = [SPOT]
    (old / "final_params.json").write_text(json.dumps(fp))
    with pytest.raises(ValueError) as e:
        read_tournament(old, "ticks")
    msg = str(e.value)
    assert "\n" not in msg and "final_params.json agent 'pairs'" in msg
    assert "legs must be two distinct symbols" in msg and "re-run the tournament" in msg
