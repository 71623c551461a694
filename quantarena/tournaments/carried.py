"""Carried in-sample scoring: every parameter set trades its own continuous account.

A fixed population's in-sample (IS) score of a round can be measured two ways
(``schedule.in_sample`` in a tournament config):

* ``"fresh"`` (:func:`quantarena.tournaments.rounds.evaluate_round`): every set is replayed
  over the round's IS window from a flat account. With a lookback of ``L`` rounds every bar is
  replayed ``L + 1`` times per set (``L`` times in sample, once out of sample).
* ``"carried"`` (this module, the default): every set of the population trades ONE paper
  account of its own, continuously from the first IS bar of the agent's first round; a set's
  IS score for a round is the performance of that account over the round's IS window
  (returns from the window's first bar, of the account as it stood). Each bar is replayed
  once per set however long the lookback: the population is replayed over each round's OOS
  bars only, and the IS score is composed from the tallies of the segments the lookback
  spans (segments split at every round boundary).

Composed exactly (up to the order of float additions, ~1e-15 relative): every engine metric
that is a function of sums over bars or trades and of the window's start and end equity —
total_return, cagr, volatility, sharpe, sortino, win_rate, profit_factor, expectancy,
n_trades, exposure, turnover, turnover_annual, end_equity, fees_paid, funding_paid
(:data:`CARRIED_METRICS`). Drawdown metrics depend on the path across segments and are not
composed: an agent whose objective is ``max_drawdown``, ``calmar``, ``max_drawdown_duration``
or ``deflated_sharpe`` is scored fresh (:func:`carried_objective_ok`).

Out of sample nothing changes for the agent: the chosen set trades from the agent's own
account as in the fresh mode. The population's daily OOS returns (for PBO and the deflated
Sharpe's variance of trials) are those of every set's own continuous account — the standard
input of combinatorially symmetric cross-validation (a T × N matrix of each configuration's
continuous backtest).

Pure core: no Ray, no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantarena.engine import layout as L
from quantarena.engine.metrics import metrics_from_state
from quantarena.engine.simulate import Accounts
from quantarena.tournaments.schedule import Round

__all__ = [
    "CARRIED_METRICS",
    "IN_SAMPLE_MODES",
    "DEFAULT_IN_SAMPLE",
    "PopulationState",
    "Segment",
    "advance",
    "carried_objective_ok",
    "compose_metrics",
    "round_bounds",
    "start_state",
]

#: how a fixed population is scored in sample (see the module docstring)
IN_SAMPLE_MODES = ("carried", "fresh")
DEFAULT_IN_SAMPLE = "carried"

#: engine metrics composed exactly from segment tallies
CARRIED_METRICS = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "win_rate",
    "profit_factor",
    "expectancy",
    "n_trades",
    "exposure",
    "turnover",
    "turnover_annual",
    "end_equity",
    "fees_paid",
    "funding_paid",
)
#: state rows that add up over consecutive segments
_ADDITIVE = (
    L.SUM_R, L.SUM_R2, L.SUM_D2, L.EXPO, L.TURN, L.NTR, L.WINS, L.GP, L.GL, L.SUM_TRET,
    L.FEES, L.FUND,
)  # fmt: skip
_PATH = (L.PEAK, L.INV_PEAK, L.TROUGH, L.MAX_DD, L.MAX_DD_DUR, L.LAST_PEAK_T)
DAY_NS = 86_400 * 1_000_000_000


def carried_objective_ok(objective: str) -> bool:
    """True when ``objective`` is composed exactly by the carried scoring."""
    return objective in CARRIED_METRICS


def round_bounds(rounds: list[Round]) -> np.ndarray:
    """Every bar index where a round's IS or OOS window starts or ends, sorted: the carried
    scoring splits its segments there, so any round's IS window is a union of segments."""
    b = {int(x) for r in rounds for x in (r.is_start, r.is_end, r.oos_start, r.oos_end)}
    return np.array(sorted(b), dtype=np.int64)


@dataclass
class Segment:
    """The tallies of bars ``[start, end)`` of every set's own account: ``e0`` ``(P,)`` the
    equity before the first bar, ``S`` ``(NS, P)`` the engine's state after the last bar
    (sums counted from ``start``)."""

    start: int
    end: int
    e0: np.ndarray
    S: np.ndarray


