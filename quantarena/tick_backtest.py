"""``tick_backtest``: replay a tick agent (market making, arbitrage) on a store's trades and
quotes for a whole population and rank it like a bar backtest.

    from quantarena.tick_backtest import tick_backtest
    res = tick_backtest("store", "market_maker", {"gamma": [0.01, 0.1, 1]},
                        symbol="BINANCE-USDM:BTCUSDT")
    res.best(5)

The equity of each parameter set is sampled on the ``interval`` bar clock
(:mod:`quantarena.engine.tick.sampling`) and ranked by the bar engine's metrics, plus
``n_fills``, ``maker_share``, ``peak_inventory`` (base units), ``end_position``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantarena.data.calendars import bars_per_year
from quantarena.data.intervals import interval_ns as to_ns
from quantarena.engine.metrics import higher_is_better
from quantarena.engine.tick.events import EventStream, load_events
from quantarena.engine.tick.replay import TickState
from quantarena.engine.tick.sampling import TICK_METRICS, bar_closes, metrics_from_equity
from quantarena.strategies import params as P
from quantarena.strategies.base import Agent
from quantarena.strategies.registry import get_agent
from quantarena.strategies.tick_base import default_venue


@dataclass
class TickBacktestResult:
    """What :func:`tick_backtest` returns: ``metrics`` (one row per parameter set: the
    parameters then the metrics), ``params``, ``agent``, ``events``, the final ``state``, the
    bar clock ``bar_ts`` (close times) and ``equity`` ``(bars, P)``."""

    metrics: pd.DataFrame
    params: P.Params
    agent: Agent
    events: EventStream | list[EventStream]
    state: Any
    bar_ts: np.ndarray
    equity: np.ndarray
    venue: str = ""
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        return P.n_params(self.params)

    def ranked(self, by: str = "sharpe") -> pd.DataFrame:
        names = [c for c in self.metrics.columns if c not in self.params]
        if by not in names:
            raise ValueError(f"unknown metric {by!r}: use one of {', '.join(names)}")
        asc = not higher_is_better(by, TICK_METRICS)
        return self.metrics.sort_values(by, ascending=asc, na_position="last", kind="stable")

    def best(self, n: int = 1, by: str = "sharpe") -> pd.DataFrame:
        return self.ranked(by).head(int(n))

    def param_set(self, i: int) -> dict[str, Any]:
        return {k: np.asarray(v)[i].item() for k, v in self.params.items()}


def tick_metrics(state: TickState, equity: np.ndarray, capital: float, ppy: float, ins: int):
    """The metrics table's columns of a finished replay."""
    m = metrics_from_equity(equity, capital, ppy, ins)
    maker = state.account("maker_qty")
    taker = state.account("taker_qty")
    m["n_trades"] = state.account("n_fills")
    m["fees_paid"] = state.account("fees")
    m["funding_paid"] = state.account("funding")
    m["n_fills"] = state.account("n_fills")
    with np.errstate(invalid="ignore", divide="ignore"):
        m["maker_share"] = maker / (maker + taker)
    m["peak_inventory"] = state.account("max_inventory")
    m["end_position"] = state.account("position")
    return m


def _two_leg_venue(agent: Any) -> str:
    lat = "/".join(f"{x:g}" for x in agent.latency_ms)
    fees = "known" if agent.taker_bps is None else "/".join(f"{x:g}" for x in agent.taker_bps)
    return f"taker legs at the touch; latency {lat} ms; taker fees {fees} bps"


def tick_backtest(
    store: str | Path,
    agent: str | Agent,
    params: Mapping[str, Any] | None = None,
    *,
    symbol: str,
    start: Any = None,
    end: Any = None,
    interval: str | None = "1m",
    calendar: str = "24/7",
    grid: bool = True,
    venue: Any = None,
    depth: bool = True,
    max_log: int = 0,
    **agent_options: Any,
) -> TickBacktestResult:
    """Replay tick agent ``agent`` on ``symbol``'s events in ``store`` for every parameter set
    (the cartesian grid of ``params``; ``grid=False``: equal-length arrays as the population).
    ``depth=False``: quotes and trades only (what a tick feed publishes), even where L2 rows
    are stored; ``max_log``: fills kept per parameter set in ``state.fills(col)``."""
    import time

    ag = get_agent(agent, **agent_options)
    if not getattr(ag, "tick", False):
        raise ValueError(f"agent {ag.name!r} is a bar agent: use quantarena.backtest")
    pop = ag.grid(**dict(params or {})) if (grid or params is None) else ag.check_params(params)
    symbols = [x.strip() for x in symbol.split(",") if x.strip()]
    need = int(getattr(ag, "n_symbols", 1))
    if len(symbols) != need:
        raise ValueError(
            f"agent {ag.name!r} trades {need} instrument(s): give --symbol "
            + ("A,B (two symbols, comma-separated)" if need == 2 else "SYM")
            + f", got {symbol!r}"
        )
    ins = to_ns(interval or "1m")
    if need == 1:
        events = load_events(store, symbols[0], start, end, depth=depth)
        all_ts = events.ts
        venue = venue or ag.venue or default_venue(events)
    else:
        events = [load_events(store, s, start, end, depth=False) for s in symbols]
        # the bar clock of the span both instruments cover
        lo = max(int(e.ts[0]) for e in events)
        hi = min(int(e.ts[-1]) for e in events)
        if lo >= hi:
            raise ValueError(f"{symbol}: the two instruments' data do not overlap in time")
        all_ts = np.array([lo, hi], dtype=np.int64)
    bar_ts = bar_closes(all_ts, ins)
    t0 = time.perf_counter()
    extra = {"max_log": max_log} if max_log else {}
    state = ag.run_ticks(events, pop, venue=venue, sample_ts=bar_ts, **extra)
    elapsed = time.perf_counter() - t0
    equity = state.EQ
    m = tick_metrics(state, equity, ag.capital, bars_per_year(calendar, ins), ins)
    cols = {k: (v if v.dtype.kind in "if" else v.astype(str)) for k, v in pop.items()}
    table = pd.concat([pd.DataFrame(cols), pd.DataFrame(m)], axis=1)
    table.index.name = "param_set"
    return TickBacktestResult(
        metrics=table,
        params=pop,
        agent=ag,
        events=events,
        state=state,
        bar_ts=bar_ts,
        equity=equity,
        venue=venue.describe() if hasattr(venue, "describe") else _two_leg_venue(ag),
        elapsed_s=elapsed,
    )


__all__ = ["TickBacktestResult", "tick_backtest"]
