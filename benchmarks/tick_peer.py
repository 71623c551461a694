"""Side by side with hftbacktest (https://github.com/nkaz001/hftbacktest, MIT): the same
orders on the same data under the same model choices, in both simulators.

Data: the bundled Binance USD-M BTCUSDT capture (REST snapshot, ``@depth@0ms`` updates,
trades) as stored by ``quantarena data ingest``. For hftbacktest the book rows become
``DEPTH_SNAPSHOT_EVENT`` / ``DEPTH_EVENT`` rows and the trades ``TRADE_EVENT`` rows
(``BUY_EVENT`` when the aggressor bought), exchange and local time both the exchange time
(no feed latency). Models in both: constant order entry latency, the risk-averse queue,
partial fills, maker/taker fees on traded value, tick 0.1 and lot 0.001.

The order plan: every ``every_s`` seconds, quote one post-only (GTX) bid at the best bid
and one ask at the best ask (``qty`` each) as the best bid/ask stood at that time in the
stored quotes, replacing the previous pair. Both simulators get exactly these prices and
times; what each does with them — queue position, fills, position, cash — is compared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SYMBOL = "BINANCE-USDM:BTCUSDT"


@dataclass
class Plan:
    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    qty: float


def make_plan(events: Any, every_s: float = 1.0, qty: float = 0.002) -> Plan:
    """Quote times (every ``every_s`` from the first quote + 1 s) and the touch then."""
    step = int(every_s * 1e9)
    isq = ~np.isnan(events.bid)
    t0 = int(events.ts[isq][0]) + 1_000_000_000
    times = np.arange(t0, int(events.ts[-1]) - step, step, dtype=np.int64)
    at = np.searchsorted(events.ts, times, side="right") - 1
    return Plan(times, events.bid[at].copy(), events.ask[at].copy(), qty)


def run_ours(events: Any, plan: Plan, latency_ns: int, maker_bps: float, taker_bps: float):
    from quantarena.engine.tick import (
        ConstantLatency,
        ExchangeFilters,
        MakerTaker,
        Order,
        RiskAverse,
        Venue,
        replay_orders,
    )

    orders = []
    for t, b, a in zip(plan.ts, plan.bid, plan.ask, strict=True):
        orders.append(Order(int(t), "post_only", 1, float(b), plan.qty, slot=0))
        orders.append(Order(int(t), "post_only", -1, float(a), plan.qty, slot=1))
    venue = Venue(
        queue=RiskAverse(),
        latency=ConstantLatency(entry_ns=latency_ns),
        fees=MakerTaker(maker_bps, taker_bps),
        filters=ExchangeFilters(tick=0.1, lot=0.001),
    )
    st = replay_orders(events, orders, venue, max_log=100_000)
    mid = events.mid[~np.isnan(events.mid)][-1]
    return {
        "fills": int(st.account("n_fills")[0]),
        "position": float(st.account("position")[0]),
        "cash": float(st.account("cash")[0]),
        "fees": float(st.account("fees")[0]),
        "pnl": float(st.account("cash")[0] + st.account("position")[0] * mid),
        "fill_log": st.fills(),
    }


def hbt_events(store: str | Path, symbol: str = SYMBOL) -> tuple[np.ndarray, np.ndarray]:
    """(initial snapshot, feed) in hftbacktest's event dtype."""
    import hftbacktest as H

    from quantarena.data.read import load_book, load_trades

    book = load_book(store, symbol)
    tr = load_trades(store, symbol)
    snap = book.is_snapshot
    base = H.EXCH_EVENT | H.LOCAL_EVENT

    def side_flag(s: np.ndarray) -> np.ndarray:
        return np.where(s > 0, H.BUY_EVENT, H.SELL_EVENT).astype(np.uint64)

    s = np.zeros(int(snap.sum()), dtype=H.event_dtype)
    s["ev"] = H.DEPTH_SNAPSHOT_EVENT | base | side_flag(book.side[snap])
    s["exch_ts"] = s["local_ts"] = book.ts[snap]
    s["px"], s["qty"] = book.price[snap], book.qty[snap]
    d = ~snap
    n_d, n_t = int(d.sum()), len(tr)
    feed = np.zeros(n_d + n_t, dtype=H.event_dtype)
    feed["ev"][:n_d] = H.DEPTH_EVENT | base | side_flag(book.side[d])
    feed["exch_ts"][:n_d] = book.ts[d]
    feed["px"][:n_d], feed["qty"][:n_d] = book.price[d], book.qty[d]
    feed["ev"][n_d:] = H.TRADE_EVENT | base | side_flag(tr.side)
    feed["exch_ts"][n_d:] = tr.ts
    feed["px"][n_d:], feed["qty"][n_d:] = tr.price, tr.qty
    feed["local_ts"] = feed["exch_ts"]
    order = np.argsort(feed["exch_ts"], kind="stable")
    return s, feed[order]


