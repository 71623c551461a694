"""``quantarena feed replay``, ``quantarena live trade|status|run|compact``, ``quantarena kill|resume``.

The live shell on the command line: publish recorded bars to a Redis stream, run paper
traders on it, watch them, and halt or resume them (docs/live.md, docs/streams.md).
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from quantarena.cli.errors import user_errors
from quantarena.live.status import status_table
from quantarena.redis_keys import DEFAULT_PREFIX, PREFIX_ENV

feed_app = typer.Typer(no_args_is_help=True, help="Publish market data to Redis Streams.")
live_app = typer.Typer(no_args_is_help=True, help="Paper trading on Redis Streams.")

REDIS = typer.Option(
    "redis://127.0.0.1:6379/0", "--redis", envvar="QUANTARENA_REDIS", help="Redis URL."
)
PREFIX = typer.Option(
    DEFAULT_PREFIX, "--redis-prefix", envvar=PREFIX_ENV, help="Prefix of every Redis key."
)
FEED = typer.Option("bars", "--feed", help="Feed name (stream {prefix}feed:NAME).")


def _keys(prefix: str) -> Any:
    from quantarena.live.redis_io import LiveKeys

    try:
        return LiveKeys(prefix)
    except ValueError as exc:
        raise ValueError(f"--redis-prefix: {exc}") from None


@feed_app.command("replay")
def feed_replay(
    store: str = typer.Option(..., "--store", help="Store directory or a data file."),
    symbols: str = typer.Option(None, "--symbols", help="Comma-separated symbols (default: all)."),
    speed: str = typer.Option("max", "--speed", help="Times real time (600x) or max."),
    start: str = typer.Option(None, "--start", help="First bar time (UTC)."),
    end: str = typer.Option(None, "--end", help="End bar time (UTC, exclusive)."),
    interval: str = typer.Option(None, "--interval", help="Bar interval (e.g. 1m)."),
    feed: str = FEED,
    maxlen: int = typer.Option(
        100_000, "--maxlen", help="Cap on the stream's length (XADD MAXLEN ~)."
    ),
    reset: bool = typer.Option(False, "--reset", help="Delete the stream first."),
    trades: bool = typer.Option(False, "--trades", help="Publish the store's trades, not bars."),
    ticks: bool = typer.Option(
        False, "--ticks", help="Publish the store's quotes and trades (tick agents)."
    ),
    overlap: bool = typer.Option(
        False,
        "--overlap",
        help="--ticks: cut every symbol at the earliest last quote "
        "(the span an arbitrage backtest replays).",
    ),  # fmt: skip
    redis_url: str = REDIS,
    redis_prefix: str = PREFIX,
) -> None:
    """Publish recorded bars (or trades) to a Redis stream, paced or as fast as possible."""
    with user_errors():
        from quantarena.engine.api import load_bars_any
        from quantarena.live.feed import parse_speed, replay
        from quantarena.live.redis_io import connect

        sp = parse_speed(speed)
        if maxlen < 1:
            raise ValueError(f"--maxlen must be >= 1, got {maxlen}")
        keys = _keys(redis_prefix)
        r = connect(redis_url)
        stream = keys.feed(feed)
        if ticks:
            from quantarena.cli.live_ticks import publish_ticks

            publish_ticks(r, stream, store, symbols, start, end, sp, maxlen, reset, overlap)
            return
        if overlap:
            raise ValueError("--overlap is for --ticks (the legs of an arbitrage agent)")
        if trades:
            from quantarena.data.read import load_trades
            from quantarena.live.feed import replay_trades

            if not symbols:
                raise ValueError("--trades needs --symbols (the symbols whose trades to publish)")
            tr = [load_trades(store, s.strip(), start, end) for s in symbols.split(",")]
            if reset:
                r.delete(stream)
            last = r.xrevrange(stream, count=1)
            first = int(last[0][1][b"seq"]) + 1 if last else 0
            n = replay_trades(r, stream, tr, speed=sp, maxlen=maxlen, first_seq=first)
            typer.echo(f"published {n} trade messages of {symbols} to {stream}")
            return
        bars = load_bars_any(store, symbols, start, end, interval)
        if reset:
            r.delete(stream)
        first = int(r.xlen(stream)) if not reset else 0
        if first:
            last = r.xrevrange(stream, count=1)
            first = int(last[0][1][b"seq"]) + 1 if last else 0
        t0 = time.monotonic()
        n = replay(r, stream, bars, speed=sp, maxlen=maxlen, first_seq=first)
        dt = time.monotonic() - t0
        typer.echo(
            f"published {n} bar messages of {', '.join(bars.symbols)} to {stream} "
            f"in {dt:.2f} s ({n / max(dt, 1e-9):,.0f} msg/s)"
        )


@feed_app.command("exchange")
def feed_exchange(
    exchange: str = typer.Option("binance", "--exchange", help="ccxt exchange id."),
    symbols: str = typer.Option(..., "--symbols", help="Comma-separated ccxt symbols (BTC/USDT)."),
    timeframe: str = typer.Option("1m", "--timeframe", help="Candle length (ccxt timeframe)."),
    since: str = typer.Option(None, "--since", help="First candle time (UTC); default: latest."),
    api_url: str = typer.Option(None, "--api-url", help="Replace the exchange's API host."),
    poll: float = typer.Option(5.0, "--poll", help="Seconds between polls."),
    polls: int = typer.Option(None, "--polls", help="Stop after this many polls."),
    feed: str = FEED,
    maxlen: int = typer.Option(100_000, "--maxlen", help="Cap on the stream's length."),
    redis_url: str = REDIS,
    redis_prefix: str = PREFIX,
) -> None:
    """Publish an exchange's closed candles (ccxt) to a Redis stream, as a replay does."""
    with user_errors():
        from quantarena.data.read import timestamp_ns
        from quantarena.live.ccxt_source import CcxtSource, run_source
        from quantarena.live.redis_io import connect

        keys = _keys(redis_prefix)
        t = timestamp_ns(since)
        src = CcxtSource.from_id(
            exchange, [s.strip() for s in symbols.split(",")], api_url=api_url,
            timeframe=timeframe, since_ms=None if t is None else t // 1_000_000,
        )  # fmt: skip
        r = connect(redis_url)
        stream = keys.feed(feed)
        last = r.xrevrange(stream, count=1)
        first = int(last[0][1][b"seq"]) + 1 if last else 0
        n = run_source(r, stream, src, polls=polls, poll_s=poll, maxlen=maxlen, first_seq=first)
        for rep in src.reports:
            typer.echo(f"reported: {rep}")
        typer.echo(f"published {n} bar messages of {', '.join(src.names)} to {stream}")


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise ValueError(f"--param {it!r}: give name=value")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


