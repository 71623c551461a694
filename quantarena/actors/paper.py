"""The paper-trader actor: one promoted agent trading on paper, as a Ray actor.

A few lines around :class:`~quantarena.live.redis_trader.RedisTrader`: the actor builds its
trader, reads the feed through its consumer group and makes every batch durable before it
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

    def __init__(self, cfg: Any, spec: Any, symbols: list[str], interval_ns: int) -> None:
        from quantarena.live.redis_io import LiveKeys, connect
        from quantarena.live.redis_trader import RedisTrader
        from quantarena.live.service import make_trader

        tr = make_trader(spec, symbols, interval_ns, cfg.limits)
        self.rt = RedisTrader(connect(cfg.redis), tr, cfg.feed, cfg.out,
                              keys=LiveKeys(cfg.redis_prefix), batch=cfg.batch)  # fmt: skip

    def run(self, idle_stop_s: float | None = None, max_messages: int | None = None) -> int:
        """Trade until idle for ``idle_stop_s`` (None: forever) or ``max_messages``."""
        return self.rt.run(max_messages=max_messages, idle_stop_s=idle_stop_s)

    def equity(self) -> float:
        return self.rt.trader.exchange.equity


def start_paper_actor(
    cfg: Any, spec: Any, symbols: list[str], interval_ns: int, num_cpus: float = 0.25
) -> Any:
    """A :class:`PaperTraderActor` named ``paper:{agent}`` (a fraction of a CPU: paper
    trading is light; it sleeps in ``XREADGROUP`` between bars)."""
    return PaperTraderActor.options(name=f"paper:{spec.name}", num_cpus=num_cpus).remote(
        cfg, spec, symbols, interval_ns
    )
