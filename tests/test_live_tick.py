"""Tick agents in paper trading: the market maker fed the real USD-M capture as messages, in
batches of any size, through Redis with a crash mid-stream, gives exactly the tick
backtest's fills, fees, inventory and equity; the risk cap and the kill switch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quantarena.engine.tick import core as C
from quantarena.engine.tick.events import load_events
from quantarena.engine.tick.features import FeatureState, market_features
from quantarena.live.messages import MessageError, QuoteMessage, decode, encode_quote
from quantarena.live.tick_feed import EventBuilder, replay_ticks, tick_messages
from quantarena.live.tick_trader import TickPaperTrader
from quantarena.strategies.registry import get_agent
from quantarena.tick_backtest import tick_backtest

USDM = "BINANCE-USDM:BTCUSDT"
#: tight quotes: a few hundred fills over the capture's six minutes
MM = {"gamma": 0.001, "k": 1.0, "horizon_s": 0.1, "min_half_spread": 0.5, "max_inventory": 10.0}
GLFT = {"gamma": 0.01, "min_half_spread": 0.5, "max_inventory": 10.0}
# every account field but the fill log's length (the paper trader empties it each batch)
FIELDS = [i for i in range(C.N_AC) if i != C.A_NLOG]


@pytest.fixture(scope="module")
def store(usdm_store: Path) -> Path:
    return usdm_store


@pytest.fixture(scope="module")
def messages(store: Path) -> list[dict[str, str]]:
    return tick_messages([load_events(store, USDM, depth=False)])


def _backtest(store: Path, agent: str, params: dict):
    return tick_backtest(store, agent, {k: [v] for k, v in params.items()}, symbol=USDM,
                         depth=False, max_log=100_000)  # fmt: skip


def _paper(msgs: list[dict], agent: str, params: dict, sizes: list[int], **kw):
    """Feed the messages (encoded, decoded) in batches cycling through ``sizes``."""
    tr = TickPaperTrader("t1", get_agent(agent), params, USDM, **kw)
    b = EventBuilder(USDM)
    fills, samples, a, k = [], [], 0, 0
    while a < len(msgs):
        n = sizes[k % len(sizes)]
        for f in msgs[a : a + n]:
            b.add(decode({x.encode(): y.encode() for x, y in f.items()}))
        st = tr.on_events(b.take())
        fills += st.fills
        samples += st.samples
        a, k = a + n, k + 1
    return tr, fills, samples


def _same_as_backtest(tr, fills, samples, res):
    bf = res.state.fills(0)
    assert len(fills) == len(bf["ts"]) > 100
    np.testing.assert_array_equal([f.ts for f in fills], bf["ts"])
    np.testing.assert_array_equal([f.price for f in fills], bf["px"])
    np.testing.assert_array_equal([f.qty for f in fills], bf["qty"])
    np.testing.assert_array_equal([f.maker for f in fills], bf["maker"])
    np.testing.assert_array_equal(tr.state.AC[0, FIELDS], res.state.AC[0, FIELDS])
    np.testing.assert_array_equal(tr.equity_curve(samples), res.equity[:, 0])
    # each fill's fee, summed in the order of the fills, is the account's fee total
    assert sum(f.fee for f in fills) == pytest.approx(res.state.account("fees")[0], rel=1e-12)


def test_quote_message_round_trip_and_versions():
    f = encode_quote(7, 123, USDM, 61000.1, 1.5, 61000.2, float("nan"), 130)
    m = decode(f)
    assert isinstance(m, QuoteMessage) and m.ask == 61000.2 and np.isnan(m.ask_qty)
    assert f["v"] == "2" and m.recv == 130
    with pytest.raises(MessageError, match="quote message needs format version 2"):
        decode({**f, "v": "1"})
    with pytest.raises(MessageError, match="version '3'"):
        decode({**f, "v": "3"})


def test_features_streamed_in_blocks_equal_the_whole(store: Path):
    ev = load_events(store, USDM, depth=False)
    whole = market_features(ev, 0.1)
    fs = FeatureState(0.1)
    parts = [fs.update(ev.slice(a, min(len(ev), a + 777))) for a in range(0, len(ev), 777)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("sizes", [[10**6], [997], [1, 50, 4999]])
def test_paper_market_maker_equals_backtest(store, messages, sizes):
    res = _backtest(store, "market_maker", MM)
    _same_as_backtest(*_paper(messages, "market_maker", MM, sizes), res)


def test_paper_glft_equals_backtest(store, messages):
    res = _backtest(store, "glft", GLFT)
    _same_as_backtest(*_paper(messages, "glft", GLFT, [3001]), res)


def test_risk_cap_is_the_backtest_with_a_tighter_inventory_rule(store, messages):
    # max_position 0.004 BTC = 2 order sizes of 0.002: quoting stops at 2 order sizes held
    tr, fills, samples = _paper(messages, "market_maker", MM, [2000], max_position=0.004)
    res = _backtest(store, "market_maker", {**MM, "max_inventory": 2.0})
    _same_as_backtest(tr, fills, samples, res)
    assert tr.account("max_inventory") <= 0.004 + 0.002 + 1e-12


def test_kill_switch_cancels_quotes_then_closes_at_market(messages):
    tr = TickPaperTrader("t1", get_agent("market_maker"), MM, USDM)
    b = EventBuilder(USDM)
    a = 0
    while abs(tr.position) < 1e-12 or a < 20_000:  # run until it holds inventory
        for f in messages[a : a + 1000]:
            b.add(decode(f))
        tr.on_events(b.take())
        a += 1000
    pos, n_before = tr.position, tr.n_fills
    tr.kill("test")
    notes, fills = [], []
    for _ in range(5):
        for f in messages[a : a + 1000]:
            b.add(decode(f))
        st = tr.on_events(b.take())
        notes += st.notes
        fills += st.fills
        a += 1000
    assert tr.position == pytest.approx(0.0, abs=1e-12)
    assert tr.state.resting(0, 0) is None and tr.state.resting(0, 1) is None
    close = [f for f in fills if not f.maker]
    assert len(close) == 1 and notes[-1] == "flat"
    # the close: the remaining inventory at the touch, taker fee (5 bps on USD-M)
    c = close[0]
    assert c.fee == pytest.approx(abs(c.qty) * c.price * 5e-4, rel=1e-12)
    assert sum(f.qty for f in fills) == pytest.approx(-pos, abs=1e-12)
    # halted: nothing more trades, equity is the cash
    for f in messages[a : a + 3000]:
        b.add(decode(f))
    st = tr.on_events(b.take())
    assert st.fills == [] and tr.n_fills == n_before + len(fills)
    assert tr.equity == tr.account("cash")


def test_out_of_order_events_are_refused(messages):
    tr = TickPaperTrader("t1", get_agent("market_maker"), MM, USDM)
    b = EventBuilder(USDM)
    for f in messages[1000:1010]:
        b.add(decode(f))
    tr.on_events(b.take())
    for f in messages[0:10]:
        b.add(decode(f))
    with pytest.raises(ValueError, match="out of order"):
        tr.on_events(b.take())


def test_unknown_symbol_needs_a_venue():
    with pytest.raises(ValueError, match="no known exchange filters"):
        TickPaperTrader("t1", get_agent("market_maker"), MM, "X:FOO")


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


def test_through_redis_with_a_crash_equals_backtest(store, messages, redis_client, tmp_path):
    from quantarena.live.redis_io import LiveKeys
    from quantarena.live.tick_redis import TickRedisTrader, read_tick_events

    r = redis_client
    keys = LiveKeys("qa-livetick-test")
    for k in r.scan_iter(match=keys.prefix + "*"):
        r.delete(k)
    try:
        ev = load_events(store, USDM, depth=False)
        assert replay_ticks(r, keys.feed("ticks"), [ev]) == len(messages)

        def trader():
            return TickPaperTrader("mm1", get_agent("market_maker"), MM, USDM)

        rt = TickRedisTrader(r, trader(), "ticks", tmp_path, keys=keys, batch=2500,
                             compact=True)  # fmt: skip
        calls = {"n": 0}

        def boom():
            calls["n"] += 1
            if calls["n"] == 13:
                raise RuntimeError("crash before EXEC")

        rt.fail_before_commit = boom
        with pytest.raises(RuntimeError, match="crash before EXEC"):
            rt.run(idle_stop_s=0.5)
        assert r.xpending(keys.feed("ticks"), "agent:mm1")["pending"] == 2500
        # restart: the snapshot of batch 12, then the pending batch, then the rest
        rt2 = TickRedisTrader(r, trader(), "ticks", tmp_path, keys=keys, batch=1700,
                              compact=True)  # fmt: skip
        assert rt2.trader.n_events > 0 and rt2.seq.seq == 12 * 2500 - 1
        rt2.run(idle_stop_s=0.5)
        res = _backtest(store, "market_maker", MM)
        tr = rt2.trader
        np.testing.assert_array_equal(tr.state.AC[0, FIELDS], res.state.AC[0, FIELDS])
        df = read_tick_events(tmp_path, "mm1")
        f = df[df.kind == "fill"]
        assert not f["id"].duplicated().any()
        bf = res.state.fills(0)
        np.testing.assert_array_equal(f["qty"].to_numpy(), bf["qty"])
        np.testing.assert_array_equal(f["price"].to_numpy(), bf["px"])
        np.testing.assert_array_equal(f["ts"].to_numpy(), bf["ts"])
        eq = df[df.kind == "equity"]["equity"].to_numpy()
        np.testing.assert_array_equal(np.r_[eq, tr.equity], res.equity[:, 0])
        st = r.hgetall(keys.status("mm1"))
        assert float(st[b"equity"]) == tr.equity and st[b"state"] == b"ACTIVE"
        ids = [json.loads(v[b"json"])["id"] for _, v in r.xrange(keys.events("mm1"))]
        fill_ids = [i for i in ids if i.startswith("mm1:")]
        assert len(fill_ids) == len(set(fill_ids)) == len(bf["ts"])
        # the capture ends just past midnight: the trader compacted 2024-08-08 itself; the
        # last day by hand — day files only, the same events in feed order
        from quantarena.live.events import compact

        assert sorted(p.name[:12] for p in (tmp_path / "mm1").glob("day-*")) == ["day-20240808"]
        assert compact(tmp_path, "mm1", include_last_day=True)["days"] == 1
        names = sorted(p.name[:12] for p in (tmp_path / "mm1").iterdir())
        assert names == ["day-20240808", "day-20240809"]
        after = read_tick_events(tmp_path, "mm1")
        assert list(after.columns) == list(df.columns)
        np.testing.assert_array_equal(after["id"].to_numpy(), df["id"].to_numpy())
        for c in ("qty", "price", "ts", "equity", "seq"):
            np.testing.assert_array_equal(after[c].to_numpy(), df[c].to_numpy())
    finally:
        for k in r.scan_iter(match=keys.prefix + "*"):
            r.delete(k)


def test_cli_feed_replay_ticks_and_live_trade(store, redis_client, tmp_path):
    from typer.testing import CliRunner

    from quantarena.cli import app

    r, pre = redis_client, "qa-livetick-cli"
    red = ["--redis", "redis://127.0.0.1:6379/0", "--redis-prefix", pre]
    try:
        out = CliRunner().invoke(app, ["feed", "replay", "--store", str(store), "--symbols", USDM,
                                       "--ticks", "--feed", "t", "--reset", *red])  # fmt: skip
        assert out.exit_code == 0, out.output
        assert "published 87402 quote/trade messages" in out.output
        args = ["live", "trade", "--agent", "market_maker", "--feed", "t", "--out", str(tmp_path),
                "--idle-stop", "0.5", "--limits", '{"max_position_qty": 0.004}', *red]  # fmt: skip
        args += [x for k, v in MM.items() for x in ("--param", f"{k}={v}")]
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 0, out.output
        res = _backtest(store, "market_maker", {**MM, "max_inventory": 2.0})
        assert f"fills {int(res.state.account('n_fills')[0])}" in out.output
    finally:
        for k in r.scan_iter(match=pre + ":*"):
            r.delete(k)
