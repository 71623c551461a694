"""One agent's work in one walk-forward round: pick parameters in sample, trade out of sample.

This is the function an agent actor calls each round; it is pure (no Ray, no MLflow) so it is
tested directly and gives the same numbers inside an actor, in a test or on a GPU node.

For round ``k`` with bars ``[warmup_start, oos_end)``:

1. The agent's indicators are computed **once** over the whole window ``[warmup_start,
   oos_end)`` (one indicator per distinct window, shared by the population). An agent's position
   at bar ``t`` depends only on bars ``<= t`` (the look-ahead audit holds every agent to that),
   so OOS bars never leak into the IS positions.
2. **In sample**: every parameter set of the population is replayed over the IS bars only
   (warm-up bars feed indicators but are not scored) and the best set by ``objective`` is
   chosen. Each IS replay starts flat.
3. **Out of sample**: the whole population is replayed over the OOS bars (starting flat), so
   that the chosen set's per-bar OOS returns and, for the probability of backtest
   overfitting, every set's daily OOS returns come from one kernel call.

Ranking, gates and allocation downstream use only the OOS results.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantarena.data.panel import BarPanel
from quantarena.engine.backend import get_backend, to_host
from quantarena.engine.costs import Costs
from quantarena.engine.simulate import simulate
from quantarena.engine.stops import Stops
from quantarena.strategies import params as P
from quantarena.strategies.base import Agent
from quantarena.tournaments.overfitting import deflated_sharpe, sharpe_stats
from quantarena.tournaments.schedule import Round

__all__ = [
    "LOWER_IS_BETTER",
    "AgentEntry",
    "OffsetSource",
    "RoundResult",
    "daily_returns",
    "evaluate_round",
    "population_dsr",
    "select_best",
]

DAY_NS = 86_400 * 1_000_000_000
#: objectives where a smaller value is better (everything else is maximised)
LOWER_IS_BETTER = frozenset(
    {"max_drawdown", "max_drawdown_duration", "volatility", "turnover", "turnover_annual"}
)


class OffsetSource:
    """A position source shifted in time: block ``[t0, t1)`` of this source is block
    ``[t0 + offset, t1 + offset)`` of ``inner`` (built on a longer panel that starts
    ``offset`` bars earlier, so indicators see the warm-up history)."""

    def __init__(self, inner: Any, offset: int) -> None:
        self.inner = inner
        self.offset = int(offset)
        self.n_params = int(inner.n_params)

    def __call__(self, t0: int, t1: int) -> Any:
        return self.inner(t0 + self.offset, t1 + self.offset)


@dataclass
class AgentEntry:
    """One tournament entrant: a named agent with its population of parameter sets.

    Attributes:
        name: unique name in the tournament (e.g. ``"momentum"`` or ``"mom-fast"``).
        agent: the agent instance (carries ``max_position``).
        params: the population, name → ``(P,)`` array (a grid or a random sample).
        objective: the IS metric to select by (a key of the engine's metrics, or
            ``"deflated_sharpe"``: see :func:`population_dsr`).
    """

    name: str
    agent: Agent
    params: P.Params
    objective: str = "sharpe"

    @property
    def n_trials(self) -> int:
        return P.n_params(self.params)


@dataclass
class RoundResult:
    """What an agent reports after a round (small arrays only).

    Attributes:
        agent: entrant name. round: round index.
        chosen: the parameter set picked in sample, as plain Python values.
        chosen_index: its index in the population.
        n_trials: parameter sets evaluated in sample this round.
        is_metrics: the chosen set's IS metrics (engine definitions; Sharpe annualised).
        is_sharpe_all: ``(P,)`` annualised IS Sharpe of every set (for the deflated Sharpe's
            variance of trial Sharpes).
        oos_ts: ``(n,)`` OOS bar open times (ns UTC).
        oos_returns: ``(n,)`` per-bar simple returns of the chosen set, OOS.
        oos_metrics: the chosen set's OOS metrics.
        oos_daily_all: ``(days, P)`` daily compounded OOS returns of every set (UTC days).
        timings: seconds spent in ``replay_is``, ``replay_oos`` and ``indicators``.
    """

    agent: str
    round: int
    chosen: dict[str, Any]
    chosen_index: int
    n_trials: int
    is_metrics: dict[str, float]
    is_sharpe_all: np.ndarray
    oos_ts: np.ndarray
    oos_returns: np.ndarray
    oos_metrics: dict[str, float]
    oos_daily_all: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def select_best(metrics: dict[str, np.ndarray], objective: str = "sharpe") -> int:
    """Index of the best parameter set by ``objective`` (NaN never wins; ties → lowest index)."""
    if objective not in metrics:
        raise ValueError(
            f"objective {objective!r} is not a metric: use one of {', '.join(sorted(metrics))}"
        )
    v = np.asarray(metrics[objective], dtype=np.float64)
    score = -v if objective in LOWER_IS_BETTER else v
    score = np.where(np.isfinite(score), score, -np.inf)
    return int(np.argmax(score))


def daily_returns(ts: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """Compound per-bar simple returns ``(n,)`` or ``(n, P)`` into UTC-day returns ``(days, ...)``."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] == 0:
        return r[:0]
    day = np.asarray(ts, dtype=np.int64) // DAY_NS
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    logs = np.log1p(np.maximum(r, -1.0 + 1e-12))
    return np.expm1(np.add.reduceat(logs, starts, axis=0))


