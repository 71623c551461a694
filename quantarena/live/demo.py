"""``make demo-live``: the living tournament on bundled real data, in a few minutes.

Replays Coinbase BTC/USD hourly bars (2018-01-01 → 2018-03-05, about nine weeks) through Redis
at full speed into five paper-trading agents (configs/live.yaml), with weekly reallocations
by the Kelly allocator, a kill-switch drill (``quantarena kill`` on one agent in week 4,
``quantarena resume`` a week later) and an MLflow run to look at. Needs a Redis at
``--redis`` (default 127.0.0.1:6379); writes under the config's prefix only, which it clears
first.

With ``tournament=True`` (``make demo-live``; ``--no-tournament`` leaves it out) it first runs
the small backtest tournament of ``configs/promote.yaml`` (in a subprocess, about a minute) and
promotes its gate passers into paper trading beside the config's agents; the ones that fail a
live gate after 7 paper days are demoted (docs/live.md, "Promotion and demotion").

    python -m quantarena.live.demo [--redis URL] [--config configs/live.yaml] [--no-tournament]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path

from quantarena.engine.api import load_bars_any
from quantarena.live.feed import replay
from quantarena.live.redis_io import connect
from quantarena.live.service import LiveService, load_live_config

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "sample" / "Coinbase_BTCUSD_1h.csv"
NS_PER_DAY = 86_400_000_000_000


def run_demo(
    config: str | Path = ROOT / "configs" / "live.yaml",
    redis_url: str | None = None,
    out: str | Path | None = None,
    start: str = "2018-01-01",
    end: str = "2018-03-05",
    drill: str = "mr",
    echo: bool = True,
    tournament: bool = False,
) -> LiveService:
    """Run the demo; returns the finished :class:`~.service.LiveService`. ``tournament``:
    run ``configs/promote.yaml`` first and promote its best gate passers (up to 3)."""
    cfg = load_live_config(config)
    over = {}
    if redis_url:
        over["redis"] = redis_url
    if out:
        over["out"] = str(out)
        if cfg.mlflow:
            over["mlflow"] = {**cfg.mlflow, "uri": f"sqlite:///{Path(out) / 'mlflow.db'}"}
    cfg = dataclasses.replace(cfg, **over)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    if tournament:
        from quantarena.live.promotion import PromoteConfig

        cfg = dataclasses.replace(
            cfg, promote=PromoteConfig(str(run_tournament(Path(cfg.out) / "tournament", echo)), 3)
        )
    r = connect(cfg.redis)
    say = print if echo else (lambda *a, **k: None)

    def on_step(res) -> None:
        w = "  ".join(f"{n} {v:5.1%}" for n, v in res.weights.items())
        say(f"  reallocation, day {res.day - first_day:2d}: {w}")

    svc = LiveService(cfg, r, on_step=on_step)
    for k in r.scan_iter(match=svc.keys.prefix + "*"):
        r.delete(k)
    bars = load_bars_any(DATA, None, start, end, None)
    first_day = int(bars.ts[0]) // NS_PER_DAY
    t0 = time.monotonic()
    n = replay(r, svc.keys.feed(cfg.feed), bars)
    say(f"published {n} hourly bars ({n // 24} days) to {svc.keys.feed(cfg.feed)} "
        f"in {time.monotonic() - t0:.2f} s")  # fmt: skip
    stop = threading.Event()

    def drill_thread() -> None:  # kill one agent in week 4, resume it in week 5
        killed = False
        while not stop.is_set():
            v = r.hget(svc.keys.status(drill), "last_ts")
            day = (int(v) // NS_PER_DAY - first_day) if v else -1
            if not killed and day >= 21:
                r.set(svc.keys.kill(drill), "demo drill")
                say(f"  kill switch: {drill} (day {day})")
                killed = True
            if killed and day >= 28:
                r.delete(svc.keys.kill(drill))
                r.incr(svc.keys.resume(drill))
                say(f"  resume: {drill} (day {day})")
                return
            time.sleep(0.005)

    th = threading.Thread(target=drill_thread, daemon=True)
    th.start()
    say(f"paper trading {len(cfg.agents)} agents: {', '.join(a.name for a in cfg.agents)}")
    t0 = time.monotonic()
    svc.run(idle_stop_s=2.0, poll_s=0.05)
    stop.set()
    say(f"done in {time.monotonic() - t0:.1f} s: {len(svc.reallocations)} reallocations")
    for e in svc.promoter.events if svc.promoter is not None else []:
        day = "start" if e["day"] is None else f"day {e['day'] - first_day:2d}"
        say(f"  {e['state']:8s} {day}: {e['account']} ({e['reason']})")
    if echo:
        from rich.console import Console

        from quantarena.live.status import status_table

        Console(width=160).print(status_table(r, svc.keys))
        if cfg.mlflow:
            say(f"MLflow run: mlflow ui --backend-store-uri {cfg.mlflow['uri']}")
        say(f"events (Parquet): {cfg.out}/<agent>/events-*.parquet")
    return svc


def run_tournament(out: Path, echo: bool = True) -> Path:
    """Run ``configs/promote.yaml`` into ``out`` (no Ray, no MLflow); returns ``out``."""
    cmd = [sys.executable, "-m", "quantarena", "tournament", "run",
           str(ROOT / "configs" / "promote.yaml"), "--no-ray", "--no-mlflow",
           "--output-dir", str(Path(out).resolve()), "--json"]  # fmt: skip
    if echo:
        print(f"backtest tournament configs/promote.yaml -> {out} ...")
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"the demo tournament failed: {res.stderr.strip()[-500:]}")
    if echo:
        print(f"  finished in {time.monotonic() - t0:.0f} s "
              f"(candidates: quantarena live promote --from {out})")  # fmt: skip
    return Path(out)


def main() -> None:
    ap = argparse.ArgumentParser(description="The living tournament demo (paper trading on Redis).")
    ap.add_argument("--config", default=str(ROOT / "configs" / "live.yaml"))
    ap.add_argument("--redis", default=None, help="Redis URL (default: the config's)")
    ap.add_argument("--out", default=None, help="output folder (default: the config's)")
    ap.add_argument("--no-tournament", action="store_true",
                    help="skip the backtest tournament and the promotion from it")  # fmt: skip
    a = ap.parse_args()
    run_demo(a.config, a.redis, a.out, tournament=not a.no_tournament)


if __name__ == "__main__":
    main()