def run_hftbacktest(store: str | Path, plan: Plan, latency_ns: int, maker_bps: float,
                    taker_bps: float, symbol: str = SYMBOL) -> dict[str, Any]:  # fmt: skip
    import hftbacktest as H
    from numba import njit

    snap, feed = hbt_events(store, symbol)
    asset = (
        H.BacktestAsset()
        .data([feed])
        .initial_snapshot(snap)
        .linear_asset(1.0)
        .constant_order_latency(latency_ns, latency_ns)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(maker_bps / 1e4, taker_bps / 1e4)
        .tick_size(0.1)
        .lot_size(0.001)
        .last_trades_capacity(0)
    )
    hbt = H.HashMapMarketDepthBacktest([asset])

    @njit
    def drive(hbt, t_start, ts, bid, ask, qty, out):
        oid = 1
        now = t_start  # hftbacktest's clock reads int64 max until the first elapse
        for k in range(ts.shape[0]):
            if hbt.elapse(ts[k] - now) != 0:
                break
            now = ts[k]
            orders = hbt.orders(0)
            values = orders.values()
            while values.has_next():
                o = values.get()
                if o.cancellable:
                    hbt.cancel(0, o.order_id, False)
            hbt.clear_inactive_orders(0)
            hbt.submit_buy_order(0, oid, bid[k], qty, H.GTX, H.LIMIT, False)
            hbt.submit_sell_order(0, oid + 1, ask[k], qty, H.GTX, H.LIMIT, False)
            oid += 2
        hbt.elapse(1_000_000_000)
        sv = hbt.state_values(0)
        depth = hbt.depth(0)
        out[0] = sv.position
        out[1] = sv.balance
        out[2] = sv.fee
        out[3] = sv.num_trades
        out[4] = 0.5 * (depth.best_bid + depth.best_ask)

    out = np.zeros(5)
    t0 = time.perf_counter()
    drive(hbt, int(feed["exch_ts"][0]), plan.ts, plan.bid, plan.ask, plan.qty, out)
    elapsed = time.perf_counter() - t0
    hbt.close()
    return {
        "elapsed_s": elapsed,
        "n_events": int(feed.shape[0]),
        "fills": int(out[3]),
        "position": float(out[0]),
        "cash": float(out[1] - out[2]),
        "fees": float(out[2]),
        "pnl": float(out[1] - out[2] + out[0] * out[4]),
    }


def compare(store: str | Path, every_s: float = 1.0, latency_ms: float = 10.0,
            maker_bps: float = 2.0, taker_bps: float = 5.0) -> dict[str, dict]:  # fmt: skip
    """Both simulators on the same plan; returns {"quantarena": {...}, "hftbacktest": {...}}."""
    from quantarena.engine.tick import load_events

    events = load_events(store, SYMBOL)
    plan = make_plan(events, every_s)
    lat = int(latency_ms * 1e6)
    ours = run_ours(events, plan, lat, maker_bps, taker_bps)
    peer = run_hftbacktest(store, plan, lat, maker_bps, taker_bps)
    return {"quantarena": ours, "hftbacktest": peer, "n_plan": len(plan.ts)}


if __name__ == "__main__":
    import sys

    res = compare(sys.argv[1])
    for k in ("quantarena", "hftbacktest"):
        print(k, {a: b for a, b in res[k].items() if a != "fill_log"})
    print("plan", res["n_plan"])
