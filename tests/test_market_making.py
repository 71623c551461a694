"""Market-making agents on the tick simulator: the quote formulas against a plain-Python
transcription, the quoting loop on a hand-built stream, and a replay of the real Binance
USD-M capture (accounting identities, determinism, the CLI)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from quantarena.cli import app
from quantarena.engine.tick import (
    ConstantLatency,
    ExchangeFilters,
    MakerTaker,
    Venue,
    from_rows,
    load_events,
)
from quantarena.engine.tick import quoting as Q
from quantarena.engine.tick.replay import replay_mm
from quantarena.strategies.market_making import GLFT, MarketMaker
from quantarena.strategies.registry import get_agent
from quantarena.tick_backtest import tick_backtest

USDM = "BINANCE-USDM:BTCUSDT"


def _prm(**kw) -> np.ndarray:
    p = np.zeros((1, Q.N_PRM))
    p[0, Q.PR_GAMMA] = kw.get("gamma", 0.1)
    p[0, Q.PR_K] = kw.get("k", 1.5)
    p[0, Q.PR_TAU] = kw.get("tau", 2.0)
    p[0, Q.PR_MIN_HALF] = kw.get("hmin", 0.0)
    p[0, Q.PR_MAX_INV] = kw.get("qmax", 5.0)
    p[0, Q.PR_QTY] = kw.get("qty", 1.0)
    return p


def test_avellaneda_stoikov_depths():
    g, k, tau, sigma, q = 0.1, 1.5, 2.0, 3.0, 2.0
    # r = mid - q g s^2 tau; half = g s^2 tau / 2 + ln(1 + g/k) / g
    r_off = -q * g * sigma**2 * tau  # -3.6
    half = g * sigma**2 * tau / 2 + math.log(1 + g / k) / g  # 0.9 + 0.6454
    bd, ad = Q.quote_depths(Q.AS, _prm(gamma=g, k=k, tau=tau), 0, sigma, 0.0, 0.0, q)
    assert bd == pytest.approx(half - r_off)
    assert ad == pytest.approx(half + r_off)
    # the floor applies to the half spread
    bd, ad = Q.quote_depths(Q.AS, _prm(hmin=5.0), 0, 0.0, 0.0, 0.0, 0.0)
    assert bd == ad == 5.0


def test_glft_depths_and_inventory_limit():
    g, A, k, sigma, q = 0.05, 2.0, 0.8, 1.2, -1.0
    c1 = 1 / g * math.log(1 + g / k)
    c2 = math.sqrt(g / (2 * A * k) * (1 + g / k) ** (k / g + 1))
    bd, ad = Q.quote_depths(Q.GLFT, _prm(gamma=g), 0, sigma, A, k, q)
    assert bd == pytest.approx(c1 + sigma * c2 / 2 + sigma * c2 * q)
    assert ad == pytest.approx(c1 + sigma * c2 / 2 - sigma * c2 * q)
    bd, ad = Q.quote_depths(Q.GLFT, _prm(gamma=g, qmax=3.0), 0, sigma, A, k, 3.0)
    assert math.isnan(bd) and not math.isnan(ad)
    bd, ad = Q.quote_depths(Q.GLFT, _prm(gamma=g, qmax=3.0), 0, sigma, A, k, -3.0)
    assert math.isnan(ad) and not math.isnan(bd)


def test_quoting_loop_places_rounded_post_only_quotes_after_latency():
    # mid 100.05 (tick 0.1); AS with sigma 0 and hmin 2 ticks: bid 99.85 -> 99.8, ask 100.3
    ev = from_rows(
        [
            ("quote", 0, 100.0, 5, 100.1, 5),
            ("quote", 5, 100.0, 5, 100.1, 5),
            ("trade", 12, 99.8, 1, -1),  # before the bid acts (at 0 + 15): no fill
            ("quote", 20, 100.0, 5, 100.1, 5),
            ("trade", 30, 99.7, 1, -1),  # through the bid: fills 1
        ]
    )
    feats = np.zeros((len(ev), 4))
    feats[:, 0] = ev.mid
    feats[:, 3] = 1.0
    venue = Venue(
        latency=ConstantLatency(entry_ns=15),
        fees=MakerTaker(-1.0, 5.0),
        filters=ExchangeFilters(tick=0.1),
    )
    st = replay_mm(
        ev,
        Q.AS,
        _prm(gamma=1.0, hmin=2.0, k=1e6),
        venue,
        features=feats,
        requote_ns=10**9,
        max_log=10,
    )
    f = st.fills()
    assert list(f["ts"]) == [30] and f["px"][0] == pytest.approx(99.8) and f["maker"][0]
    assert st.account("position")[0] == 1.0
    assert st.account("cash")[0] == pytest.approx(-99.8 + 99.8 * 1e-4)
    ask = st.resting(0, 1)
    assert ask is not None and ask["px"] == pytest.approx(100.3) and ask["side"] == -1.0


def test_glft_on_real_capture_accounts_add_up(usdm_store: Path):
    params = {"gamma": [0.01, 0.1, 1.0], "min_half_spread": [0.5, 3.0], "max_inventory": [2.0]}
    res = tick_backtest(usdm_store, "glft", params, symbol=USDM)
    st = res.state
    assert res.n_params == 6
    ev = res.events
    assert ev.counts()["trades"] == 21_313 and ev.counts()["quotes"] == 66_089
    mid = ev.mid[~np.isnan(ev.mid)][-1]
    np.testing.assert_allclose(st.equity(), st.account("cash") + st.account("position") * mid)
    assert res.metrics["end_equity"].to_numpy() == pytest.approx(st.equity())
    assert (res.metrics["n_fills"] > 0).all()
    assert (res.metrics["maker_share"] == 1.0).all()  # post-only quotes only
    # the inventory limit: at most one order beyond max_inventory order sizes
    assert (res.metrics["peak_inventory"] <= 3 * 0.002 + 1e-12).all()
    # fees: 2 bps of every fill's notional (roughly 60,000 × 0.002 × 2e-4 each)
    per_fill = res.metrics["fees_paid"] / res.metrics["n_fills"]
    assert per_fill.between(0.02, 0.03).all()
    # the bar clock: one equity sample per minute of the capture (23:54 .. 00:00)
    assert len(res.bar_ts) == 7 and res.equity.shape == (7, 6)
    again = tick_backtest(usdm_store, "glft", params, symbol=USDM)
    np.testing.assert_array_equal(st.AC, again.state.AC)


def test_wider_quotes_fill_less(usdm_store: Path):
    res = tick_backtest(
        usdm_store, "market_maker", {"gamma": [0.001], "k": [1.0], "horizon_s": [0.1],
                                     "min_half_spread": [0.5, 20.0]}, symbol=USDM,
    )  # fmt: skip
    fills = res.metrics["n_fills"].to_numpy()
    assert fills[0] > fills[1]


def test_tick_agents_are_registered_and_refuse_bars():
    assert isinstance(get_agent("market_maker"), MarketMaker)
    assert isinstance(get_agent("glft"), GLFT)
    with pytest.raises(TypeError, match="trades on ticks"):
        get_agent("glft").indicators(None, {})


def test_cli_backtest_replays_ticks(usdm_store: Path):
    r = CliRunner().invoke(
        app,
        ["backtest", "--store", str(usdm_store), "--symbol", USDM, "--agent", "glft",
         "--param", "gamma=0.1,1", "--param", "min_half_spread=1", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["n_params"] == 2 and doc["n_events"] > 500_000 and len(doc["top"]) == 2
    r = CliRunner().invoke(
        app, ["backtest", "--store", str(usdm_store), "--symbol", USDM, "--agent", "glft"]
    )
    assert r.exit_code == 0, r.output
    assert "tick simulator" in r.output and "maker %" in r.output


def test_a_range_from_the_middle_of_the_capture(usdm_store: Path):
    # the book is rebuilt from the snapshot before `start`, but only events from `start` on
    # are replayed, and a flat account is worth its cash before the first quote
    res = tick_backtest(usdm_store, "glft", {"gamma": [0.1], "min_half_spread": [1.0]},
                        symbol=USDM, start="2024-08-08T23:58", interval="30s")  # fmt: skip
    assert res.events.ts[0] >= np.datetime64("2024-08-08T23:58").astype("datetime64[ns]").astype(
        np.int64
    )
    assert np.isfinite(res.equity).all()
    assert (
        np.isfinite(res.metrics["sharpe"]).all() and np.isfinite(res.metrics["max_drawdown"]).all()
    )


def test_event_stream_of_the_real_capture(usdm_store: Path):
    from quantarena.data.read import load_book, load_quotes
    from quantarena.engine.tick.events import DEPTH, QUOTE, TRADE

    ev = load_events(usdm_store, USDM)
    book = load_book(usdm_store, USDM)
    quotes = load_quotes(usdm_store, USDM)
    assert np.all(np.diff(ev.ts) >= 0)
    assert ev.counts()["depth"] == int((~book.is_snapshot).sum())
    # the top of book after each quote event is that quote, in stored order
    qi = ev.kind == QUOTE
    np.testing.assert_array_equal(ev.bid[qi], quotes.bid_px)
    np.testing.assert_array_equal(ev.ask_qty[qi], quotes.ask_qty)
    # a trade carries the last quote before it
    ti = np.flatnonzero(ev.kind == TRADE)[100]
    last_q = np.flatnonzero(qi[:ti])[-1]
    assert ev.bid[ti] == ev.bid[last_q] and ev.ask[ti] == ev.ask[last_q]
    # `prev` of depth rows: the level's size before, replayed here from the raw rows
    levels: dict = {}
    expect = []
    for s, p, q, snap in zip(book.side, book.price, book.qty, book.is_snapshot, strict=True):
        if not snap:
            expect.append(levels.get((s, p), 0.0))
        levels[(s, p)] = q
    np.testing.assert_array_equal(np.sort(ev.prev[ev.kind == DEPTH]), np.sort(expect))
