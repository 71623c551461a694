"""``quantarena live run CONFIG``: paper traders plus the director that reallocates them.

:class:`LiveService` starts one paper trader per configured agent — as Ray actors
(:mod:`quantarena.actors.paper`) or, without Ray, as threads of this process — on one feed,
and runs the director loop: whenever every trader's bar clock has passed the next
reallocation day (every ``allocation.every_days`` days of *bar time*, so a fast replay
reallocates in minutes), it reads each agent's daily equity from Redis, ranks and gates the
agents and computes Kelly weights (:func:`.director.reallocate`), writes each agent's paper
capital (``live:agent:{name}:capital``) and the reallocation (``live:director:allocations``),
and logs it as one step of one MLflow run (leaderboard, weights) when MLflow is configured.

An agent's capital multiplies its unit paper account: the director's book is
``sum_i capital_i * E_i(t) / E_i(t_alloc)``; the agents' own decisions (fractions of their
equity) do not depend on it.

Config (YAML)::

    redis: redis://127.0.0.1:6379/0       # default: $QUANTARENA_REDIS, else this URL
    redis_prefix: "quantarena:"
    feed: bars
    out: runs/live
    ray: false
    limits: {max_drawdown: 0.2, daily_loss: 0.05}       # RiskLimits, for every agent
    capital: 10000                                      # each paper account, quote currency
    filters: {min_notional: 10, symbols: {BTC-PERP: {lot_size: 0.001}}}  # ExchangeFilters
    allocation: {every_days: 7, capital: 100000, gates: {min_sharpe: 0.0}}
    mlflow: {uri: "sqlite:///runs/live/mlflow.db", experiment: quantarena-live}
    agents:
      - {name: mom, agent: momentum, params: {fast: 10, slow: 50}}
      - {name: hold, agent: buy_hold}
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantarena.live.director import LiveAllocationConfig, Reallocation, reallocate
from quantarena.live.redis_io import DEFAULT_URL, LiveKeys, connect, retry

__all__ = ["AgentSpec", "LiveConfig", "LiveService", "load_live_config"]

NS_PER_DAY = 86_400_000_000_000


@dataclass(frozen=True)
class AgentSpec:
    """One paper-trading agent: account ``name``, registered ``agent``, ONE parameter set,
    constructor ``options`` (e.g. ``max_position``)."""

    name: str
    agent: str
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveConfig:
    """A live run's configuration (see the module docstring)."""

    agents: tuple[AgentSpec, ...]
    redis: str = DEFAULT_URL
    redis_prefix: str = "quantarena:"
    feed: str = "bars"
    out: str = "runs/live"
    ray: bool = False
    limits: dict[str, Any] = field(default_factory=dict)
    allocation: LiveAllocationConfig = field(default_factory=LiveAllocationConfig)
    mlflow: dict[str, Any] | None = None
    batch: int = 100
    capital: float = 1.0
    filters: dict[str, Any] = field(default_factory=dict)


def load_live_config(src: str | Path | dict[str, Any]) -> LiveConfig:
    """A :class:`LiveConfig` from a YAML file or a dict; errors name the key."""
    if isinstance(src, dict):
        d = dict(src)
        where = "live config"
    else:
        import yaml

        p = Path(src)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such config file")
        d = yaml.safe_load(p.read_text()) or {}
        where = str(p)
    known = set(LiveConfig.__dataclass_fields__)
    bad = sorted(set(d) - known)
    if bad:
        raise ValueError(f"{where}: unknown key {bad[0]!r}; known: {', '.join(sorted(known))}")
    agents = []
    from quantarena.strategies.registry import get_agent

    for i, a in enumerate(d.get("agents") or []):
        if not isinstance(a, dict) or "agent" not in a:
            raise ValueError(f"{where}: agents[{i}] needs an 'agent' (e.g. momentum)")
        extra = sorted(set(a) - {"name", "agent", "params", "options"})
        if extra:
            raise ValueError(f"{where}: agents[{i}]: unknown key {extra[0]!r}")
        spec = AgentSpec(str(a.get("name") or a["agent"]), str(a["agent"]),
                         dict(a.get("params") or {}), dict(a.get("options") or {}))  # fmt: skip
        try:
            ag = get_agent(spec.agent, **spec.options)
            ag.check_params({k: [v] for k, v in spec.params.items()})
        except (ValueError, KeyError) as e:
            raise ValueError(f"{where}: agents[{i}] ({spec.name}): {e}") from None
        agents.append(spec)
    if not agents:
        raise ValueError(f"{where}: no agents — list at least one under 'agents'")
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: agent names must be unique, got {names}")
    from quantarena.live.risk import RiskLimits

    RiskLimits.from_dict(d.get("limits"))  # validate early
    cap = d.get("capital", 1.0)
    if isinstance(cap, bool) or not isinstance(cap, int | float) or not cap > 0:
        raise ValueError(f"{where}: capital must be a number > 0 (quote currency), got {cap!r}")
    if d.get("filters") is not None and not isinstance(d["filters"], dict):
        raise ValueError(f"{where}: filters must be a mapping (lot_size, min_notional, symbols)")
    if "redis" not in d and os.environ.get("QUANTARENA_REDIS"):
        d["redis"] = os.environ[
            "QUANTARENA_REDIS"
        ]  # a submitted job's Redis (no password in configs)
    rest = {k: v for k, v in d.items() if k not in ("agents", "allocation")}
    return LiveConfig(
        agents=tuple(agents),
        allocation=LiveAllocationConfig.from_dict(d.get("allocation")),
        **rest,
    )


