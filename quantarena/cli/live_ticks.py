"""The tick side of ``quantarena feed replay --ticks`` and ``quantarena live trade`` with a
tick agent (market_maker, glft; pairs_arb, cross_venue_arb on two legs): publish a store's
quotes and trades, run one tick paper trader on them (:mod:`quantarena.live.tick_redis`,
:mod:`quantarena.live.arb_redis`)."""

from __future__ import annotations

from typing import Any

import typer


def publish_ticks(
    r: Any, stream: str, store: str, symbols: str | None, start: Any, end: Any,
    speed: float | None, maxlen: int, reset: bool, overlap: bool = False,
) -> int:  # fmt: skip
    """Publish the quotes and trades of ``symbols`` in ``store`` to ``stream`` (merged by
    exchange time; ``overlap``: each cut at the earliest last quote, :func:`.overlap`)."""
    from quantarena.engine.tick.events import load_events
    from quantarena.live.tick_feed import overlap as cut
    from quantarena.live.tick_feed import replay_ticks

    if not symbols:
        raise ValueError("--ticks needs --symbols (the symbols whose quotes and trades to publish)")
    evs = [load_events(store, s.strip(), start, end, depth=False) for s in symbols.split(",")]
    if overlap:
        evs = cut(evs)
    if reset:
        r.delete(stream)
    last = r.xrevrange(stream, count=1)
    first = int(last[0][1][b"seq"]) + 1 if last else 0
    n = replay_ticks(r, stream, evs, speed=speed, maxlen=maxlen, first_seq=first)
    typer.echo(f"published {n} quote/trade messages of {symbols} to {stream}")
    return n


def trade_ticks(
    r: Any, keys: Any, agent: Any, name: str | None, params: dict[str, Any], feed: str,
    out: str, limits: dict[str, Any], idle_stop: float | None, symbol: str,
) -> None:  # fmt: skip
    """Run one tick paper trader on ``feed`` until stopped (or idle); an arbitrage agent
    trades the two legs ``symbol`` = ``A,B``."""
    from quantarena.live.tick_redis import TickRedisTrader
    from quantarena.live.tick_trader import TickPaperTrader

    if int(getattr(agent, "n_symbols", 1)) == 2:
        return _trade_arb(r, keys, agent, name, params, feed, out, limits, idle_stop, symbol)

    from types import SimpleNamespace

    from quantarena.live.launch import check_tick_limits

    spec = SimpleNamespace(name=name or agent.name, limits=limits)
    tr = TickPaperTrader(spec.name, agent, params or None, symbol,
                         **check_tick_limits(spec))  # fmt: skip
    rt = TickRedisTrader(r, tr, feed, out, keys=keys)
    typer.echo(f"tick paper trader {tr.name!r} on {keys.feed(feed)} ({symbol})")
    try:
        n = rt.run(idle_stop_s=idle_stop)
    except KeyboardInterrupt:
        n = None
    t = rt.trader
    typer.echo(
        f"stopped after {n if n is not None else '?'} messages: equity {t.equity:.6g}, "
        f"position {t.position:+g}, fills {t.n_fills}"
    )


def _trade_arb(
    r: Any, keys: Any, agent: Any, name: str | None, params: dict[str, Any], feed: str,
    out: str, limits: dict[str, Any], idle_stop: float | None, symbol: str,
) -> None:  # fmt: skip
    from types import SimpleNamespace

    from quantarena.live.arb_redis import ArbRedisTrader
    from quantarena.live.arb_trader import ArbPaperTrader
    from quantarena.live.launch import arb_symbols, check_arb_limits

    spec = SimpleNamespace(name=name or agent.name, agent=agent.name, symbol=symbol,
                           limits=limits)  # fmt: skip
    legs = arb_symbols(spec)
    tr = ArbPaperTrader(spec.name, agent, params or None, legs, **check_arb_limits(spec))
    rt = ArbRedisTrader(r, tr, feed, out, keys=keys)
    typer.echo(f"arbitrage paper trader {tr.name!r} on {keys.feed(feed)} ({','.join(legs)})")
    try:
        n = rt.run(idle_stop_s=idle_stop)
    except KeyboardInterrupt:
        n = None
    t = rt.trader
    pos = ", ".join(f"{k} {v:+g}" for k, v in t.positions.items())  # type: ignore[attr-defined]
    typer.echo(
        f"stopped after {n if n is not None else '?'} messages: equity {t.equity:.6g}, "
        f"positions {pos}, orders {t.n_orders}, fills {t.n_fills}"  # type: ignore[attr-defined]
    )
