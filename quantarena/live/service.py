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
    tick_feed: ticks        # the tick agents' feed (quantarena feed replay --ticks); optional
    compact: false          # true: traders compact their finished UTC days' files themselves
    archive_s: 60           # Parquet archive of the events at most this often (0: every batch)
    agents:
      - {name: mom, agent: momentum, params: {fast: 10, slow: 50}}
      - {name: hold, agent: buy_hold}
      - {name: mm, agent: market_maker, params: {gamma: 0.01}, limits: {max_position_qty: 0.01}}

An agent's ``feed:`` overrides the feed it reads (default: ``feed`` for bar agents,
``tick_feed`` for tick agents, :mod:`.launch`); ``limits:`` adds to the config's ``limits``
(a market maker: ``max_position_qty``, an arbitrage agent: ``max_position``, ``max_gross``;
both: the breakers ``max_drawdown``, ``daily_loss``, of which they take the config's
``limits`` too); ``symbol:`` the symbol a tick agent quotes (default: the tick feed's first
message's).
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
from quantarena.live.redis_io import DEFAULT_URL, LiveKeys, connect

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
    #: the feed it reads (None: the config's ``feed``, or ``tick_feed`` for a tick agent)
    feed: str | None = None
    #: risk limits of this agent, over the config's (a market maker: ``max_position_qty``
    #: and the breakers ``max_drawdown``, ``daily_loss``)
    limits: dict[str, Any] = field(default_factory=dict)
    #: the symbol a tick agent quotes (None: its feed's first message's)
    symbol: str | None = None
    #: a bar agent's stops (``stop_loss``, ``take_profit``, ``trailing``: fractions of price;
    #: the engine's rules, as in its tournament) — None: none
    stops: dict[str, Any] | None = None
    #: a bar agent's cap on ``sum |w|`` (the exchange's, as the backtest's ``leverage``)
    leverage: float = 1.0


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
    tick_feed: str | None = None  # the tick agents' feed (quotes and trades)
    tick_batch: int = 1000  # messages a tick trader reads per batch
    compact: bool = False  # traders compact their finished UTC days' files between batches
    archive_s: float = 60.0  # seconds between Parquet archive files (0: after every batch)


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
        extra = sorted(set(a) - set(AgentSpec.__dataclass_fields__))
        if extra:
            raise ValueError(f"{where}: agents[{i}]: unknown key {extra[0]!r}")
        from quantarena.live.promotion import check_leverage, check_stops

        try:
            spec = AgentSpec(str(a.get("name") or a["agent"]), str(a["agent"]),
                             dict(a.get("params") or {}), dict(a.get("options") or {}),
                             feed=a.get("feed"), limits=dict(a.get("limits") or {}),
                             symbol=a.get("symbol"), stops=check_stops(a.get("stops")),
                             leverage=check_leverage(a.get("leverage", 1.0)))  # fmt: skip
        except ValueError as e:
            raise ValueError(f"{where}: agents[{i}]: {e}") from None
        try:
            ag = get_agent(spec.agent, **spec.options)
            ag.check_params({k: [v] for k, v in spec.params.items()})
            _check_agent(spec, ag, d)
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
    if not isinstance(d.get("compact", False), bool):
        raise ValueError(f"{where}: compact must be true or false, got {d['compact']!r}")
    arch = d.get("archive_s", 60.0)
    if isinstance(arch, bool) or not isinstance(arch, int | float) or not arch >= 0:
        raise ValueError(f"{where}: archive_s must be a number of seconds >= 0, got {arch!r}")
    if int(d.get("tick_batch", 1000)) < 1:
        raise ValueError(f"{where}: tick_batch must be >= 1, got {d['tick_batch']!r}")
    rest = {k: v for k, v in d.items() if k not in ("agents", "allocation", "promote")}
    return LiveConfig(
        agents=tuple(agents),
        promote=promote,
        allocation=LiveAllocationConfig.from_dict(d.get("allocation")),
        **rest,
    )


def _check_agent(spec: AgentSpec, ag: Any, d: dict[str, Any]) -> None:
    """A config agent's feed and limits fit its kind (tick or bar agent)."""
    from quantarena.live.risk import RiskLimits

    if getattr(ag, "tick", False):
        if spec.stops is not None or spec.leverage != 1.0:
            raise ValueError("stops and leverage are for bar agents")
        if not (spec.feed or d.get("tick_feed")):
            raise ValueError(
                "a tick agent needs a tick feed: set tick_feed: in the config (a feed of "
                "quantarena feed replay --ticks) or the agent's feed:"
            )
        if int(getattr(ag, "n_symbols", 1)) == 2:  # arbitrage: two legs, fractions of capital
            from quantarena.live.launch import arb_symbols, check_arb_limits

            arb_symbols(spec)
            check_arb_limits(spec, d.get("limits"))
            return
        if not hasattr(ag, "quote_kind"):
            raise ValueError(
                f"{spec.agent}: only market makers and arbitrage agents paper-trade ticks"
            )
        from quantarena.live.launch import check_tick_limits

        check_tick_limits(spec, d.get("limits"))
    else:
        if spec.symbol is not None:
            raise ValueError("symbol: is for tick agents (a bar agent trades its feed's symbols)")
        RiskLimits.from_dict({**(d.get("limits") or {}), **spec.limits})


def make_trader(
    spec: AgentSpec,
    symbols: list[str],
    interval_ns: int,
    limits: dict[str, Any],
    cfg: LiveConfig | None = None,
) -> Any:
    """The :class:`~.trader.PaperTrader` of ``spec`` on a feed of ``symbols`` (with
    ``cfg``'s capital and exchange filters when given), with ``spec``'s stops and leverage —
    the backtest's (the risk module's ``max_gross`` defaults to ``max(1, leverage)`` so that
    it does not cut what the backtest's leverage allows)."""
    from quantarena.engine.filters import ExchangeFilters
    from quantarena.engine.stops import Stops
    from quantarena.live.risk import RiskLimits
    from quantarena.live.trader import PaperTrader
    from quantarena.strategies.registry import get_agent

    ag = get_agent(spec.agent, **spec.options)
    lev = float(spec.leverage)
    lim = RiskLimits.from_dict({"max_position": ag.max_position, "max_gross": max(1.0, lev),
                                **limits, **spec.limits})  # fmt: skip
    extra: dict[str, Any] = {}
    if cfg is not None:
        extra["init_cash"] = float(cfg.capital)
        extra["filters"] = ExchangeFilters.from_config(cfg.filters, symbols, "live config filters")
    return PaperTrader(
        spec.name, ag, spec.params or None, symbols, interval_ns, limits=lim, leverage=lev,
        stops=Stops(**spec.stops) if spec.stops else None, **extra,
    )  # fmt: skip


def spec_of(rec: dict[str, Any]) -> AgentSpec:
    """The :class:`AgentSpec` of a promotion record (:mod:`.promoter`): its account, kind,
    parameters, options, the stops and leverage of its tournament, and an arbitrageur's legs
    ``symbol: A,B`` (its trader is then the one a config agent with those legs gets,
    :func:`.launch.redis_trader`; limits: the defaults)."""
    return AgentSpec(rec["account"], rec["kind"], dict(rec["params"]), dict(rec["options"]),
                     stops=rec.get("stops"), leverage=float(rec.get("leverage") or 1.0),
                     symbol=rec.get("symbol"))  # fmt: skip


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
                                     {a.name for a in config.agents},
                                     tick_feed=config.tick_feed)  # fmt: skip

    # ------------------------------------------------------------------ traders

    def feed_shape(
        self, wait_s: float = 60.0, feed: str | None = None
    ) -> tuple[list[str], int, int]:
        """Symbols, bar interval and first bar time of ``feed`` (default: the config's bar
        feed; waits for a first message)."""
        from quantarena.live.launch import feed_shape

        sh = feed_shape(self.r, self.keys.feed(feed or self.cfg.feed), wait_s)
        return list(sh.symbols), sh.interval_ns, sh.first_ts

    def feeds(self) -> list[str]:
        """The feeds the agents trade on (the config's bar feed when none is known yet)."""
        from quantarena.live.launch import agent_feed

        out = sorted({agent_feed(self.cfg, s) for s in self.agents})
        return out or [self.cfg.feed]

    def start_traders(self, idle_stop_s: float | None = None) -> None:
        """One paper trader per agent: Ray actors (``ray: true``) or threads."""
        self._idle_stop_s = idle_stop_s
        for spec in self.agents:
            self.start_trader(spec)

    def start_trader(self, spec: AgentSpec, start_day: int | None = None) -> None:
        """Start ``spec``'s paper trader on its feed (:func:`.launch.agent_feed`): from the
        feed's start, or — ``start_day`` (UTC day number) — from that day's first message, a
        bar agent's indicators warmed up on the bars before (``promote.warmup_bars``). A
        trader with a snapshot in Redis resumes from it."""
        from quantarena.live.launch import agent_feed, feed_shape, redis_trader, tick_position

        stream = self.keys.feed(agent_feed(self.cfg, spec))
        shape = feed_shape(self.r, stream)
        start_id, history = "0", None
        if start_day is not None and self.r.get(self.keys.state(spec.name)) is None:
            from quantarena.live.promoter import feed_position

            if shape.tick:
                start_id = tick_position(self.r, stream, start_day * NS_PER_DAY)
            else:
                warm = self.cfg.promote.warmup_bars if self.cfg.promote is not None else 0
                start_id, history = feed_position(self.r, stream, start_day * NS_PER_DAY, warm)
        if self.cfg.ray:
            from quantarena.actors.paper import start_paper_actor

            actor = start_paper_actor(self.cfg, spec, list(shape.symbols), shape.interval_ns,
                                      start_id=start_id, history=history)  # fmt: skip
            self._actors.append(actor)
            self._refs.append(actor.run.remote(self._idle_stop_s))
            self._by_name[spec.name] = actor
            return
        rt = redis_trader(self.cfg, spec, connect(self.cfg.redis), shape, start_id, history)
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
        """The UTC day every trader has reached: the slowest one's among those with messages
        of their feed still to read; when every trader has read its whole feed, the furthest
        one's (a feed that ended — a replayed capture — holds nobody back). None before every
        trader has committed a batch or read its whole feed."""
        from quantarena.live.launch import agent_feed

        days, behind = [], []
        last_ids: dict[str, Any] = {}
        for s in self.agents:
            v = self.r.hget(self.keys.status(s.name), "last_ts")
            done = self._caught_up(s.name, self.keys.feed(agent_feed(self.cfg, s)), last_ids)
            if v is None or int(v) == 0:
                if not done:
                    return None
                continue
            d = int(v) // NS_PER_DAY
            days.append(d)
            if not done:
                behind.append(d)
        if behind:
            return min(behind)
        return max(days) if days else None

    def _caught_up(self, name: str, stream: str, last_ids: dict[str, Any]) -> bool:
        """Whether agent ``name`` has read and acknowledged every message of ``stream``
        (its consumer group's last delivered id is the stream's last id, nothing pending)."""
        import redis

        try:
            if stream not in last_ids:
                last_ids[stream] = self.r.xinfo_stream(stream)["last-generated-id"]
            groups = self.r.xinfo_groups(stream)
        except redis.ResponseError:  # no such stream yet
            return False
        for g in groups:
            gname = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if gname == f"agent:{name}":
                return g["pending"] == 0 and g["last-delivered-id"] == last_ids[stream]
        return False

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
            spec = spec_of(rec)
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
        self._start_mlflow()  # its first call is slow: before the traders race ahead
        if self.promoter is not None:  # promoted before (a restart), then the newest ones
            for acct, rec in self.promoter.active().items():
                if acct not in {a.name for a in self.agents}:
                    self.agents.append(spec_of(rec))
        self.start_traders(idle_stop_s)
        if self.promoter is not None:
            self._promote(None)
        # the schedule counts from the earliest first message of the agents' feeds
        first_ts = min(self.feed_shape(feed=f)[2] for f in self.feeds())
        self.next_day = first_ts // NS_PER_DAY + every
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
