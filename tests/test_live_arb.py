"""Arbitrage agents in paper trading: pairs_arb and cross_venue_arb fed the real Binance spot
and USD-M captures as one merged tick feed, in batches of any size and through Redis with a
crash mid-stream, give exactly the tick backtest's orders, fills, fees, positions and equity;
the per-instrument risk caps (a backtest with the same caps, and a hand-computed case); the
kill switch; warm-up; the live director and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quantarena.data.store import Store
from quantarena.engine.tick import from_rows
from quantarena.engine.tick import taker as K
from quantarena.engine.tick.events import load_events
from quantarena.live.arb_trader import ArbPaperTrader
from quantarena.live.messages import decode
from quantarena.live.risk import RiskState
from quantarena.live.tick_feed import EventBuilder, overlap, replay_ticks, tick_messages
from quantarena.strategies.registry import get_agent
from quantarena.tick_backtest import tick_backtest

SPOT, USDM = "BINANCE:BTCUSDT", "BINANCE-USDM:BTCUSDT"
LEGS = (SPOT, USDM)
PAIRS = {"window": 30, "z_entry": 1.5, "z_exit": 0.5}
#: the venues' taker fees (10 + 5 bps) exceed the spot / perp gap: a negative threshold trades
CROSS = {"threshold_bps": -15.0, "max_inventory": 5.0}
#: the paper trader's default risk: 10 % of capital per instrument, gross 1.0
CAPS = {"leg_cap": 0.10, "gross_cap": 1.0}
# every account column but the log's length (the trader empties it each batch)
XCOLS = [i for i in range(K.N_X) if i != K.X_NLOG]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("livearb") / "store"
    t = sample_dir / "ticks"
    Store(root).ingest([t / "binance-spot-BTCUSDT-20240808-capture.gz",
                        t / "binance-usdm-BTCUSDT-20240808-capture.gz"])  # fmt: skip
    return root


@pytest.fixture(scope="module")
def legs(store: Path) -> list:
    """Both legs cut at the earliest last quote: what `feed replay --ticks --overlap` sends."""
    return overlap([load_events(store, s, depth=False) for s in LEGS])


@pytest.fixture(scope="module")
def messages(legs) -> list[dict[str, str]]:
    return tick_messages(legs)


def _end(legs) -> int:
    return int(max(e.ts[-1] for e in legs)) + 1


def _backtest(store: Path, legs, agent: str, params: dict, **opts):
    return tick_backtest(store, agent, {k: [v] for k, v in params.items()},
                         symbol=",".join(LEGS), end=_end(legs), max_log=100_000, **opts)  # fmt: skip


def _feed(tr: ArbPaperTrader, msgs, sizes, builders=None, flush=True):
    """Feed the messages (decoded) to ``tr`` in batches cycling through ``sizes``."""
    b = builders or [EventBuilder(s) for s in LEGS]
    steps, a, k = [], 0, 0
    while a < len(msgs):
        n = sizes[k % len(sizes)]
        for f in msgs[a : a + n]:
            m = decode({x.encode(): y.encode() for x, y in f.items()})
            b[LEGS.index(m.symbol)].add(m)
        steps.append(tr.on_events(b[0].take(), b[1].take()))
        a, k = a + n, k + 1
    if flush:
        steps.append(tr.flush())
    return steps


def _same_as_backtest(tr: ArbPaperTrader, steps, res) -> None:
    log = res.state.log(0)
    fills = [f for s in steps for f in s.fills]
    orders = [o for s in steps for o in s.orders]
    samples = [x for s in steps for x in s.samples]
    bf, bo = log["fills"], log["orders"]
    assert len(fills) == len(bf["ts"]) > 20 and len(orders) == len(bo["ts"])
    np.testing.assert_array_equal([o.ts for o in orders], bo["ts"])
    np.testing.assert_array_equal([o.arrival for o in orders], bo["arrival"])
    np.testing.assert_array_equal([o.qty for o in orders], bo["qty"])
    np.testing.assert_array_equal([LEGS.index(o.symbol) for o in orders], bo["leg"])
    np.testing.assert_array_equal([f.ts for f in fills], bf["ts"])
    np.testing.assert_array_equal([f.price for f in fills], bf["px"])
    np.testing.assert_array_equal([f.qty for f in fills], bf["qty"])
    np.testing.assert_array_equal([f.fee for f in fills], bf["fee"])
    np.testing.assert_array_equal([LEGS.index(f.symbol) for f in fills], bf["leg"])
    np.testing.assert_array_equal(tr.stream.X[0, XCOLS], res.state.X[0, XCOLS])
    np.testing.assert_array_equal(tr.equity_curve(samples), res.equity[:, 0])
    assert tr.equity == res.state.equity()[0]
    # each fill's fee is the venue's taker rate on the traded value (10 bps spot, 5 bps USD-M)
    rate = np.where(bf["leg"] == 0, 10e-4, 5e-4)
    np.testing.assert_allclose(bf["fee"], np.abs(bf["qty"]) * bf["px"] * rate, rtol=1e-12)


def test_overlap_cuts_both_legs_at_the_earliest_last_quote(store, legs):
    full = [load_events(store, s, depth=False) for s in LEGS]
    hi = K.joint_end(full[0], full[1])
    for e, f in zip(legs, full, strict=True):
        assert e.ts[-1] <= hi and len(e) == int(np.count_nonzero(f.ts <= hi))
    msgs = tick_messages(legs)
    ts = [int(m["ts"]) for m in msgs]
    assert ts == sorted(ts) and {m["symbol"] for m in msgs} == set(LEGS)
    assert [int(m["seq"]) for m in msgs] == list(range(len(msgs)))


@pytest.mark.parametrize("sizes", [[10**6], [997], [1, 50, 4999]])
def test_paper_pairs_equals_backtest(store, legs, messages, sizes):
    res = _backtest(store, legs, "pairs_arb", PAIRS, **CAPS)
    tr = ArbPaperTrader("p1", get_agent("pairs_arb"), PAIRS, LEGS)
    _same_as_backtest(tr, _feed(tr, messages, sizes), res)


def test_paper_cross_venue_equals_backtest(store, legs, messages):
    res = _backtest(store, legs, "cross_venue_arb", CROSS, **CAPS)
    tr = ArbPaperTrader("c1", get_agent("cross_venue_arb"), CROSS, LEGS)
    _same_as_backtest(tr, _feed(tr, messages, [1, 2999]), res)
    assert res.state.account("n_fills")[0] > 100


def test_pairs_caps_scale_both_legs_and_keep_the_hedge(store, legs, messages):
    # notional 2000 = 20 % of capital per leg: every entry is cut to 10 % per leg, gross 15 %
    opts = {"notional": 2000.0}
    free = _backtest(store, legs, "pairs_arb", PAIRS, **opts)
    cut = _backtest(store, legs, "pairs_arb", PAIRS, **opts, leg_cap=0.10, gross_cap=0.15)
    tr = ArbPaperTrader("p2", get_agent("pairs_arb", **opts), PAIRS, LEGS, max_gross=0.15)
    _same_as_backtest(tr, _feed(tr, messages, [4000]), cut)
    fo, co = free.state.log(0)["orders"], cut.state.log(0)["orders"]
    assert cut.state.account("risk_cuts")[0] > 0 and free.state.account("risk_cuts")[0] == 0
    # the first entry: decided at the same event, both legs scaled by one factor (hedge kept)
    assert fo["ts"][0] == co["ts"][0] and fo["ts"][1] == co["ts"][1]
    f = co["qty"][:2] / fo["qty"][:2]
    assert f[0] == pytest.approx(f[1], rel=1e-12) and f[0] < 1.0
    # the legs' values at their fills: <= 10 % of capital each, <= 15 % together (the fill is
    # at the touch, the cap at the decision's mid: a spread's worth of slack)
    px = cut.state.log(0)["fills"]["px"]
    va, vb = abs(co["qty"][0]) * px[0], abs(co["qty"][1]) * px[1]
    assert max(va, vb) <= 1000.0 * (1 + 1e-4) and va + vb == pytest.approx(1500.0, rel=1e-4)


def test_cross_venue_cap_refuses_trades_that_add_past_it():
    # B's bid 100.5 beats A's ask 100.0 by 50 bps: buy A / sell B at every quote, capped by
    # max_inventory 3 order sizes; a 10 % cap of capital 2000 = 200 = two units at ~100
    a = [("quote", t, 99.9, 1, 100.0, 1) for t in (0, 20, 40, 60, 80)]
    b = [("quote", t + 1, 100.5, 1, 100.6, 1) for t in (0, 20, 40, 60, 80)]
    ev = [from_rows(a, "A"), from_rows(b, "B")]
    kw = dict(order_qty=1.0, latency_ms=(1e-5, 1e-5), taker_bps=(5.0, 5.0), capital=2000.0)
    p = {"threshold_bps": [10.0], "max_inventory": [3.0]}
    free = get_agent("cross_venue_arb", **kw).run_ticks(ev, p)
    capped = get_agent("cross_venue_arb", **kw, leg_cap=0.10).run_ticks(ev, p)
    assert free.account("position")[0] == 3.0 and free.account("risk_cuts")[0] == 0
    # two units: 2 × 100.25 (mid) = 200.5 > 200: the second trade already passes the cap
    assert capped.account("position")[0] == 1.0 and capped.account("position_b")[0] == -1.0
    assert capped.account("risk_cuts")[0] > 0


def test_kill_switch_closes_both_legs_then_resume(messages):
    tr = ArbPaperTrader("p3", get_agent("pairs_arb"), PAIRS, LEGS)
    b = [EventBuilder(s) for s in LEGS]
    a = 0
    while a < len(messages) and abs(tr.positions[SPOT]) < 1e-12:  # until it holds the spread
        _feed(tr, messages[a : a + 500], [500], b, flush=False)
        a += 500
    pos = tr.positions
    assert abs(pos[SPOT]) > 0 and abs(pos[USDM]) > 0
    tr.kill("test")
    steps = _feed(tr, messages[a : a + 3000], [1000], b, flush=False)
    a += 3000
    fills = [f for s in steps for f in s.fills]
    notes = [n for s in steps for n in s.notes]
    assert tr.positions == {SPOT: 0.0, USDM: 0.0} and "flat" in notes
    # one market leg per instrument (any leg in flight at the kill fills first)
    for sym, rate in ((SPOT, 10e-4), (USDM, 5e-4)):
        close = [f for f in fills if f.symbol == sym][-1]
        assert close.qty == pytest.approx(-pos[sym], rel=1e-12)
        assert close.fee == pytest.approx(abs(close.qty) * close.price * rate, rel=1e-12)
    # halted: nothing more trades; equity is cash
    steps = _feed(tr, messages[a : a + 20_000], [5000], b, flush=False)
    a += 20_000
    assert not [f for s in steps for f in s.fills] and tr.risk_state is RiskState.HALTED
    assert tr.equity == tr.account("cash")
    tr.resume()
    steps = _feed(tr, messages[a:], [5000], b)
    assert tr.risk_state is RiskState.ACTIVE and "resumed" in steps[0].notes
    assert [f for s in steps for f in s.fills]  # it trades again


def test_risk_limits_are_checked():
    with pytest.raises(ValueError, match="not a two-leg arbitrage agent"):
        ArbPaperTrader("x", get_agent("market_maker"), None, LEGS)
    with pytest.raises(ValueError, match="two distinct symbols"):
        ArbPaperTrader("x", get_agent("pairs_arb"), None, (SPOT, SPOT))
    with pytest.raises(ValueError, match="max_gross must be > 0"):
        ArbPaperTrader("x", get_agent("pairs_arb"), None, LEGS, max_gross=0.0)


def test_out_of_order_quotes_are_refused(messages):
    tr = ArbPaperTrader("p4", get_agent("cross_venue_arb"), CROSS, LEGS)
    _feed(tr, messages[5000:5100], [100], flush=True)
    with pytest.raises(ValueError, match="out of order"):
        _feed(tr, messages[0:100], [100])


def test_warm_up_feeds_the_signal_not_the_account(legs, messages):
    """A pairs stream warmed on the first k messages, then trading, equals the kernel run from
    event k on with the whole replay's signal (the backtest's, computed over all events)."""
    k = 30_000
    ag = get_agent("pairs_arb")
    s = ag.stream(PAIRS)
    b = [EventBuilder(x) for x in LEGS]
    for f in messages[:k]:
        m = decode(f)
        b[LEGS.index(m.symbol)].add(m)
    s.step(b[0].take(), b[1].take(), trade=False, flush=True)
    assert s.X[0, K.X_NFILL] == 0 and s.equity == ag.capital
    t_warm = s.last_ts
    out = []
    for f in messages[k:]:
        m = decode(f)
        b[LEGS.index(m.symbol)].add(m)
    out.append(s.step(b[0].take(), b[1].take(), flush=True))
    # reference: the backtest's joint clock and signal, the kernel from the last warm event
    jq = K.joint_quotes(legs[0], legs[1])
    p = ag.check_params({x: [v] for x, v in PAIRS.items()})
    Z, B, widx = ag._signals(jq, p)
    i0 = int(np.searchsorted(jq["ts"], t_warm, "right")) - 1
    X = np.zeros((1, K.N_X))
    X[0, K.X_CASH] = ag.capital
    LT, LF = np.zeros((1, 1000, 2), np.int64), np.zeros((1, 1000, K.N_LF))
    sl = slice(i0, None)
    K.run_taker2(jq["ts"][sl], jq["bid_a"][sl], jq["ask_a"][sl], jq["bid_b"][sl],
                 jq["ask_b"][sl], np.ascontiguousarray(Z[sl]), np.ascontiguousarray(B[sl]),
                 K.PAIRS, ag._prm(p, widx), 10_000_000, 10_000_000, 10e-4, 5e-4, X,
                 np.zeros(0, np.int64), np.zeros((0, 1)), np.inf, np.inf, LT, LF)  # fmt: skip
    assert X[0, K.X_NFILL] > 4
    np.testing.assert_array_equal(s.X[0, XCOLS], X[0, XCOLS])
    np.testing.assert_array_equal(out[0]["fills"]["px"], LF[0, : int(X[0, K.X_NLOG]), K.L_PX][
        LF[0, : int(X[0, K.X_NLOG]), K.L_KIND] == K.LOG_FILL])  # fmt: skip


# ------------------------------------------------------------------ through Redis


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    yield r


def _clean(r, prefix: str) -> None:
    for k in r.scan_iter(match=prefix + "*"):
        r.delete(k)


@pytest.mark.parametrize("archive_s", [60.0, 0.0])
def test_through_redis_with_a_crash_equals_backtest(store, legs, messages, redis_client,
                                                    tmp_path, archive_s):  # fmt: skip
    """A crash before a commit, a restart from the pending entries: the backtest's fills,
    orders and equity — with the Parquet archive written when due (60 s) and after every
    batch (``archive_s=0``, the restart's last batch the last message alone, then the held
    quotes' flush)."""
    from quantarena.live.arb_redis import ArbRedisTrader
    from quantarena.live.redis_io import LiveKeys
    from quantarena.live.status import status_table
    from quantarena.live.tick_redis import read_tick_events

    r = redis_client
    keys = LiveKeys("qa-livearb-test")
    _clean(r, keys.prefix)
    try:
        assert replay_ticks(r, keys.feed("ticks"), legs) == len(messages)

        def trader():
            return ArbPaperTrader("arb1", get_agent("pairs_arb"), PAIRS, LEGS)

        rt = ArbRedisTrader(r, trader(), "ticks", tmp_path, keys=keys, batch=2500,
                            archive_s=archive_s)  # fmt: skip
        calls = {"n": 0}

        def boom():
            calls["n"] += 1
            if calls["n"] == 9:
                raise RuntimeError("crash before EXEC")

        rt.fail_before_commit = boom
        with pytest.raises(RuntimeError, match="crash before EXEC"):
            rt.run(idle_stop_s=0.5)
        assert r.xpending(keys.feed("ticks"), "agent:arb1")["pending"] == 2500
        new = len(messages) - 9 * 2500  # after the 2,500 pending ones
        assert new > 2501
        rt2 = ArbRedisTrader(r, trader(), "ticks", tmp_path, keys=keys, archive_s=archive_s,
                             batch=1700 if archive_s else new - 1)  # fmt: skip
        assert rt2.seq.seq == 8 * 2500 - 1
        rt2.run(idle_stop_s=0.5)
        res = _backtest(store, legs, "pairs_arb", PAIRS, **CAPS)
        tr = rt2.trader
        np.testing.assert_array_equal(tr.stream.X[0, XCOLS], res.state.X[0, XCOLS])
        df = read_tick_events(tmp_path, "arb1")
        f, o = df[df.kind == "fill"], df[df.kind == "order"]
        log = res.state.log(0)
        assert not f["id"].duplicated().any() and len(f) == len(log["fills"]["ts"])
        np.testing.assert_array_equal(f["qty"].to_numpy(), log["fills"]["qty"])
        np.testing.assert_array_equal(f["price"].to_numpy(), log["fills"]["px"])
        np.testing.assert_array_equal(f["fee"].to_numpy(), log["fills"]["fee"])
        np.testing.assert_array_equal(f["symbol"].to_numpy(), np.array(LEGS)[log["fills"]["leg"]])
        np.testing.assert_array_equal(o["qty"].to_numpy(), log["orders"]["qty"])
        eq = df[df.kind == "equity"]["equity"].to_numpy()
        np.testing.assert_array_equal(np.r_[eq, tr.equity], res.equity[:, 0])
        st = {k.decode(): v.decode() for k, v in r.hgetall(keys.status("arb1")).items()}
        pos = {SPOT: res.state.account("position")[0], USDM: res.state.account("position_b")[0]}
        assert json.loads(st["positions"]) == pos and float(st["equity"]) == tr.equity
        assert st["state"] == "ACTIVE" and int(st["fills"]) == len(f)
        # `quantarena live status` shows both legs, in base units
        from rich.console import Console

        con = Console(width=400, record=True)
        con.print(status_table(r, keys))
        text = con.export_text()
        line = next(x for x in text.splitlines() if "arb1" in x)
        if any(pos.values()):
            assert SPOT in line and USDM in line
        else:
            assert "flat" in line
    finally:
        _clean(r, keys.prefix)


def test_gaps_and_the_kill_switch_through_redis(legs, messages, redis_client, tmp_path):
    from quantarena.live.arb_redis import ArbRedisTrader
    from quantarena.live.redis_io import LiveKeys
    from quantarena.live.tick_redis import read_tick_events

    r = redis_client
    keys = LiveKeys("qa-livearb-kill")
    _clean(r, keys.prefix)
    try:
        stream = keys.feed("ticks")
        for f in messages[:60_000]:
            r.xadd(stream, f)
        ids = [e for e, _ in r.xrange(stream, count=3001)]
        r.xdel(stream, *ids[3000 - 3 : 3000])  # messages 2997..2999 lost (trimmed, say)
        tr = ArbPaperTrader("arb2", get_agent("pairs_arb"), PAIRS, LEGS)
        rt = ArbRedisTrader(r, tr, "ticks", tmp_path, keys=keys, batch=1000)
        done = 0
        while done < 40_000 and abs(rt.trader.positions[SPOT]) < 1e-12:
            done += rt.run(max_messages=1000)
        assert abs(rt.trader.positions[SPOT]) > 0  # it holds the spread
        r.set(keys.kill("arb2"), "drill")
        rt.run(idle_stop_s=0.5)
        t = rt.trader
        assert t.risk_state is RiskState.HALTED and t.positions == {SPOT: 0.0, USDM: 0.0}
        df = read_tick_events(tmp_path, "arb2")
        gaps = df[df.kind == "gap"]
        assert list(gaps["reason"]) == ["gap: messages 2997..2999 missing"]
        reasons = list(df[df.kind == "state"]["reason"])
        assert "HALTED kill switch: drill" in reasons and "flat" in reasons
        st = {k.decode(): v.decode() for k, v in r.hgetall(keys.status("arb2")).items()}
        assert st["state"] == "HALTED" and json.loads(st["positions"]) == {SPOT: 0.0, USDM: 0.0}
    finally:
        _clean(r, keys.prefix)


def test_status_cell_shows_both_legs_in_base_units():
    from quantarena.live.status import _positions

    assert _positions({SPOT: -0.0166, USDM: 0.0165}, "base") == (f"{SPOT} -0.0166 {USDM} +0.0165")
    assert _positions({SPOT: 0.0, USDM: 0.0}, "base") == "flat"
    assert _positions({"BTC": 0.1, "ETH": 0.0}, "") == "BTC 10.00%"


def _director_run(r, prefix: str, out: Path, store: Path, legs, **over) -> None:
    """A live run of both arbitrage agents on the replayed legs; each equals its backtest."""
    from quantarena.live.service import LiveService, load_live_config
    from quantarena.live.tick_redis import read_tick_events

    _clean(r, prefix + ":")
    cfg = load_live_config({
        "redis": "redis://127.0.0.1:6379/0", "redis_prefix": prefix, "feed": "ticks",
        "tick_feed": "ticks", "out": str(out),
        "allocation": {"every_days": 1, "capital": 100000.0,
                       "gates": {"min_sharpe": None, "min_win_rate": None}},
        "agents": [
            {"name": "pairs", "agent": "pairs_arb", "params": PAIRS,
             "symbol": f"{SPOT},{USDM}"},
            {"name": "xv", "agent": "cross_venue_arb", "params": CROSS,
             "symbol": f"{SPOT},{USDM}", "limits": {"max_position": 0.2}},
        ],
        **over,
    })  # fmt: skip
    svc = LiveService(cfg, r)
    replay_ticks(r, svc.keys.feed("ticks"), legs)
    svc.run(idle_stop_s=2.0, poll_s=0.05)
    for name, agent, params, caps in (
        ("pairs", "pairs_arb", PAIRS, CAPS),
        ("xv", "cross_venue_arb", CROSS, {"leg_cap": 0.2, "gross_cap": 1.0}),
    ):
        res = _backtest(store, legs, agent, params, **caps)
        ev = read_tick_events(cfg.out, name)
        f = ev[ev.kind == "fill"]
        np.testing.assert_array_equal(f["price"].to_numpy(), res.state.log(0)["fills"]["px"])
        st = {k.decode(): v.decode() for k, v in r.hgetall(svc.keys.status(name)).items()}
        assert float(st["equity"]) == res.state.equity()[0]
        assert set(json.loads(st["positions"])) == set(LEGS)
        assert r.hgetall(svc.keys.daily(name))  # the director's input
        if cfg.ray:
            import ray

            row = ray.get(ray.get_actor(f"paper:{name}").account.remote())
            np.testing.assert_array_equal(np.asarray(row)[XCOLS], res.state.X[0, XCOLS])


def test_live_director_runs_the_arbitrage_agents(store, legs, redis_client, tmp_path):
    prefix = "qa-livearb-director"
    try:
        _director_run(redis_client, prefix, tmp_path / "live", store, legs)
    finally:
        _clean(redis_client, prefix + ":")


@pytest.mark.slow
def test_live_director_runs_the_arbitrage_agents_as_ray_actors(store, legs, redis_client,
                                                               tmp_path):  # fmt: skip
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, namespace="quantarena-live-arb-test")
    prefix = "qa-livearb-director-ray"
    try:
        _director_run(redis_client, prefix, tmp_path / "live", store, legs, ray=True)
    finally:
        ray.shutdown()
        _clean(redis_client, prefix + ":")


