"""Where a paper trader's time goes per event: CPU time, Redis round trips and commands.

One :class:`~quantarena.live.redis_trader.RedisTrader` in this process on a private
redis-server (AOF, ``appendfsync everysec``, a free port), fed a replay of FTX BTC-PERP
1-minute bars already in the stream, reading ONE message per batch (``--batch 1``: what a
trader that keeps up with a paced feed does). Reported per event:

* CPU ms (``time.process_time``: this process only, so the figure does not depend on how
  loaded the shared machine is), and wall ms for reference;
* Redis round trips (calls to ``send_packed_command``: one per plain command, one per
  pipeline) and Redis commands by name (``INFO commandstats`` difference);
* with ``--profile``: the top of a cProfile of the run (cumulative time).

``python -m benchmarks.prof_live [--agent vol_target] [--bars 2000] [--batch 1] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "sample" / "btc-perp-20211231-20220201_1m.csv"
PARAMS = {
    "momentum": {"fast": 10, "slow": 50},
    "mean_reversion": {"window": 60},
    "breakout": {"window": 60, "exit_window": 30},
    "vol_target": {"lookback": 60, "vol_window": 60},
    "buy_hold": {},
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _commandstats(r: Any) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in
            r.info("commandstats").items()}  # fmt: skip


def profile(
    agent: str, n_bars: int, batch: int, prof: bool, sort: str = "cumulative"
) -> dict[str, Any]:
    """Run one trader through ``n_bars`` replayed bars; returns the per-event figures."""
    import redis

    from quantarena.data.intervals import interval_ns
    from quantarena.engine.api import load_bars_any
    from quantarena.live.feed import replay
    from quantarena.live.redis_io import LiveKeys, connect
    from quantarena.live.redis_trader import RedisTrader
    from quantarena.live.risk import RiskLimits
    from quantarena.live.trader import PaperTrader
    from quantarena.strategies.registry import get_agent

    work = Path(tempfile.mkdtemp(prefix="qa-prof-live-"))
    port = _port()
    srv = subprocess.Popen(
        ["redis-server", "--port", str(port), "--dir", str(work), "--appendonly", "yes",
         "--appendfsync", "everysec", "--save", ""],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        r = connect(f"redis://127.0.0.1:{port}/0")
        for _ in range(200):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        bars = load_bars_any(DATA, None, None, None, None).select(slice(0, n_bars))
        keys = LiveKeys("prof")
        replay(r, keys.feed("f"), bars)
        tr = PaperTrader("p", get_agent(agent), PARAMS[agent], ["BTCPERP"], interval_ns("1m"),
                         limits=RiskLimits(max_orders=None))  # fmt: skip
        # compile (Numba) and warm everything once on a throw-away trader, off the clock
        warm = PaperTrader("w", get_agent(agent), PARAMS[agent], ["BTCPERP"], interval_ns("1m"))
        warm.run(bars.select(slice(0, 50)))
        rt = RedisTrader(r, tr, "f", work / "out", keys=keys, batch=batch)
        # round trips: every request written to the socket (a pipeline is one)
        sends = [0]
        conn_cls = redis.connection.Connection
        orig = conn_cls.send_packed_command

        def counted(self: Any, *a: Any, **k: Any) -> Any:
            sends[0] += 1
            return orig(self, *a, **k)

        conn_cls.send_packed_command = counted  # type: ignore[method-assign]
        try:
            before = _commandstats(r)
            s0 = sends[0]
            pr = cProfile.Profile() if prof else None
            c0, w0 = time.process_time(), time.perf_counter()
            if pr is not None:
                pr.enable()
            done = rt.run(max_messages=n_bars)
            if pr is not None:
                pr.disable()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            trips = sends[0] - s0
        finally:
            conn_cls.send_packed_command = orig  # type: ignore[method-assign]
        after = _commandstats(r)
        cmds = {k: (after.get(k, 0) - before.get(k, 0)) / done for k in after
                if k not in ("info",) and after.get(k, 0) != before.get(k, 0)}  # fmt: skip
        files = len(list((work / "out" / "p").glob("*.parquet")))
        out = {
            "agent": agent, "events": done, "batch": batch,
            "cpu_ms_per_event": cpu / done * 1e3, "wall_ms_per_event": wall / done * 1e3,
            "round_trips_per_event": trips / done,
            "parquet_files_per_event": files / done,
            "commands_per_event": {k: round(v, 3) for k, v in sorted(cmds.items())},
        }  # fmt: skip
        if pr is not None:
            pstats.Stats(pr).sort_stats(sort).print_stats(40)
        return out
    finally:
        srv.kill()
        srv.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", default="vol_target", choices=sorted(PARAMS))
    ap.add_argument("--bars", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sort", default="cumulative", help="cProfile order (tottime, cumulative)")
    a = ap.parse_args()
    import os

    res = profile(a.agent, a.bars, a.batch, a.profile, a.sort)
    res["load"] = os.getloadavg()[0]
    print(res)


if __name__ == "__main__":
    main()
