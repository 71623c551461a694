"""The paper-trader actor: one promoted agent trading on paper, as a Ray actor.

A few lines around :class:`~quantarena.live.redis_trader.RedisTrader` (or, for a tick agent
on a tick feed, :class:`~quantarena.live.tick_redis.TickRedisTrader`; :mod:`.live.launch`
builds either): the actor builds its trader, reads the feed through its consumer group and makes every batch durable before it
acknowledges it. Its state lives in Redis, not in the actor, so an actor killed with
``ray.kill`` and started again (same name) resumes from its pending entries: no fill lost
or doubled.
"""

from __future__ import annotations

from typing import Any

import ray


@ray.remote
class PaperTraderActor:
    """Ray actor of one paper trader. Create with :func:`start_paper_actor`."""

    def __init__(
        self, cfg: Any, spec: Any, symbols: list[str], interval_ns: int,
        start_id: str = "0", history: Any = None,
    ) -> None:  # fmt: skip
        from quantarena.live.launch import FeedShape, redis_trader
        from quantarena.live.redis_io import connect

        # interval 0: a tick feed (symbols: the symbol quoted) — a tick agent's tick trader
        shape = FeedShape(int(interval_ns) == 0, tuple(symbols), int(interval_ns), 0)
        self.rt = redis_trader(cfg, spec, connect(cfg.redis), shape, start_id, history)
        self.rt.on_commit = PaperMetrics(spec.name).record

    def run(self, idle_stop_s: float | None = None, max_messages: int | None = None) -> int:
        """Trade until idle for ``idle_stop_s`` (None: forever) or ``max_messages``."""
        return self.rt.run(max_messages=max_messages, idle_stop_s=idle_stop_s)

    def equity(self) -> float:
        """The paper account's equity (quote units; a bar trader's unit account)."""
        tr = self.rt.trader
        return float(tr.exchange.equity if hasattr(tr, "exchange") else tr.equity)

    def account(self) -> list[float]:
        """A tick trader's account row (``engine.tick.core.ACCOUNT_FIELDS``; an arbitrage
        trader's: ``engine.tick.taker`` ``X``); [] for a bar trader."""
        tr = self.rt.trader
        if hasattr(tr, "stream"):  # an arbitrage trader: the taker kernel's row
            return [float(x) for x in tr.stream.X[0]]
        return [] if hasattr(tr, "exchange") else [float(x) for x in tr.state.AC[0]]


class PaperMetrics:
    """The trader's figures as Ray metrics (``ray.util.metrics``), tagged ``agent``; Ray
    exports them on its metrics endpoint (Prometheus format, names prefixed ``ray_``,
    counters suffixed ``_total``), so they show in the dashboard: ``quantarena_paper_pnl``,
    ``_equity``, ``_exposure`` (gauges), ``_orders``, ``_fills``, ``_rejections`` (counters)
    and ``_latency_seconds`` (histogram: bar published → decision and paper fill durable)."""

    def __init__(self, agent: str) -> None:
        from ray.util import metrics as m

        tags = ("agent",)
        self.tags = {"agent": agent}
        self.gauges = {
            k: m.Gauge(f"quantarena_paper_{k}", description=d, tag_keys=tags)
            for k, d in (("pnl", "paper PnL of the unit account"), ("equity", "paper equity"),
                         ("exposure", "gross exposure, fraction of equity"))
        }  # fmt: skip
        self.counters = {
            k: m.Counter(f"quantarena_paper_{k}", description=f"{k} so far", tag_keys=tags)
            for k in ("orders", "fills", "rejections")
        }
        self.latency = m.Histogram(
            "quantarena_paper_latency_seconds",
            description="bar published -> decision and paper fill durable",
            boundaries=[0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0],
            tag_keys=tags,
        )

    def record(self, figures: dict[str, Any]) -> None:
        for k, g in self.gauges.items():
            g.set(float(figures[k]), tags=self.tags)
        for k, c in self.counters.items():
            if figures[k]:
                c.inc(float(figures[k]), tags=self.tags)
        for x in figures["latency_s"]:
            self.latency.observe(float(x), tags=self.tags)


def start_paper_actor(
    cfg: Any, spec: Any, symbols: list[str], interval_ns: int, num_cpus: float = 0.25,
    start_id: str = "0", history: Any = None,
) -> Any:  # fmt: skip
    """A :class:`PaperTraderActor` named ``paper:{agent}`` (a fraction of a CPU: paper
    trading is light; it sleeps in ``XREADGROUP`` between bars). ``start_id``: where a new
    consumer group starts reading; ``history``: bars to warm the agent's indicators on.
    ``interval_ns`` 0 means a tick feed, ``symbols`` then the one symbol a tick agent quotes."""
    return PaperTraderActor.options(name=f"paper:{spec.name}", num_cpus=num_cpus).remote(
        cfg, spec, symbols, interval_ns, start_id, history
    )


@ray.remote
class LiveDirectorActor:
    """The live director (:class:`~quantarena.live.service.LiveService`) as a named, detached
    Ray actor: it outlives the command that started it and starts the paper traders as
    actors. Create with :func:`start_live_director`; ``ray.get_actor(name)`` finds it."""

    def __init__(self, cfg: Any) -> None:
        from quantarena.live.service import LiveService

        self.svc = LiveService(cfg)
        self.done = False

    def run(self, idle_stop_s: float | None = None) -> int:
        """Direct until the traders stop; returns the reallocations made."""
        out = self.svc.run(idle_stop_s=idle_stop_s)
        self.done = True
        return len(out)

    def reallocations(self) -> list[dict[str, Any]]:
        return [{"day": r.day, "weights": r.weights} for r in self.svc.reallocations]


def start_live_director(cfg: Any, name: str = "live-director", detached: bool = True) -> Any:
    """A :class:`LiveDirectorActor` named ``name`` (``lifetime="detached"`` by default); its
    traders are Ray actors too."""
    import dataclasses

    cfg = dataclasses.replace(cfg, ray=True)
    opts: dict[str, Any] = {"name": name, "num_cpus": 0.25}
    if detached:
        opts["lifetime"] = "detached"
    return LiveDirectorActor.options(**opts).remote(cfg)