@live_app.command("trade")
def live_trade(
    agent: str = typer.Option(..., "--agent", help="Agent name (momentum, mean_reversion, ...)."),
    name: str = typer.Option(None, "--name", help="Account name (default: the agent's)."),
    param: list[str] = typer.Option(None, "--param", help="name=value (one parameter set)."),
    feed: str = FEED,
    out: str = typer.Option("runs/live", "--out", help="Folder of the Parquet events."),
    capital: float = typer.Option(1.0, "--capital", help="Starting paper capital."),
    limits: str = typer.Option(
        None, "--limits", help='Risk limits as JSON, e.g. {"max_drawdown": 0.1}.'
    ),
    idle_stop: float = typer.Option(None, "--idle-stop", help="Stop after this many idle seconds."),
    symbol: str = typer.Option(
        None,
        "--symbol",
        help="Tick agents: the symbol quoted (default: the feed's first); "
        "arbitrage agents: their two legs A,B.",
    ),  # fmt: skip
    redis_url: str = REDIS,
    redis_prefix: str = PREFIX,
) -> None:
    """Run one paper trader on a feed until stopped (Ctrl-C); restart it to resume."""
    with user_errors():
        from quantarena.live.messages import decode
        from quantarena.live.redis_io import connect, retry
        from quantarena.live.redis_trader import RedisTrader
        from quantarena.live.risk import RiskLimits
        from quantarena.live.trader import PaperTrader
        from quantarena.strategies.registry import get_agent

        keys = _keys(redis_prefix)
        r = connect(redis_url)
        first = retry(lambda: r.xrange(keys.feed(feed), count=1), "reading the feed")
        if not first:
            raise ValueError(
                f"--feed {feed!r}: {keys.feed(feed)} is empty — run quantarena feed replay first"
            )
        m = decode(first[0][1], f"{keys.feed(feed)} entry {first[0][0].decode()}")
        ag = get_agent(agent)
        if getattr(ag, "tick", False):
            from quantarena.cli.live_ticks import trade_ticks

            sym = getattr(m, "symbol", None)
            if sym is None:
                raise ValueError(f"--agent {agent}: a tick agent needs a tick feed (--ticks)")
            return trade_ticks(r, keys, ag, name, _parse_params(param), feed, out,
                               json.loads(limits or "{}"), idle_stop, symbol or sym)  # fmt: skip
        if symbol is not None:
            raise ValueError("--symbol is for tick agents (a bar agent trades its feed's symbols)")
        lim = RiskLimits.from_dict({"max_position": ag.max_position, **json.loads(limits or "{}")})
        tr = PaperTrader(
            name or ag.name, ag, _parse_params(param), list(m.symbols), m.interval_ns,
            limits=lim, init_cash=capital,
        )  # fmt: skip
        rt = RedisTrader(r, tr, feed, out, keys=keys)
        typer.echo(f"paper trader {tr.name!r} on {keys.feed(feed)} ({', '.join(tr.symbols)})")
        try:
            n = rt.run(idle_stop_s=idle_stop)
        except KeyboardInterrupt:
            n = None
        ex = rt.trader.exchange
        typer.echo(f"stopped after {n if n is not None else '?'} messages: equity {ex.equity:.6g}")


