"""From a validated :class:`~quantarena.config.TournamentConfig` to the tournament's inputs.

Pure core (no Ray, no MLflow): the market-data panel, the entrants with their populations,
the cost model and the walk-forward schedule. The Ray director and the plain local runner
both start here, so a tournament sees the same inputs wherever it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantarena.data.calendars import ALWAYS_OPEN, bars_per_year, guess_calendar
from quantarena.data.panel import BarPanel
from quantarena.strategies import params as P
from quantarena.strategies.registry import get_agent
from quantarena.tournaments.carried import DEFAULT_IN_SAMPLE, round_bounds
from quantarena.tournaments.director import AllocationConfig
from quantarena.tournaments.rounds import AgentEntry
from quantarena.tournaments.schedule import Round, walk_forward

__all__ = [
    "TournamentInputs",
    "audit_cache_dir",
    "audit_entrants",
    "build_entries",
    "load_panel",
    "play",
    "prepare",
]


@dataclass
class TournamentInputs:
    """Everything a tournament replays: data, entrants, costs, schedule, annualisation
    (``periods_per_year``: bars per year of ``calendar``)."""

    panel: BarPanel
    entries: list[AgentEntry]
    costs: Any
    rounds: list[Round]
    periods_per_year: float
    allocation: AllocationConfig
    calendar: str = ALWAYS_OPEN

    def legs(self) -> dict[str, list[str]]:
        """Each two-leg tick agent's (arbitrage) legs: the symbols its tick replays read, in
        order A,B (:func:`prepare` gives it the panel's first two). Recorded in the final
        parameters, so that paper trading promotes it onto the same instruments."""
        return {
            e.name: list(e.ticks["symbols"][:2])
            for e in self.entries
            if e.ticks is not None and int(getattr(e.agent, "n_symbols", 1)) == 2
        }


def store_root(cfg: Any, store_dir: str | Path | None = None) -> Path:
    """The store a tournament reads: ``data.store``, or where its files are ingested."""
    if cfg.data.store is not None:
        return Path(cfg.data.store)
    return Path(store_dir) if store_dir else Path(cfg.tracking.output_dir) / "store"


def load_panel(cfg: Any, store_dir: str | Path | None = None) -> BarPanel:
    """The bars of ``cfg.data``: from its store, or its files ingested into ``store_dir``
    (default ``<output_dir>/store``; ingest is idempotent, so a re-run adds nothing)."""
    from quantarena.data.read import load_bars
    from quantarena.data.store import Store

    d = cfg.data
    store = Store(store_root(cfg, store_dir))
    if d.store is None:
        for spec in d.files:
            store.ingest(spec.path, symbol=spec.symbol)
    symbols = d.symbols or sorted({e["symbol"] for e in store.catalog()})
    if symbols and not any(store.datasets("bars", s) for s in symbols):
        return bars_from_trades(store, symbols, d.start, d.end, d.interval)
    return load_bars(store, d.symbols, d.start, d.end, d.interval)


def bars_from_trades(
    store: Any, symbols: list[str], start: Any, end: Any, interval: str
) -> BarPanel:
    """Time bars of ``interval`` built from each symbol's stored trades (a tick store holds no
    bars), aligned like :func:`quantarena.data.read.load_bars`; the tick agents of a
    tournament are ranked on this clock."""
    from quantarena.data.intervals import interval_ns
    from quantarena.data.read import align, load_trades
    from quantarena.data.trades_to_bars import time_bars

    per = []
    for s in symbols:
        tr = load_trades(store, s, start, end)
        if len(tr) == 0:
            raise ValueError(f"data: no bars and no trades for {s} in the store")
        t = time_bars(tr, interval)
        per.append(
            {k: t.column(k).to_numpy() for k in ("ts", "open", "high", "low", "close", "volume")}
        )
    return align(per, list(symbols), interval_ns(interval))


def build_entries(cfg: Any) -> list[AgentEntry]:
    """One :class:`AgentEntry` per configured agent. A ``population`` draws that many sets
    from the grid (or from the agent's space when no params are given), seeded by the
    tournament seed and the agent's position, so re-runs pick the same sets. An agent with
    ``tuning`` searches the box its params span (or its whole space) with Optuna instead.
    The agent's ``stops`` and ``leverage`` go with its entry to every replay."""
    entries = []
    for i, a in enumerate(cfg.agents):
        agent = get_agent(a.kind, max_position=a.max_position)
        risk = {
            "stops": _stops(a),
            "leverage": float(getattr(a, "leverage", 1.0)),
        }
        if getattr(a, "tuning", None) is not None:
            from quantarena.training.tuning import space_from_values

            entries.append(
                AgentEntry(
                    a.name,
                    agent,
                    agent.defaults(),
                    objective=a.objective,
                    tuning=a.tuning.spec(seed=cfg.seed * 1000 + i),
                    space=space_from_values(agent, a.grid()) if a.params else dict(agent.space),
                    **risk,
                )
            )
            continue
        grid = agent.grid(**a.params) if a.params or a.population is None else None
        if a.population is None:
            pop = grid
        elif grid is None:
            pop = agent.sample(a.population, seed=cfg.seed * 1000 + i)
        else:
            n = P.n_params(grid)
            rng = np.random.default_rng(cfg.seed * 1000 + i)
            idx = np.sort(rng.choice(n, size=min(a.population, n), replace=False))
            pop = P.take(grid, idx)
        in_sample = getattr(getattr(cfg, "schedule", None), "in_sample", DEFAULT_IN_SAMPLE)
        entries.append(
            AgentEntry(a.name, agent, pop, objective=a.objective, in_sample=in_sample, **risk)
        )
    return entries


def _stops(agent_cfg: Any) -> Any:
    """The engine's :class:`~quantarena.engine.stops.Stops` of an agent's ``stops`` section
    (None when absent or all off)."""
    section = getattr(agent_cfg, "stops", None)
    if section is None:
        return None
    stops = section.to_core()
    return stops if stops.active else None


def allocation_of(cfg: Any) -> AllocationConfig:
    """The director's allocation settings from the config's ``allocation`` section, with the
    gates that hold back capital from ``gates.binding``."""
    return cfg.allocation.to_core(gated_by=cfg.gates.binding)  # type: ignore[no-any-return]


def audit_cache_dir(cfg: Any) -> Path | None:
    """Where audit verdicts are cached: ``<tracking.output_dir>/audit-cache``."""
    out = getattr(cfg.tracking, "output_dir", None)
    return Path(out) / "audit-cache" if out is not None else None


def audit_entrants(
    cfg: Any, panel: BarPanel, entries: list[AgentEntry] | None = None
) -> dict[str, dict[str, Any]]:
    """The look-ahead audit of every entrant whose audit is on (``cfg.audit`` and the
    agent's ``audit``), cached in :func:`audit_cache_dir`. Raises
    :class:`~quantarena.tournaments.entrant_audit.AgentRefused` (a ``ValueError``, one line)
    for the first agent that fails. Returns ``name -> audit result`` (empty when off)."""
    from quantarena.tournaments.entrant_audit import audit_entries

    if not getattr(cfg, "audit", True):
        return {}
    entries = entries if entries is not None else build_entries(cfg)
    skip = [a.name for a in cfg.agents if not getattr(a, "audit", True)]
    return audit_entries(entries, panel, cache_dir=audit_cache_dir(cfg), seed=cfg.seed, skip=skip)


def prepare(cfg: Any, panel: BarPanel | None = None, *, audit: bool = True) -> TournamentInputs:
    """Load data (unless ``panel`` is given), build entrants, costs and the schedule, and
    (``audit``, unless the config turns it off) audit the entrants for look-ahead
    (:func:`audit_entrants`: an agent that fails is refused before any round)."""
    panel = panel if panel is not None else load_panel(cfg)
    s = cfg.schedule
    rounds = walk_forward(
        panel.ts, round_ns=s.round, lookback_ns=s.lookback, warmup_ns=s.warmup, align=s.align
    )
    if s.max_rounds is not None:
        rounds = rounds[: s.max_rounds]
    if not rounds:
        span = (panel.ts[-1] - panel.ts[0]) / 86_400e9 if panel.n_bars else 0.0
        raise ValueError(
            f"schedule: {span:.1f} days of data hold no full round — shorten schedule.lookback "
            "or schedule.round, or give more data"
        )
    calendar = getattr(cfg.data, "calendar", None) or guess_calendar(panel.ts)
    entries = build_entries(cfg)
    for e in entries:  # tick agents read their events from the tournament's store
        if getattr(e.agent, "tick", False):
            need = int(getattr(e.agent, "n_symbols", 1))
            if panel.n_assets < need:
                raise ValueError(
                    f"agents: {e.name} ({e.agent.name}) trades {need} instruments; "
                    f"data has {panel.n_assets}: list them in data.symbols"
                )
            root = str(store_root(cfg).resolve())
            e.ticks = {"store": root, "symbols": list(panel.symbols[:need])}
    bounds = round_bounds(rounds)
    filters = cfg.filters.to_filters(list(panel.symbols)) if cfg.filters is not None else None
    for e in entries:
        e.bounds = bounds
        if not getattr(e.agent, "tick", False):  # bar agents trade under the exchange's filters
            e.filters = filters
    if audit:
        audit_entrants(cfg, panel, entries)
    return TournamentInputs(
        panel=panel,
        entries=entries,
        costs=cfg.costs.to_costs(),
        rounds=rounds,
        periods_per_year=bars_per_year(calendar, panel.interval_ns),
        allocation=allocation_of(cfg),
        calendar=calendar,
    )


def play(
    inputs: TournamentInputs,
    cfg: Any,
    evaluate: Any,
    on_round: Any = None,
    done: Any = (),
) -> Any:
    """Run the director's rounds over ``inputs`` with ``evaluate`` (plain or Ray fan-out);
    ``done``: the results of rounds already played (a resumed checkpoint's)."""
    from quantarena.tournaments.director import run_tournament

    return run_tournament(
        inputs.rounds,
        [e.name for e in inputs.entries],
        evaluate,
        periods_per_year=inputs.periods_per_year,
        allocation=inputs.allocation,
        gates=cfg.gates,
        on_round=on_round,
        done=done,
    )
