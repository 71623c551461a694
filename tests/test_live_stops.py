"""Paper trading with stops and leverage equals the backtest with the same stops and leverage.

The paper exchange runs the engine's own kernel with the agent's stops (stop-loss,
take-profit, trailing; :mod:`quantarena.engine.stops`) and leverage cap, so a paper trader fed
one bar at a time ends every close with the backtest's equity, cash, shares and fees, and
makes a stop-exit fill at every stop exit of the backtest's trade list, at its price. Real
data (FTX BTC-PERP 1-minute bars), the default costs, risk limits that do not bind.
Promotion carries a tournament agent's stops and leverage into its paper trader.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.engine.api import load_bars_any
from quantarena.engine.costs import DEFAULT_COSTS
from quantarena.engine.stops import Stops
from quantarena.live.promotion import account_name, read_tournament, select
from quantarena.live.risk import RiskLimits
from quantarena.live.service import AgentSpec, load_live_config, make_trader, spec_of
from quantarena.live.trader import PaperTrader
from quantarena.strategies.registry import get_agent
from quantarena.strategies.runner import run_population

STOPS = Stops(stop_loss=0.004, take_profit=0.006, trailing=0.003)
CASES = [  # (kind, params, max_position, leverage, stops)
    ("momentum", {"fast": 10, "slow": 50, "ma": "ema"}, 0.5, 1.0, STOPS),
    ("mean_reversion", {"window": 30, "entry": 1.5, "exit": 0.25}, 1.0, 1.0,
     Stops(stop_loss=0.003)),
    ("breakout", {"window": 30, "exit_window": 10}, 1.0, 1.0, Stops(trailing=0.002)),
    ("momentum", {"fast": 5, "slow": 20}, 3.0, 2.0, None),  # leverage binds: |w| 3 -> 2
    ("buy_hold", {"weight": 1.0}, 2.5, 1.5, Stops(take_profit=0.01)),
]  # fmt: skip


@pytest.fixture(scope="module")
def btc(btc_1m_csv: Path):
    return load_bars_any(btc_1m_csv, None, None, None, None).select(slice(0, 3000))


def _loose(maxpos: float) -> RiskLimits:
    return RiskLimits(max_position=maxpos, max_gross=None, daily_loss=None, max_drawdown=None,
                      max_orders=None)  # fmt: skip


@pytest.mark.parametrize("kind,params,maxpos,lev,stops", CASES,
                         ids=[f"{c[0]}-lev{c[3]:g}-{'stops' if c[4] else 'nostops'}"
                              for c in CASES])  # fmt: skip
def test_paper_with_stops_and_leverage_equals_backtest(btc, kind, params, maxpos, lev, stops):
    agent = get_agent(kind, max_position=maxpos)
    tr = PaperTrader("s1", agent, params, btc.symbols, btc.interval_ns, costs=DEFAULT_COSTS,
                     limits=_loose(maxpos), leverage=lev, stops=stops)  # fmt: skip
    steps = tr.run(btc)
    ref = run_population(agent, btc, {k: [v] for k, v in params.items()}, costs=DEFAULT_COSTS,
                         stops=stops, leverage=lev, record=("equity",), trades=True)  # fmt: skip
    eq = np.array([s.equity for s in steps])
    np.testing.assert_array_equal(eq, np.asarray(ref.equity)[:, 0])
    acc = ref.account()
    assert tr.exchange.cash == acc.cash
    np.testing.assert_array_equal(tr.exchange.shares, acc.shares)
    assert tr.exchange.fees == ref.metrics["fees_paid"][0]
    fills = [f for s in steps for f in s.fills]
    assert sum(f.fee for f in fills) == pytest.approx(tr.exchange.fees, rel=1e-12)
    # every fill moves the position by its qty: the paper fills replay the account's shares
    assert sum(f.qty for f in fills) == pytest.approx(float(tr.exchange.shares[0]), abs=1e-12)
    tdf = ref.trades
    exits = tdf[tdf.exit_reason.isin(["stop_loss", "take_profit", "trailing_stop"])]
    stop_fills = {f.bar: f for f in fills if f.reason}
    if stops is None:
        assert not stop_fills and exits.empty
        # the leverage cap binds: the backtest's and the paper's gross is 2, not 3
        w = np.abs([s.weights[0] for s in steps])
        assert w.max() > 1.5 and np.all(w < lev * 1.05)
        return
    # the stops must fire for the test to mean something (buy-and-hold exits once, then
    # stays flat: its target never changes again)
    assert len(exits) >= (1 if kind == "buy_hold" else 4)
    if kind == "buy_hold":
        assert all(s.weights[0] == 0 for s in steps[int(exits.exit_bar.iloc[0]) :])
    assert sorted(stop_fills) == sorted(int(b) for b in exits.exit_bar)
    for row in exits.itertuples():
        f = stop_fills[int(row.exit_bar)]
        assert f.reason == row.exit_reason
        assert f.client_id == f"s1:{f.bar}:{f.symbol}:{f.reason}"
        assert f.price == pytest.approx(row.exit_price, rel=1e-12)
        assert np.sign(f.qty) == -row.direction


def test_stops_and_leverage_from_a_live_config_reach_the_paper_exchange():
    cfg = load_live_config({"agents": [
        {"name": "m", "agent": "momentum", "params": {"fast": 5, "slow": 20},
         "stops": {"stop_loss": 0.02, "trailing": 0}, "leverage": 2},
    ]})  # fmt: skip
    spec = cfg.agents[0]
    assert spec.stops == {"stop_loss": 0.02, "take_profit": None, "trailing": None}
    tr = make_trader(spec, ["BTC"], 60_000_000_000, {})
    assert tr.exchange.leverage == 2.0 and tr.risk.limits.max_gross == 2.0
    assert tr.exchange.stops == Stops(stop_loss=0.02, take_profit=None, trailing=None)
    plain = make_trader(AgentSpec("p", "momentum"), ["BTC"], 60_000_000_000, {})
    assert plain.exchange.stops is None and plain.risk.limits.max_gross == 1.0
    for bad, msg in [({"stops": {"stop_los": 0.1}}, "stops: unknown key 'stop_los'"),
                     ({"stops": {"stop_loss": -1}}, "stops.stop_loss: must be a fraction"),
                     ({"leverage": 0}, "leverage must be a number > 0")]:  # fmt: skip
        with pytest.raises(ValueError, match=r"agents\[0\]: " + msg):
            load_live_config({"agents": [{"agent": "momentum", **bad}]})


def test_promotion_carries_stops_and_leverage(tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"name": "risky"}))
    pd.DataFrame({"rank": [1, 2], "agent": ["mom", "plain"], "sharpe": [2.0, 1.0],
                  "dsr": [0.9, 0.8], "gates_failed": ["paper", ""]}).to_csv(
        out / "leaderboard.csv", index=False)  # fmt: skip
    stops = {"stop_loss": 0.02, "take_profit": None, "trailing": 0.01}
    (out / "final_params.json").write_text(json.dumps({"agents": {
        "mom": {"kind": "momentum", "params": {"fast": 5, "slow": 20}, "max_position": 0.5,
                "leverage": 2.0, "stops": stops},
        "plain": {"kind": "momentum", "params": {"fast": 5, "slow": 20}, "max_position": 0.5,
                  "leverage": 1.0, "stops": None},
    }}))  # fmt: skip
    t = select(read_tournament(out))
    mom, plain = t.candidates
    assert mom.promote and mom.reason == "" and plain.promote
    assert mom.stops == stops and mom.leverage == 2.0
    assert plain.stops is None and plain.leverage == 1.0
    # the same parameters with other stops/leverage are another account; without them the
    # name is what it was before stops and leverage were carried
    assert mom.account != plain.account
    assert plain.account == account_name("plain", "momentum", plain.params, plain.options)
    rec = {"account": mom.account, "kind": mom.kind, "params": mom.params,
           "options": mom.options, "stops": mom.stops, "leverage": mom.leverage}  # fmt: skip
    tr = make_trader(spec_of(rec), ["BTC"], 60_000_000_000, {})
    assert tr.exchange.leverage == 2.0 and tr.exchange.maxpos[0] == 0.5
    assert tr.exchange.stops == Stops(**stops)
    # a record written before stops were carried still starts a trader
    old = spec_of({k: v for k, v in rec.items() if k not in ("stops", "leverage")})
    assert old.stops is None and old.leverage == 1.0
    # a bad stops value in final_params.json is one line naming the row
    fp = json.loads((out / "final_params.json").read_text())
    fp["agents"]["mom"]["stops"] = {"stop_loss": "tight"}
    (out / "final_params.json").write_text(json.dumps(fp))
    with pytest.raises(ValueError, match=r"leaderboard.csv row 2 \(agent 'mom'\): stops.stop_loss"):
        read_tournament(out)


def test_stop_exits_through_redis_are_fill_events_with_their_reason(btc, tmp_path):
    """A config agent with stops on a Redis feed: its Parquet (and Redis) fills are the pure
    paper trader's, stop exits named by their reason."""
    redis = pytest.importorskip("redis")
    from quantarena.live.feed import replay
    from quantarena.live.redis_io import LiveKeys, connect
    from quantarena.live.redis_trader import RedisTrader, read_events

    r = connect("redis://127.0.0.1:6379/0")
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    bars = btc.select(slice(0, 1500))
    keys = LiveKeys("qa-live-stops-redis")
    for k in r.scan_iter(match=keys.prefix + "*"):
        r.delete(k)
    replay(r, keys.feed("f"), bars)
    spec = AgentSpec("ms", "mean_reversion", {"window": 30, "entry": 1.5, "exit": 0.25},
                     {"max_position": 1.0}, stops={"stop_loss": 0.003}, leverage=1.0)  # fmt: skip
    lim = {"max_drawdown": None, "daily_loss": None, "max_orders": None}
    try:
        rt = RedisTrader(r, make_trader(spec, bars.symbols, bars.interval_ns, lim), "f",
                         tmp_path, keys=keys, batch=13)  # fmt: skip
        assert rt.run(idle_stop_s=0.3) == bars.n_bars
        in_redis = [json.loads(v[b"json"]) for _, v in r.xrange(keys.events("ms"))]
    finally:
        for k in r.scan_iter(match=keys.prefix + "*"):
            r.delete(k)
    pure = make_trader(spec, bars.symbols, bars.interval_ns, lim)
    want = [f for s in pure.run(bars) for f in s.fills]
    assert rt.trader.exchange.equity == pure.exchange.equity
    ev = read_events(tmp_path, "ms")
    got = ev[ev.kind == "fill"].set_index("id")
    assert sorted(got.index) == sorted(f.client_id for f in want)
    stops = [f for f in want if f.reason]
    assert len(stops) > 3
    for f in stops:
        assert got.loc[f.client_id, "reason"] == "stop_loss"
        assert got.loc[f.client_id, "price"] == f.price
    assert {e["id"] for e in in_redis if e.get("reason") == "stop_loss"} == {
        f.client_id for f in stops
    }


def test_a_snapshot_from_before_stops_restores_without_them(btc):
    """A trader pickled by the previous version (its exchange without ``stops``) resumes."""
    import pickle

    tr = PaperTrader("o", get_agent("momentum"), {"fast": 5, "slow": 20}, btc.symbols,
                     btc.interval_ns, limits=_loose(0.1))  # fmt: skip
    tr.run(btc.select(slice(0, 100)))
    for k in ("stops", "_has_stops"):
        del tr.exchange.__dict__[k]
    back = pickle.loads(pickle.dumps(tr))
    assert back.exchange.stops is None
    ref = PaperTrader("o", get_agent("momentum"), {"fast": 5, "slow": 20}, btc.symbols,
                      btc.interval_ns, limits=_loose(0.1))  # fmt: skip
    want = ref.run(btc.select(slice(0, 300)))[-1].equity
    assert back.run(btc.select(slice(100, 300)))[-1].equity == want
