"""Which feed an agent of a live config trades on, and its Redis paper trader — a bar trader
(:class:`~.redis_trader.RedisTrader`) or a tick trader (:class:`~.tick_redis.TickRedisTrader`),
the same way for the service's threads and the Ray actors (:mod:`quantarena.actors.paper`).

A live config may mix bar agents and tick agents (``market_maker``, ``glft``, and the two-leg
arbitrage agents ``pairs_arb``, ``cross_venue_arb``): bar agents read the config's ``feed``
(bars), tick agents its ``tick_feed`` (quotes and trades, ``quantarena feed replay --ticks``);
an agent's own ``feed:`` key overrides either. An arbitrage agent names its legs with
``symbol: A,B`` (both published on its feed) and runs an
:class:`~.arb_redis.ArbRedisTrader`. Both kinds write their
daily equity marks to ``live:agent:{name}:daily``, so the director ranks them together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from quantarena.live.redis_io import retry

__all__ = ["FeedShape", "agent_feed", "arb_symbols", "feed_shape", "is_arb_agent",
           "is_tick_agent", "make_arb_trader", "redis_trader", "tick_position"]  # fmt: skip

#: the breakers every tick agent takes (fractions; defaults: :class:`~.risk.RiskLimits`'s)
BREAKER_LIMITS = frozenset({"max_drawdown", "daily_loss"})
#: the risk keys a market maker takes (``max_position_qty`` in base units, the breakers);
#: the kill switch needs none
TICK_LIMITS = frozenset({"max_position_qty"}) | BREAKER_LIMITS
#: the risk keys an arbitrage agent takes (fractions of its capital: per instrument, gross;
#: the breakers)
ARB_LIMITS = frozenset({"max_position", "max_gross"}) | BREAKER_LIMITS


def breaker_limits(spec: Any, defaults: dict[str, Any] | None = None) -> dict[str, float | None]:
    """A tick agent's breakers ``max_drawdown`` and ``daily_loss`` (fractions; null: off):
    its own ``limits``, else the config's ``limits`` (``defaults``), else the
    :class:`~.risk.RiskLimits` defaults (0.20, 0.05). One-line error naming the field."""
    from quantarena.live.risk import RiskLimits, check_fraction

    out: dict[str, float | None] = {}
    for k in sorted(BREAKER_LIMITS):
        src = spec.limits if k in spec.limits else (defaults or {})
        v = src.get(k, getattr(RiskLimits, k))
        try:
            check_fraction(k, v)
        except ValueError:
            raise ValueError(
                f"agent {spec.name!r}: limits.{k} must be a fraction > 0 or null, got {v!r}"
            ) from None
        out[k] = None if v is None else float(v)
    return out


def check_tick_limits(spec: Any, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """A market maker's risk limits as :class:`~.tick_trader.TickPaperTrader` keywords:
    ``max_position`` (from ``max_position_qty``, base units; default none) and the breakers
    (:func:`breaker_limits`)."""
    bad = sorted(set(spec.limits) - TICK_LIMITS)
    if bad:
        raise ValueError(
            f"agent {spec.name!r}: limits {bad}: a tick agent takes max_position_qty "
            "(base units), max_drawdown and daily_loss (fractions)"
        )
    q = spec.limits.get("max_position_qty")
    if q is not None and (isinstance(q, bool) or not (isinstance(q, int | float) and q > 0)):
        raise ValueError(
            f"agent {spec.name!r}: limits.max_position_qty must be > 0 base units, got {q!r}"
        )
    return {"max_position": None if q is None else float(q), **breaker_limits(spec, defaults)}


def is_arb_agent(kind: str, options: dict[str, Any] | None = None) -> bool:
    """Whether the registered agent ``kind`` is a two-leg tick agent (arbitrage)."""
    from quantarena.strategies.registry import get_agent

    ag = get_agent(kind, **(options or {}))
    return bool(getattr(ag, "tick", False)) and int(getattr(ag, "n_symbols", 1)) == 2


def arb_symbols(spec: Any) -> tuple[str, str]:
    """An arbitrage agent's two legs from its ``symbol: A,B`` (one-line error otherwise)."""
    legs = [x.strip() for x in str(spec.symbol or "").split(",") if x.strip()]
    if len(legs) != 2:
        raise ValueError(
            f"agent {spec.name!r} ({spec.agent}) trades two legs: set symbol: A,B (both "
            f"published on its tick feed), got {spec.symbol!r}"
        )
    return legs[0], legs[1]


