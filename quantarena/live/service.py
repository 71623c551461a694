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
    promote: {from: runs/quick, top: 5, require_gates: true}   # optional (live/promotion.py)
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
    promote: Any = None  # a PromoteConfig (live/promotion.py): agents from a tournament


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
    promote = None
    if d.get("promote") is not None:
        from quantarena.live.promotion import PromoteConfig

        promote = PromoteConfig.from_dict(d["promote"], f"{where}: promote")
    if not agents and promote is None:
        raise ValueError(
            f"{where}: no agents — list at least one under 'agents' or promote from a "
            "tournament ('promote: {from: DIR}')"
        )
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
        # a submitted job's Redis (no password in configs)
        d["redis"] = os.environ["QUANTARENA_REDIS"]
    rest = {k: v for k, v in d.items() if k not in ("agents", "allocation", "promote")}
    return LiveConfig(
        agents=tuple(agents),
        promote=promote,
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
        #: the agents trading now: the config's, then promoted ones (demoted ones leave)
        self.agents: list[AgentSpec] = list(config.agents)
        self._by_name: dict[str, Any] = {}  # agent -> its RedisTrader / actor
        self._idle_stop_s: float | None = None
        self.promoter = None
        if config.promote is not None:
            from quantarena.live.promoter import Promoter

            self.promoter = Promoter(config.promote, self.r, self.keys,
                                     {a.name for a in config.agents})  # fmt: skip

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
        self._idle_stop_s = idle_stop_s
        for spec in self.agents:
            self.start_trader(spec)

    def start_trader(self, spec: AgentSpec, start_day: int | None = None) -> None:
        """Start ``spec``'s paper trader: from the feed's start, or — ``start_day`` (UTC day
        number) — from that day's first bar, its indicators warmed up on the bars before
        (``promote.warmup_bars``). A trader with a snapshot in Redis resumes from it."""
        symbols, interval_ns, _ = self.feed_shape()
        start_id, history = "0", None
        if start_day is not None and self.r.get(self.keys.state(spec.name)) is None:
            from quantarena.live.promoter import feed_position

            warm = self.cfg.promote.warmup_bars if self.cfg.promote is not None else 0
            start_id, history = feed_position(
                self.r, self.keys.feed(self.cfg.feed), start_day * NS_PER_DAY, warm
            )
        if self.cfg.ray:
            from quantarena.actors.paper import start_paper_actor

            actor = start_paper_actor(self.cfg, spec, symbols, interval_ns,
                                      start_id=start_id, history=history)  # fmt: skip
            self._actors.append(actor)
            self._refs.append(actor.run.remote(self._idle_stop_s))
            self._by_name[spec.name] = actor
            return
        from quantarena.live.redis_trader import RedisTrader

        tr = make_trader(spec, symbols, interval_ns, self.cfg.limits, self.cfg)
        if history is not None:
            tr.warm_up(history)
        rt = RedisTrader(connect(self.cfg.redis), tr, self.cfg.feed, self.cfg.out,
                         keys=self.keys, batch=self.cfg.batch, start_id=start_id)  # fmt: skip
        self._traders.append(rt)
        self._by_name[spec.name] = rt
        th = threading.Thread(target=rt.run, kwargs={"idle_stop_s": self._idle_stop_s},
                              daemon=True, name=f"paper-{spec.name}")  # fmt: skip
        th.start()
        self._threads.append(th)

    def stop_trader(self, name: str) -> None:
        """Stop one agent's trader (a demotion) and drop it from the agents directed."""
        t = self._by_name.pop(name, None)
        if t is not None and self.cfg.ray:
            import ray

            ray.kill(t)
        elif t is not None:
            t.stop_requested = True
        self.agents = [a for a in self.agents if a.name != name]

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
        for s in self.agents:
            v = self.r.hget(self.keys.status(s.name), "last_ts")
            if v is None:
                return None
            days.append(int(v) // NS_PER_DAY)
        return min(days)

    def daily(self, before_day: int) -> dict[str, pd.Series]:
        """Each agent's daily equity marks of the days before ``before_day``."""
        out = {}
        for s in self.agents:
            h = self.r.hgetall(self.keys.daily(s.name))
            ser = pd.Series({int(k): float(v) for k, v in h.items()}, dtype=np.float64).sort_index()
            out[s.name] = ser[ser.index < before_day]
        return out

    def step(self, day: int) -> Reallocation:
        """Reallocate on the days before ``day``; write capital, the record and MLflow."""
        daily = self.daily(day)
        res = reallocate(daily, self.cfg.allocation)
        res.day = day
        promo: dict[str, Any] = {}
        if self.promoter is not None:
            res, promo = self._promotions(res, daily, day)
        pipe = self.r.pipeline(transaction=True)
        for n, c in res.capital.items():
            pipe.set(self.keys.capital(n), repr(c))
        rec = {"day": day, "weights": res.weights, "capital": res.capital,
               "gates_failed": {n: g.failed for n, g in res.gates.items()}, **promo}  # fmt: skip
        pipe.xadd(self.keys.allocations(), {"json": json.dumps(rec)})
        pipe.execute()
        self.reallocations.append(res)
        self._log_mlflow(res, len(self.reallocations) - 1)
        if self.on_step is not None:
            self.on_step(res)
        return res

    def _promotions(
        self, res: Reallocation, daily: dict[str, pd.Series], day: int
    ) -> tuple[Reallocation, dict[str, Any]]:
        """Demote failing promoted agents (stopped, capital 0; the others reallocated
        without them), then promote the newest tournament's new candidates from ``day``."""
        assert self.promoter is not None
        status = {
            n: {k.decode(): v.decode() for k, v in self.r.hgetall(self.keys.status(n)).items()}
            for n in res.gates
        }
        demoted = self.promoter.review(res.gates, self.cfg.allocation.gates.binding, status, day)
        if demoted:
            for n in demoted:
                self.stop_trader(n)
            gates = res.gates
            res = reallocate({n: s for n, s in daily.items() if n not in demoted},
                             self.cfg.allocation)  # fmt: skip
            res.day = day
            res.gates = {**gates, **res.gates}
            res.weights.update(dict.fromkeys(demoted, 0.0))
            res.capital.update(dict.fromkeys(demoted, 0.0))
        promoted = []
        if self.promoter.due(day):
            promoted, retired = self._promote(day)
            for n in retired:
                demoted[n] = "replaced"
                res.capital[n] = res.weights[n] = 0.0
            for n in promoted:
                res.capital.setdefault(n, 0.0)
                res.weights.setdefault(n, 0.0)
        return res, {"promoted": promoted, "demoted": demoted}

    def _promote(self, day: int | None) -> tuple[list[str], list[str]]:
        """Promote the newest tournament's new candidates (start their traders; stop the
        ones they replace). Returns (promoted, retired) account names."""
        assert self.promoter is not None
        new, retired = self.promoter.promote(day)
        for n in retired:
            self.stop_trader(n)
        for rec in new:
            spec = AgentSpec(rec["account"], rec["kind"], dict(rec["params"]),
                             dict(rec["options"]))  # fmt: skip
            self.agents.append(spec)
            self.start_trader(spec, start_day=day)
        return [rec["account"] for rec in new], retired

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
        if self.promoter is not None:
            self.promoter.log_mlflow()

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
        if self.promoter is not None:  # promoted before (a restart), then the newest ones
            for acct, rec in self.promoter.active().items():
                if acct not in {a.name for a in self.agents}:
                    self.agents.append(AgentSpec(acct, rec["kind"], dict(rec["params"]),
                                                 dict(rec["options"])))  # fmt: skip
        self.start_traders(idle_stop_s)
        if self.promoter is not None:
            self._promote(None)
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