@live_app.command("status")
def live_status(
    watch: bool = typer.Option(False, "--watch", help="Refresh until Ctrl-C."),
    every: float = typer.Option(2.0, "--every", help="Seconds between refreshes with --watch."),
    as_json: bool = typer.Option(False, "--json", help="Print the status of each agent as JSON."),
    redis_url: str = REDIS,
    redis_prefix: str = PREFIX,
) -> None:
    """Agents, states, positions, PnL, exposure and risk state of the paper traders."""
    with user_errors():
        from rich.console import Console

        from quantarena.live.redis_io import connect

        keys = _keys(redis_prefix)
        r = connect(redis_url)
        console = Console()
        if as_json:
            out = {}
            for n in sorted(x.decode() for x in r.smembers(keys.agents())):
                h = {k.decode(): v.decode() for k, v in r.hgetall(keys.status(n)).items()}
                h["kill"] = (r.get(keys.kill(n)) or r.get(keys.kill()) or b"").decode() or None
                promo = r.hget(keys.promotions(), n)  # promoted/demoted record (live promote)
                h["promotion"] = json.loads(promo) if promo else None
                out[n] = h
            typer.echo(json.dumps(out, indent=2))
            return
        if not watch:
            console.print(status_table(r, keys))
            return
        from rich.live import Live

        try:
            with Live(status_table(r, keys), console=console, refresh_per_second=4) as lv:
                while True:
                    time.sleep(every)
                    lv.update(status_table(r, keys))
        except KeyboardInterrupt:
            pass