def test_cli_feed_replay_overlap_and_live_trade(store, legs, redis_client, tmp_path):
    from typer.testing import CliRunner

    from quantarena.cli import app

    r, pre = redis_client, "qa-livearb-cli"
    red = ["--redis", "redis://127.0.0.1:6379/0", "--redis-prefix", pre]
    try:
        out = CliRunner().invoke(app, ["feed", "replay", "--store", str(store), "--symbols",
                                       f"{SPOT},{USDM}", "--ticks", "--overlap", "--feed", "t",
                                       "--reset", "--maxlen", "200000", *red])  # fmt: skip
        assert out.exit_code == 0, out.output
        n = sum(len(e.ts) for e in legs)
        assert f"published {n} quote/trade messages" in out.output
        args = ["live", "trade", "--agent", "cross_venue_arb", "--feed", "t", "--out",
                str(tmp_path), "--idle-stop", "0.5", "--symbol", f"{SPOT},{USDM}",
                "--limits", '{"max_position": 0.2}', *red]  # fmt: skip
        args += [x for k, v in CROSS.items() for x in ("--param", f"{k}={v}")]
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 0, out.output
        res = _backtest(store, legs, "cross_venue_arb", CROSS, leg_cap=0.2, gross_cap=1.0)
        assert f"fills {int(res.state.account('n_fills')[0])}" in out.output
        bad = CliRunner().invoke(app, ["live", "trade", "--agent", "pairs_arb", "--feed", "t",
                                       "--out", str(tmp_path), "--symbol", SPOT, *red])  # fmt: skip
        assert bad.exit_code != 0 and "set symbol: A,B" in bad.output
    finally:
        _clean(r, pre + ":")


def test_shipped_config_builds_the_arbitrage_traders():
    from quantarena.live.launch import make_arb_trader, make_tick_trader
    from quantarena.live.service import load_live_config

    cfg = load_live_config(Path(__file__).resolve().parent.parent / "configs" / "live-arb.yaml")
    by = {a.name: a for a in cfg.agents}
    pairs, xv = make_arb_trader(by["pairs"]), make_arb_trader(by["xv"])
    assert pairs.symbols == xv.symbols == LEGS
    assert (pairs.max_position, pairs.max_gross) == (0.10, 1.0)
    assert xv.agent.latency_ms == (10.0, 5.0) and xv.stream.lat == (10_000_000, 5_000_000)
    assert make_tick_trader(by["mm"], USDM).symbol == USDM
