"""Paper trading on Redis Streams: replay throughput and tick → decision → paper fill latency.

A private redis-server (AOF, ``appendfsync everysec``) on a free port; FTX BTC-PERP 1-minute
bars (data/sample). Eight paper traders (momentum, mean_reversion, breakout, vol_target,
buy_hold and three more momentum parameter sets), each its own process (as Ray actors would
be), each with its own consumer group and the default batching (up to 100 entries per read:
whatever has arrived; a trader that keeps up reads one message at a time). Each batch is made
durable — Parquet events file when it has events, then one MULTI with snapshot, events,
status, XACK — before the next is read.

* **publish**: ``quantarena feed replay --speed max`` of 20,000 bars (XADD MAXLEN, pipelined).
* **8 consumers, backlog**: the 20,000 messages already in the stream; each trader works
  through all of them; messages/s = 8 × 20,000 / wall time until the last one is done.
* **latency**: bars published at a fixed pace (``RATE`` per second) with the send time in an
  extra field ``sent``; each trader records (its commit time − ``sent``) per message: the
  time from the bar's publication to the decision and its paper fill being durable.
  ``EVENTS`` messages per trader.

``python -m benchmarks.bench_live`` or ``python -m benchmarks.run --only live``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "sample" / "btc-perp-20211231-20220201_1m.csv"
AGENTS = [
    ("mom", "momentum", {"fast": 10, "slow": 50}),
    ("mr", "mean_reversion", {"window": 60}),
    ("brk", "breakout", {"window": 60, "exit_window": 30}),
    ("vt", "vol_target", {"lookback": 60, "vol_window": 60}),
    ("hold", "buy_hold", {}),
    ("mom2", "momentum", {"fast": 20, "slow": 100, "ma": "ema"}),
    ("mom3", "momentum", {"fast": 5, "slow": 30}),
    ("mom4", "momentum", {"fast": 30, "slow": 200}),
]
BACKLOG = 10_000
EVENTS = 10_000
RATE = 20.0  # bars per second in the latency run (each of the 8 traders gets every bar)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _trader(url: str, prefix: str, feed: str, name: str, agent: str, params: dict, n: int,
            out: str, q: Any) -> None:  # fmt: skip
    from quantarena.data.intervals import interval_ns
    from quantarena.live.redis_io import LiveKeys, connect
    from quantarena.live.redis_trader import RedisTrader
    from quantarena.live.risk import RiskLimits
    from quantarena.live.trader import PaperTrader
    from quantarena.strategies.registry import get_agent

    tr = PaperTrader(name, get_agent(agent), params, ["BTCPERP"], interval_ns("1m"),
                     limits=RiskLimits(max_orders=None))  # fmt: skip
    rt = RedisTrader(connect(url), tr, feed, out, keys=LiveKeys(prefix))
    rt.latencies = []
    q.put(("ready", name))
    t0 = time.monotonic()
    done = rt.run(max_messages=n)
    q.put(("done", name, done, time.monotonic() - t0, rt.latencies))


def _run_traders(
    url: str, prefix: str, feed: str, n: int, out: str, publish: Any
) -> tuple[float, list]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_trader, args=(url, prefix, feed, nm, ag, p, n, out, q))
             for nm, ag, p in AGENTS]  # fmt: skip
    for p in procs:
        p.start()
    for _ in procs:
        q.get(timeout=120)
    t0 = time.monotonic()
    publish()
    res = [q.get(timeout=1800) for _ in procs]
    wall = time.monotonic() - t0
    for p in procs:
        p.join(60)
    return wall, res


def run(console: Any) -> list[dict]:
    from quantarena.engine.api import load_bars_any
    from quantarena.live.feed import replay
    from quantarena.live.messages import encode_bars
    from quantarena.live.redis_io import LiveKeys, connect

    work = Path(tempfile.mkdtemp(prefix="qa-bench-live-"))
    port = _port()
    srv = subprocess.Popen(
        ["redis-server", "--port", str(port), "--dir", str(work), "--appendonly", "yes",
         "--appendfsync", "everysec", "--save", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    rows: list[dict] = []
    try:
        r = connect(url)
        for _ in range(100):
            try:
                r.ping()
                break
            except Exception:
                time.sleep(0.05)
        bars = load_bars_any(DATA, None, None, None, None)
        keys = LiveKeys("bench")
        big = bars.select(slice(0, BACKLOG))
        t0 = time.monotonic()
        replay(r, keys.feed("backlog"), big, maxlen=10 * BACKLOG)
        dt = time.monotonic() - t0
        rows.append({"case": f"feed replay --speed max, {BACKLOG:,} bars", "msg/s": BACKLOG / dt})
        console.print(rows[-1])

        wall, res = _run_traders(url, "bench", "backlog", BACKLOG, str(work / "out1"), lambda: None)
        assert all(x[2] == BACKLOG for x in res), res
        rows.append({"case": f"8 paper traders (processes) through a {BACKLOG:,}-message backlog",
                     "msg/s": 8 * BACKLOG / wall})  # fmt: skip
        console.print(rows[-1])

        lat_bars = bars.select(slice(BACKLOG, BACKLOG + EVENTS))
        keys2 = LiveKeys("bench2")
        stream = keys2.feed("paced")

        def publish() -> None:
            t_start = time.monotonic()
            pub = connect(url)
            for t in range(lat_bars.n_bars):
                wait = t_start + t / RATE - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                f = encode_bars(t, int(lat_bars.ts[t]), lat_bars.interval_ns, lat_bars.symbols,
                                lat_bars.open[t], lat_bars.high[t], lat_bars.low[t],
                                lat_bars.close[t], lat_bars.volume[t])  # fmt: skip
                f["sent"] = str(time.time_ns())
                pub.xadd(stream, f, maxlen=10 * EVENTS, approximate=True)

        r.xgroup_create(stream, "warm", id="0", mkstream=True)
        wall, res = _run_traders(url, "bench2", "paced", EVENTS, str(work / "out2"), publish)
        lat = np.concatenate([np.asarray(x[4], np.float64) for x in res]) / 1e6
        per = {x[1]: np.percentile(np.asarray(x[4]) / 1e6, 99) for x in res}
        rows.append({
            "case": f"tick → decision → durable paper fill, 8 agents × {EVENTS:,} bars at {RATE:g}/s",
            "p50 ms": float(np.percentile(lat, 50)),
            "p99 ms": float(np.percentile(lat, 99)),
            "worst agent p99 ms": float(max(per.values())),
            "events": int(lat.size),
        })  # fmt: skip
        console.print(rows[-1])
        (work / "lat.json").write_text(json.dumps(rows))
    finally:
        srv.kill()
        srv.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