def population_dsr(returns: np.ndarray) -> np.ndarray:
    """Deflated Sharpe ratio of every parameter set, ``(P,)``, from per-bar returns ``(T, P)``:
    each set's probabilistic Sharpe against the expected best of ``P`` skill-less trials
    (N = P, V = variance of the sets' per-period Sharpe ratios; skew and kurtosis per set).
    NaN with fewer than 3 bars. Selecting by it prefers a high Sharpe with benign higher
    moments, where plain Sharpe ignores skew and fat tails."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if r.shape[0] < 3:
        return np.full(r.shape[1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant columns (never traded)
        stats = sharpe_stats(r, axis=0)
        sr = np.atleast_1d(np.asarray(stats.sr, dtype=np.float64))
        finite = sr[np.isfinite(sr)]
        var = float(np.var(finite, ddof=1)) if finite.size > 1 else 0.0
        out = deflated_sharpe(stats, r.shape[1], var)
    return np.atleast_1d(np.asarray(out, dtype=np.float64))


def evaluate_round(
    bars: BarPanel,
    entry: AgentEntry,
    rnd: Round,
    costs: Costs | None = None,
    *,
    stops: Stops | None = None,
    leverage: float = 1.0,
    backend: str = "auto",
    block: int = 8192,
    periods_per_year: float | None = None,
) -> RoundResult:
    """Pick ``entry``'s parameters on ``rnd``'s in-sample bars and trade them out of sample.

    Args:
        bars: the whole tournament panel (indices of ``rnd`` point into it).
        entry: the agent and its population.
        rnd: the round (bar index windows).
        costs: cost models (fees, slippage, impact, funding), used both IS and OOS.
        stops: optional stops, applied to every parameter set.
        leverage: gross exposure cap.
        backend: engine backend (``"auto"`` picks the GPU when CUDA is usable).
        block: bars per streamed block.
        periods_per_year: annualisation of the metrics (default: the engine's, a 365-day
            year); the director passes the tournament's (252 days for equities).
    """
    be = get_backend(backend)
    xp = be.xp
    t_ind = time.perf_counter()
    window = bars.select(slice(rnd.warmup_start, rnd.oos_end))
    source = entry.agent.source(window, entry.params, xp)
    t_ind = time.perf_counter() - t_ind
    common = dict(
        costs=costs,
        stops=stops,
        max_position=entry.agent.max_position,
        leverage=leverage,
        backend=be,
        block=block,
        periods_per_year=periods_per_year,
    )

    t0 = time.perf_counter()
    is_bars = bars.select(rnd.is_slice)
    want_dsr = entry.objective == "deflated_sharpe"
    is_res = simulate(
        is_bars,
        OffsetSource(source, rnd.is_start - rnd.warmup_start),
        record=("returns",) if want_dsr else (),
        **common,
    )
    is_metrics = is_res.metrics
    if want_dsr:  # not an engine metric: it needs every set's IS returns (T_is × P floats)
        is_metrics = {**is_metrics, "deflated_sharpe": population_dsr(to_host(is_res.returns))}
    t_is = time.perf_counter() - t0
    best = select_best(is_metrics, entry.objective)

    t0 = time.perf_counter()
    oos_bars = bars.select(rnd.oos_slice)
    oos_res = simulate(
        oos_bars,
        OffsetSource(source, rnd.oos_start - rnd.warmup_start),
        record=("returns",),
        **common,
    )
    oos_all = to_host(oos_res.returns)
    t_oos = time.perf_counter() - t0
    if oos_all.ndim == 1:
        oos_all = oos_all[:, None]

    return RoundResult(
        agent=entry.name,
        round=rnd.index,
        chosen={k: np.asarray(v)[best].item() for k, v in entry.params.items()},
        chosen_index=best,
        n_trials=entry.n_trials,
        is_metrics={k: float(v[best]) for k, v in is_metrics.items()},
        is_sharpe_all=np.asarray(is_res.metrics["sharpe"], dtype=np.float64),
        oos_ts=oos_bars.ts.copy(),
        oos_returns=np.ascontiguousarray(oos_all[:, best], dtype=np.float64),
        oos_metrics={k: float(v[best]) for k, v in oos_res.metrics.items()},
        oos_daily_all=daily_returns(oos_bars.ts, oos_all),
        timings={"indicators": t_ind, "replay_is": t_is, "replay_oos": t_oos},
    )