@live_app.command("run")
def live_run(
    config: str = typer.Argument(..., help="Live config (YAML): agents, feed, limits, allocation."),
    ray: bool = typer.Option(
        None, "--ray/--no-ray", help="Paper traders as Ray actors (default: the config's)."
    ),
    idle_stop: float = typer.Option(
        None, "--idle-stop", help="Stop when no bar came for this many seconds."
    ),
    detach: bool = typer.Option(
        False, "--detach", help="Run the director as a named, detached Ray actor and return."
    ),
) -> None:
    """Run the paper traders and the director that reallocates their capital on a schedule."""
    with user_errors():
        import dataclasses

        from quantarena.live.service import LiveService, load_live_config

        cfg = load_live_config(config)
        from pathlib import Path

        from quantarena.cli.live_jobs import confine_in_job

        confine_in_job(Path(config), cfg)  # a submitted job: config and out in its dir
        if ray is not None:
            cfg = dataclasses.replace(cfg, ray=ray)
        if detach:
            import ray as ray_mod

            from quantarena.actors.paper import start_live_director

            if not ray_mod.is_initialized():
                ray_mod.init(
                    address="auto" if _ray_running() else None, namespace="quantarena-live"
                )
            actor = start_live_director(cfg)
            actor.run.remote(idle_stop)
            typer.echo("live director started as the detached Ray actor 'live-director' "
                       "(namespace quantarena-live); watch it with quantarena live status")  # fmt: skip
            return
        if cfg.ray:
            import ray as ray_mod

            if not ray_mod.is_initialized():
                ray_mod.init(address="auto" if _ray_running() else None, include_dashboard=False,
                             namespace="quantarena-live")  # fmt: skip

        def report(res: Any) -> None:
            w = ", ".join(f"{n} {v:.1%}" for n, v in res.weights.items())
            typer.echo(f"reallocation on day {res.day}: {w}")

        svc = LiveService(cfg, on_step=report)
        names = ", ".join(a.name for a in cfg.agents)
        typer.echo(f"live: {len(cfg.agents)} agents ({names}) on {svc.keys.feed(cfg.feed)}")
        try:
            out = svc.run(idle_stop_s=idle_stop)
        except KeyboardInterrupt:
            svc.stop_traders()
            out = svc.reallocations
        typer.echo(f"stopped: {len(out)} reallocations")


@live_app.command("compact")
def live_compact(
    out: str = typer.Option("runs/live", "--out", help="Folder of the Parquet events."),
    agent: str = typer.Option(None, "--agent", help="Only this agent (default: every one)."),
    all_days: bool = typer.Option(
        False, "--all-days", help="Also the newest day (leave it while a trader still runs)."
    ),
) -> None:
    """Merge each agent's per-batch event files into one Parquet file per UTC day."""
    with user_errors():
        from pathlib import Path

        from quantarena.live.events import compact

        root = Path(out)
        names = [agent] if agent else sorted(p.name for p in root.glob("*") if p.is_dir())
        if not names:
            raise ValueError(f"--out {out}: no agent folders there — check the path")
        for n in names:
            res = compact(root, n, include_last_day=all_days)
            typer.echo(f"{n}: {res['merged']} files merged into {res['days']} day files, "
                       f"{res['deleted']} removed")  # fmt: skip


def _ray_running() -> bool:
    import os

    return bool(os.environ.get("RAY_ADDRESS"))


def kill_cmd(
    agent: str = typer.Option(None, "--agent", help="Halt only this agent (default: all)."),
    reason: str = typer.Option("manual", "--reason", help="Why (shown in status and logs)."),
    redis_url: str = REDIS,
    redis_prefix: str = PREFIX,
) -> None:
    """Kill switch: every paper trader (or one) flattens and halts at its next bar."""
    with user_errors():
        from quantarena.live.redis_io import connect

        keys = _keys(redis_prefix)
        connect(redis_url).set(keys.kill(agent), reason)
        typer.echo(f"kill switch set for {agent or 'all agents'}: {reason}")


def resume_cmd(
    agent: str = typer.Option(None, "--agent", help="Resume only this agent (default: all)."),
    redis_url: str = REDIS,
    redis_prefix: str = PREFIX,
) -> None:
    """Lift the kill switch and resume halted paper traders (explicit, never automatic)."""
    with user_errors():
        from quantarena.live.redis_io import connect

        keys = _keys(redis_prefix)
        r = connect(redis_url)
        pipe = r.pipeline(transaction=True)
        pipe.delete(keys.kill(agent))
        if agent is None:  # every agent's own switch too
            for n in r.smembers(keys.agents()):
                pipe.delete(keys.kill(n.decode()))
        pipe.incr(keys.resume(agent))
        pipe.execute()
        typer.echo(f"resumed {agent or 'all agents'}")


def register(app: typer.Typer) -> None:
    """Add ``feed``, ``live``, ``kill`` and ``resume`` to the root app."""
    from quantarena.cli.live_promote import promote_cmd

    live_app.command("promote")(promote_cmd)
    app.add_typer(feed_app, name="feed", help="Publish market data to Redis Streams.")
    app.add_typer(live_app, name="live", help="Paper trading on Redis Streams under risk limits.")
    app.command("kill", help="Kill switch: flatten and halt paper traders.")(kill_cmd)
    app.command("resume", help="Resume halted paper traders.")(resume_cmd)
