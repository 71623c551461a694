"""A tick agent's round (market making, arbitrage): parameters picked on the in-sample
minutes' ticks, the chosen set traded out of sample, both sampled on the tournament's bars.

For a round with in-sample bars ``[is_start, is_end)`` and out-of-sample bars
``[oos_start, oos_end)`` of the tournament's panel (bar interval ``I``):

* in sample: every parameter set replays the events with ``ts_is_start <= ts <
  ts_{is_end−1} + I`` (trades, quotes and, for one-instrument agents, L2 depth, read from
  the tournament's store); equity is sampled at each bar close and ranked with the engine's
  formulas (:mod:`quantarena.engine.tick.sampling`); the set best by the entry's objective
  is chosen;
* out of sample: the same for the OOS bars; the chosen set's per-bar returns and every set's
  daily returns go to the director like a bar agent's.

Tick agents start every round flat with their ``capital`` (their equity is reported per unit
of capital, so a round's returns compound with the others'); inventories are not carried
from one round to the next. A window without data for the agent (no quotes, or two
instruments that do not overlap) leaves it flat.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from quantarena.engine.tick.events import load_events
from quantarena.tick_backtest import tick_metrics
from quantarena.tournaments.rounds import RoundResult, returns_from_equity, select_best


def _replay(entry: Any, bars: Any, i0: int, i1: int, ppy: float) -> tuple[np.ndarray, dict]:
    """(equity per unit of capital ``(i1-i0, P)``, metrics) of every set over bars i0..i1-1."""
    ag = entry.agent
    src = entry.ticks
    ins = int(bars.interval_ns)
    lo, hi = int(bars.ts[i0]), int(bars.ts[i1 - 1]) + ins
    closes = np.asarray(bars.ts[i0:i1], dtype=np.int64) + ins
    n_par = entry.n_trials
    need = int(getattr(ag, "n_symbols", 1))
    try:
        if need == 1:
            events: Any = load_events(src["store"], src["symbols"][0], lo, hi)
        else:
            events = [load_events(src["store"], s, lo, hi, depth=False) for s in src["symbols"][:2]]
        state = ag.run_ticks(events, entry.params, sample_ts=closes)
    except ValueError:
        state = None
    if state is None:
        eq = np.ones((closes.shape[0], n_par))
        m = {k: np.zeros(n_par) for k in ("total_return", "n_fills", "fees_paid")}
        m["sharpe"] = np.full(n_par, np.nan)
        return eq, m
    eq = state.EQ / ag.capital
    m = tick_metrics(state, eq, 1.0, ppy, ins)
    m["fees_paid"] = m["fees_paid"] / ag.capital
    return eq, m


def evaluate_tick_round(
    bars: Any, entry: Any, rnd: Any, *, periods_per_year: float | None = None
) -> RoundResult:
    """The round of tick agent ``entry`` (see the module docstring)."""
    from quantarena.data.calendars import bars_per_year

    ppy = periods_per_year or bars_per_year("24/7", int(bars.interval_ns))
    t0 = time.perf_counter()
    _, is_m = _replay(entry, bars, rnd.is_start, rnd.is_end, ppy)
    t_is = time.perf_counter() - t0
    best = select_best(is_m, entry.objective) if np.isfinite(is_m["sharpe"]).any() else 0
    t0 = time.perf_counter()
    oos_eq, oos_m = _replay(entry, bars, rnd.oos_start, rnd.oos_end, ppy)
    t_oos = time.perf_counter() - t0
    oos_ts = np.asarray(bars.ts[rnd.oos_start : rnd.oos_end]).copy()
    oos_returns, oos_daily = returns_from_equity(oos_ts, oos_eq, best, init_cash=1.0)
    return RoundResult(
        agent=entry.name,
        round=rnd.index,
        chosen={k: np.asarray(v)[best].item() for k, v in entry.params.items()},
        chosen_index=int(best),
        n_trials=entry.n_trials,
        is_metrics={k: float(v[best]) for k, v in is_m.items()},
        is_sharpe_all=np.asarray(is_m["sharpe"], dtype=np.float64),
        oos_ts=oos_ts,
        oos_returns=oos_returns,
        oos_metrics={k: float(v[best]) for k, v in oos_m.items()},
        oos_daily_all=oos_daily,
        timings={"indicators": 0.0, "replay_is": t_is, "replay_oos": t_oos},
    )