def check_arb_limits(spec: Any, defaults: dict[str, Any] | None = None) -> dict[str, float | None]:
    """An arbitrage agent's risk limits (defaults: 10 % of capital per instrument, gross 1.0;
    the breakers, :func:`breaker_limits`)."""
    bad = sorted(set(spec.limits) - ARB_LIMITS)
    if bad:
        raise ValueError(
            f"agent {spec.name!r}: limits {bad}: an arbitrage agent takes max_position, "
            "max_gross, max_drawdown and daily_loss (fractions of its capital)"
        )
    out: dict[str, float | None] = {"max_position": 0.10, "max_gross": 1.0,
                                    **breaker_limits(spec, defaults)}  # fmt: skip
    for k in ("max_position", "max_gross"):
        if k in spec.limits:
            v = spec.limits[k]
            if v is not None and not (isinstance(v, int | float) and v > 0):
                raise ValueError(f"agent {spec.name!r}: limits.{k} must be > 0 or null, got {v!r}")
            out[k] = None if v is None else float(v)
    return out


def make_arb_trader(spec: Any, defaults: dict[str, Any] | None = None) -> Any:
    """The :class:`~.arb_trader.ArbPaperTrader` of ``spec`` on its legs ``symbol: A,B``
    (``defaults``: the config's ``limits``, for the breakers the agent does not set)."""
    from quantarena.live.arb_trader import ArbPaperTrader
    from quantarena.strategies.registry import get_agent

    return ArbPaperTrader(spec.name, get_agent(spec.agent, **spec.options), spec.params or None,
                          arb_symbols(spec), **check_arb_limits(spec, defaults))  # fmt: skip


@dataclass(frozen=True)
class FeedShape:
    """A feed as its first message shows it: ``tick`` (quotes/trades) or bars, its
    symbols (a tick feed: the first message's symbol), bar interval (ns; 0 for ticks) and the
    first message's exchange time (ns since the epoch)."""

    tick: bool
    symbols: tuple[str, ...]
    interval_ns: int
    first_ts: int


def is_tick_agent(kind: str, options: dict[str, Any] | None = None) -> bool:
    """Whether the registered agent ``kind`` trades ticks (market makers, arbitrageurs)."""
    from quantarena.strategies.registry import get_agent

    return bool(getattr(get_agent(kind, **(options or {})), "tick", False))


def agent_feed(cfg: Any, spec: Any) -> str:
    """The feed ``spec`` trades on: its own ``feed``, else ``tick_feed`` (tick agents) or
    ``feed`` (bar agents) of the live config ``cfg``."""
    if spec.feed:
        return str(spec.feed)
    if is_tick_agent(spec.agent, spec.options):
        if not cfg.tick_feed:
            raise ValueError(
                f"agent {spec.name!r} ({spec.agent}) trades ticks: set tick_feed: in the live "
                "config (a feed of quantarena feed replay --ticks) or the agent's feed:"
            )
        return str(cfg.tick_feed)
    return str(cfg.feed)


def feed_shape(r: Any, stream: str, wait_s: float = 60.0) -> FeedShape:
    """The :class:`FeedShape` of ``stream`` (waits up to ``wait_s`` for a first message)."""
    from quantarena.live.messages import BarsMessage, decode

    deadline = time.monotonic() + wait_s
    while True:
        first = retry(lambda: r.xrange(stream, count=1), "reading the feed")
        if first:
            m = decode(first[0][1], f"{stream} entry {first[0][0].decode()}")
            if isinstance(m, BarsMessage):
                return FeedShape(False, tuple(m.symbols), int(m.interval_ns), int(m.ts))
            return FeedShape(True, (str(m.symbol),), 0, int(m.ts))  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{stream} stayed empty for {wait_s:g} s — start quantarena feed replay"
            )
        time.sleep(0.1)