@dataclass
class PopulationState:
    """Every set's account at the close of bar ``bar - 1`` (a global bar index) and the
    segments replayed so far that a later IS window may still need."""

    bar: int
    accounts: Accounts
    segments: list[Segment] = field(default_factory=list)

    def window(self, start: int, end: int) -> list[Segment] | None:
        """The consecutive segments that exactly cover ``[start, end)``, or None."""
        out = [s for s in self.segments if s.start >= start and s.end <= end]
        if not out or out[0].start != start or out[-1].end != end:
            return None
        if any(a.end != b.start for a, b in zip(out, out[1:], strict=False)):
            return None
        return out

    def prune(self, keep_from: int) -> None:
        """Forget segments that end at or before bar ``keep_from``."""
        self.segments = [s for s in self.segments if s.end > keep_from]


def compose_metrics(
    segments: list[Segment], *, interval_ns: int, periods_per_year: float
) -> dict[str, np.ndarray]:
    """The :data:`CARRIED_METRICS` of every set over the union of consecutive ``segments``,
    as one replay of those bars from each set's account at the first segment's start would
    give them (see :func:`quantarena.engine.metrics.metrics_from_state`)."""
    first = segments[0]
    S = np.zeros_like(first.S)
    for seg in segments:
        S[list(_ADDITIVE)] += seg.S[list(_ADDITIVE)]
    S[L.EQ_PREV] = segments[-1].S[L.EQ_PREV]
    S[L.CASH] = segments[-1].S[L.CASH]
    S[L.RUINED] = segments[-1].S[L.RUINED]
    S[list(_PATH)] = np.nan  # not composed (path dependent)
    n = sum(s.end - s.start for s in segments)
    init = np.where(first.e0 != 0.0, first.e0, 1.0)
    m = metrics_from_state(
        S, n_bars=n, interval_ns=int(interval_ns), init_cash=init, periods_per_year=periods_per_year
    )
    return {k: m[k] for k in CARRIED_METRICS}


def _pieces(a: int, b: int, cuts: np.ndarray) -> list[tuple[int, int]]:
    """``[a, b)`` split at every cut strictly inside it."""
    inner = [int(c) for c in cuts if a < c < b]
    edges = [a, *inner, b]
    return list(zip(edges[:-1], edges[1:], strict=True))


def advance(
    run: Any,
    w0: int,
    state: PopulationState,
    end: int,
    bounds: np.ndarray,
    ts: np.ndarray,
    *,
    daily_from: int | None = None,
) -> np.ndarray | None:
    """Replay every set's own account from ``state.bar`` to ``end`` (global bars) with the
    :class:`~quantarena.strategies.runner.PopulationRun` ``run`` built on bars from ``w0``;
    append one :class:`Segment` per piece between ``bounds``. With ``daily_from``, also
    return the UTC-day returns ``(days, P)`` of every set over ``[daily_from, end)`` (each
    day's return from the equity at the close of its last bar)."""
    a = state.bar
    if end <= a:
        return None
    day = np.asarray(ts, dtype=np.int64) // DAY_NS
    day_cuts = np.array([], dtype=np.int64)
    if daily_from is not None:
        d = day[daily_from - w0 : end - w0]
        day_cuts = daily_from + np.flatnonzero(d[1:] != d[:-1]) + 1
    daily: list[np.ndarray] = []
    days: list[int] = []
    for s0, s1 in _pieces(a, end, np.asarray(bounds)):
        e0 = np.array(state.accounts.equity, dtype=np.float64)
        S_sum: np.ndarray | None = None
        for p0, p1 in _pieces(s0, s1, day_cuts):
            start_eq = np.array(state.accounts.equity, dtype=np.float64)
            res = run.replay(slice(p0 - w0, p1 - w0), start=state.accounts)
            S = np.asarray(res.state[0], dtype=np.float64)
            state.accounts = res.accounts()
            if S_sum is None:
                S_sum = S.copy()
            else:
                S_sum[list(_ADDITIVE)] += S[list(_ADDITIVE)]
                for r in (L.EQ_PREV, L.CASH, L.RUINED):
                    S_sum[r] = S[r]
            if daily_from is not None and p0 >= daily_from:
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = np.where(start_eq != 0.0, S[L.EQ_PREV] / start_eq, 1.0)
                d0 = int(day[p0 - w0])
                if days and days[-1] == d0:  # a day split by a round boundary: compound
                    daily[-1] = daily[-1] * g
                else:
                    daily.append(g)
                    days.append(d0)
        assert S_sum is not None
        S_sum[list(_PATH)] = np.nan
        state.segments.append(Segment(s0, s1, e0, S_sum))
        state.bar = s1
    if daily_from is None:
        return None
    return np.vstack(daily) - 1.0 if daily else np.zeros((0, state.accounts.n_params))


def start_state(n_assets: int, n_params: int, bar: int) -> PopulationState:
    """Flat accounts of equity 1.0 at bar ``bar``."""
    return PopulationState(int(bar), Accounts.flat(n_assets, n_params), [])