def make_trader(
    spec: AgentSpec,
    symbols: list[str],
    interval_ns: int,
    limits: dict[str, Any],
    cfg: LiveConfig | None = None,
) -> Any:
    """The :class:`~.trader.PaperTrader` of ``spec`` on a feed of ``symbols`` (with
    ``cfg``'s capital and exchange filters when given)."""
    from quantarena.engine.filters import ExchangeFilters
    from quantarena.live.risk import RiskLimits
    from quantarena.live.trader import PaperTrader
    from quantarena.strategies.registry import get_agent

    ag = get_agent(spec.agent, **spec.options)
    lim = RiskLimits.from_dict({"max_position": ag.max_position, **limits})
    extra: dict[str, Any] = {}
    if cfg is not None:
        extra["init_cash"] = float(cfg.capital)
        extra["filters"] = ExchangeFilters.from_config(cfg.filters, symbols, "live config filters")
    return PaperTrader(
        spec.name, ag, spec.params or None, symbols, interval_ns, limits=lim, **extra
    )


class LiveService:
    """Paper traders and the director (see the module docstring)."""

    def __init__(
        self, config: LiveConfig, r: Any | None = None, on_step: Any | None = None
    ) -> None:
        self.cfg = config
        self.on_step = on_step  # called with each Reallocation
        self.keys = LiveKeys(config.redis_prefix)
        self.r = r if r is not None else connect(config.redis)
        self.reallocations: list[Reallocation] = []
        self.next_day: int | None = None
        self._threads: list[threading.Thread] = []
        self._traders: list[Any] = []
        self._actors: list[Any] = []
        self._refs: list[Any] = []
        self._run = None

    # ------------------------------------------------------------------ traders

    def feed_shape(self, wait_s: float = 60.0) -> tuple[list[str], int, int]:
        """Symbols, bar interval and first bar time of the feed (waits for a first message)."""
        from quantarena.live.messages import decode

        stream = self.keys.feed(self.cfg.feed)
        deadline = time.monotonic() + wait_s
        while True:
            first = retry(lambda: self.r.xrange(stream, count=1), "reading the feed")
            if first:
                m = decode(first[0][1], f"{stream} entry {first[0][0].decode()}")
                return list(m.symbols), m.interval_ns, m.ts
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{stream} stayed empty for {wait_s:g} s — start quantarena feed replay"
                )
            time.sleep(0.1)

    def start_traders(self, idle_stop_s: float | None = None) -> None:
        """One paper trader per agent: Ray actors (``ray: true``) or threads."""
        symbols, interval_ns, _ = self.feed_shape()
        if self.cfg.ray:
            from quantarena.actors.paper import start_paper_actor

            for spec in self.cfg.agents:
                actor = start_paper_actor(self.cfg, spec, symbols, interval_ns)
                self._actors.append(actor)
                self._refs.append(actor.run.remote(idle_stop_s))
            return
        from quantarena.live.redis_trader import RedisTrader

        for spec in self.cfg.agents:
            tr = make_trader(spec, symbols, interval_ns, self.cfg.limits, self.cfg)
            rt = RedisTrader(connect(self.cfg.redis), tr, self.cfg.feed, self.cfg.out,
                             keys=self.keys, batch=self.cfg.batch)  # fmt: skip
            self._traders.append(rt)
            th = threading.Thread(target=rt.run, kwargs={"idle_stop_s": idle_stop_s}, daemon=True,
                                  name=f"paper-{spec.name}")  # fmt: skip
            th.start()
            self._threads.append(th)

    def traders_alive(self) -> bool:
        if self.cfg.ray:
            import ray

            done, _ = ray.wait(self._refs, num_returns=len(self._refs), timeout=0)
            return len(done) < len(self._refs)
        return any(t.is_alive() for t in self._threads)

    # ------------------------------------------------------------------ director

    def bar_day(self) -> int | None:
        """The UTC day every trader has reached (the slowest one's), None before all started."""
        days = []
        for s in self.cfg.agents:
            v = self.r.hget(self.keys.status(s.name), "last_ts")
            if v is None:
                return None
            days.append(int(v) // NS_PER_DAY)
        return min(days)

    def daily(self, before_day: int) -> dict[str, pd.Series]:
        """Each agent's daily equity marks of the days before ``before_day``."""
        out = {}
        for s in self.cfg.agents:
            h = self.r.hgetall(self.keys.daily(s.name))
            ser = pd.Series({int(k): float(v) for k, v in h.items()}, dtype=np.float64).sort_index()
            out[s.name] = ser[ser.index < before_day]
        return out

    def step(self, day: int) -> Reallocation:
        """Reallocate on the days before ``day``; write capital, the record and MLflow."""
        res = reallocate(self.daily(day), self.cfg.allocation)
        res.day = day
        pipe = self.r.pipeline(transaction=True)
        for n, c in res.capital.items():
            pipe.set(self.keys.capital(n), repr(c))
        rec = {"day": day, "weights": res.weights, "capital": res.capital,
               "gates_failed": {n: g.failed for n, g in res.gates.items()}}  # fmt: skip
        pipe.xadd(self.keys.allocations(), {"json": json.dumps(rec)})
        pipe.execute()
        self.reallocations.append(res)
        self._log_mlflow(res, len(self.reallocations) - 1)
        if self.on_step is not None:
            self.on_step(res)
        return res

    def _start_mlflow(self) -> None:
        if not self.cfg.mlflow or self._run is not None:
            return
        import mlflow

        if self._run is None:
            mlflow.set_tracking_uri(self.cfg.mlflow.get("uri"))
            mlflow.set_experiment(self.cfg.mlflow.get("experiment", "quantarena-live"))
            self._run = mlflow.start_run(run_name=self.cfg.mlflow.get("run_name", "live"))
            mlflow.log_params({"agents": ",".join(a.name for a in self.cfg.agents),
                               "every_days": self.cfg.allocation.every_days,
                               "capital": self.cfg.allocation.capital})  # fmt: skip

    def _log_mlflow(self, res: Reallocation, step: int) -> None:
        if not self.cfg.mlflow:
            return
        import mlflow

        self._start_mlflow()
        metrics = {}
        for n, row in res.leaderboard.iterrows():
            metrics[f"weight.{n}"] = float(row["weight"])
            for k in ("sharpe", "max_drawdown", "total_return"):
                v = row.get(k)
                if v is not None and np.isfinite(v):
                    metrics[f"{k}.{n}"] = float(v)
        mlflow.log_metrics(metrics, step=step)
        mlflow.log_text(res.leaderboard.to_csv(), f"leaderboard/step-{step:04d}.csv")

    def stop_traders(self) -> None:
        """Ask the traders to stop after their current batch (threads) / kill the actors."""
        for rt in self._traders:
            rt.stop_requested = True
        for t in self._threads:
            t.join(30)
        if self._actors:
            import ray

            for a in self._actors:
                ray.kill(a)
        self._threads, self._traders, self._actors, self._refs = [], [], [], []

    def close(self) -> None:
        if self._run is not None:
            import mlflow

            mlflow.end_run()
            self._run = None

    def run(self, *, idle_stop_s: float | None = None, poll_s: float = 0.2) -> list[Reallocation]:
        """Start the traders and direct them until they stop (``idle_stop_s`` without new
        bars; None: forever). Returns the reallocations made."""
        every = max(1, int(round(self.cfg.allocation.every_days)))
        _, _, first_ts = self.feed_shape()
        self.next_day = first_ts // NS_PER_DAY + every
        self._start_mlflow()  # its first call is slow: before the traders race ahead
        self.start_traders(idle_stop_s)
        try:
            while True:
                alive = self.traders_alive()
                day = self.bar_day()
                while day is not None and day >= self.next_day:
                    self.step(self.next_day)
                    self.next_day += every
                if not alive:
                    break
                time.sleep(poll_s)
        except BaseException:
            self.stop_traders()  # never leave traders running behind a failed director
            raise
        finally:
            self.close()
        return self.reallocations