def tick_position(r: Any, stream: str, start_ts: int) -> str:
    """The entry id of the last message of tick feed ``stream`` before exchange time
    ``start_ts`` (a consumer group created there delivers the messages from ``start_ts``
    on); ``"0"`` when there is none."""
    from quantarena.live.messages import decode

    hi = "+"
    while True:
        chunk = r.xrevrange(stream, max=hi, min="-", count=1000)
        for eid, fields in chunk:
            if decode(fields, f"{stream} entry {eid.decode()}").ts < start_ts:
                return eid.decode()
        if len(chunk) < 1000:
            return "0"
        hi = "(" + chunk[-1][0].decode()


def make_tick_trader(spec: Any, symbol: str, defaults: dict[str, Any] | None = None) -> Any:
    """The :class:`~.tick_trader.TickPaperTrader` of ``spec`` quoting ``symbol`` (its
    ``symbol:`` when given), with its ``limits`` (:func:`check_tick_limits`; ``defaults``: the
    config's ``limits``, for the breakers the agent does not set)."""
    from quantarena.live.tick_trader import TickPaperTrader
    from quantarena.strategies.registry import get_agent

    return TickPaperTrader(spec.name, get_agent(spec.agent, **spec.options),
                           spec.params or None, spec.symbol or symbol,
                           **check_tick_limits(spec, defaults))  # fmt: skip


def redis_trader(
    cfg: Any, spec: Any, r: Any, shape: FeedShape, start_id: str = "0", history: Any = None
) -> Any:
    """``spec``'s Redis paper trader on its feed (:func:`agent_feed`) of shape ``shape``:
    a tick trader for a tick agent, a bar trader otherwise (warmed up on ``history``, a bar
    panel, when given). A tick agent on a bar feed, or the reverse, is an error naming both."""
    from quantarena.live.redis_io import LiveKeys

    feed = agent_feed(cfg, spec)
    tick = is_tick_agent(spec.agent, spec.options)
    if tick != shape.tick:
        kind = "tick" if shape.tick else "bar"
        raise ValueError(
            f"agent {spec.name!r} ({spec.agent}) is a {'tick' if tick else 'bar'} agent but "
            f"feed {feed!r} is a {kind} feed: set its feed: (or the config's "
            f"{'tick_feed' if tick else 'feed'}) to a {'tick' if tick else 'bar'} feed"
        )
    keys = LiveKeys(cfg.redis_prefix)
    if tick and is_arb_agent(spec.agent, spec.options):
        from quantarena.live.arb_redis import ArbRedisTrader

        return ArbRedisTrader(r, make_arb_trader(spec, cfg.limits), feed, cfg.out, keys=keys,
                              batch=cfg.tick_batch, start_id=start_id,
                              compact=cfg.compact, archive_s=cfg.archive_s)  # fmt: skip
    if tick:
        from quantarena.live.tick_redis import TickRedisTrader

        return TickRedisTrader(r, make_tick_trader(spec, shape.symbols[0], cfg.limits), feed,
                               cfg.out,
                               keys=keys, batch=cfg.tick_batch, start_id=start_id,
                               compact=cfg.compact, archive_s=cfg.archive_s)  # fmt: skip
    from quantarena.live.redis_trader import RedisTrader
    from quantarena.live.service import make_trader

    tr = make_trader(spec, list(shape.symbols), shape.interval_ns, cfg.limits, cfg)
    if history is not None:  # a trader promoted mid-run: indicators warmed on the feed
        tr.warm_up(history)
    return RedisTrader(r, tr, feed, cfg.out, keys=keys, batch=cfg.batch, start_id=start_id,
                       compact=cfg.compact, archive_s=cfg.archive_s)  # fmt: skip
