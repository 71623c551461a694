"""One agent's work in one walk-forward round: pick parameters in sample, trade out of sample.

This is the function an agent actor calls each round; it is pure (no Ray, no MLflow) so it is
tested directly and gives the same numbers inside an actor, in a test or on a GPU node. Every
replay goes through :class:`quantarena.strategies.runner.PopulationRun`, with the agent's
costs, stops and leverage.

For round ``k`` with bars ``[warmup_start, oos_end)``:

1. The agent's indicators are computed **once** over the whole window ``[warmup_start,
   oos_end)`` (one indicator per distinct window, shared by the population). An agent's position
   at bar ``t`` depends only on bars ``<= t`` (the look-ahead audit holds every agent to that),
   so OOS bars never leak into the IS positions.
2. **In sample**: every parameter set of the population is replayed over the IS bars only
   (warm-up bars feed indicators but are not scored) and the best set by ``objective`` is
   chosen. Each IS replay starts flat: it scores the parameters, not the account.
3. **Out of sample**: the agent trades like one account across rounds. The OOS replay starts
   from the account the previous round ended with (its cash, positions and open trades; flat
   with equity 1.0 in the first round), and the weights the chosen set decides at the close
   of the last IS bar fill at the first OOS bar's open: when the chosen parameters change,
   only the difference between the held and the new target is traded; when they do not,
   nothing is. The whole population is replayed from that same account (one kernel call),
   so that the chosen set's per-bar OOS returns and, for the probability of backtest
   overfitting, every set's daily OOS returns come together. An agent whose choice never
   changes therefore has exactly the OOS equity of one continuous backtest.

Ranking, gates and allocation downstream use only the OOS results (per-bar returns, which do
not depend on the account's size).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantarena.data.calendars import ALWAYS_OPEN, bars_per_year
from quantarena.data.panel import BarPanel
from quantarena.engine.backend import get_backend, to_host
from quantarena.engine.costs import Costs
from quantarena.engine.filters import ExchangeFilters
from quantarena.engine.metrics import score
from quantarena.engine.simulate import Account, SimResult
from quantarena.engine.stops import Stops
from quantarena.strategies import params as P
from quantarena.strategies.base import Agent
from quantarena.strategies.runner import PopulationRun
from quantarena.tournaments import carried as C
from quantarena.tournaments.schedule import Round

__all__ = [
    "AgentEntry",
    "RoundResult",
    "daily_returns",
    "evaluate_round",
    "evaluate_round_carried",
    "evaluate_round_tuned",
    "failed_result",
    "population_dsr",
    "select_best",
]

DAY_NS = 86_400 * 1_000_000_000
#: objectives computed here rather than by the engine, with their direction (True: higher
#: is better); the engine's metrics carry theirs in :data:`quantarena.engine.metrics.METRICS`
ROUND_OBJECTIVES = {"deflated_sharpe": True}


@dataclass
class AgentEntry:
    """One tournament entrant: a named agent with its population of parameter sets.

    Attributes:
        name: unique name in the tournament (e.g. ``"momentum"`` or ``"mom-fast"``).
        agent: the agent instance (carries ``max_position``).
        params: the population, name → ``(P,)`` array (a grid or a random sample).
        objective: the IS metric to select by (a key of the engine's metrics, or
            ``"deflated_sharpe"``: see :func:`population_dsr`).
        tuning: a :class:`~quantarena.training.tuning.TuningSpec` to tune with Optuna in each
            in-sample window instead of scanning ``params`` (None: scan).
        space: the search space when tuning (name → ``Int``/``Float``/``Choice``).
        stops: stop-loss / take-profit / trailing applied to every set, in sample and out
            (None: none).
        leverage: cap on the sum of |weights| per bar.
        filters: the exchange's lot size / minimum notional on the agent's account of 1.0
            (the config's, scaled by 1 / capital; None: none).
        ticks: for a tick agent (market making, arbitrage), where its events are:
            ``{"store": path, "symbols": [...]}`` (set by the tournament's setup).
        in_sample: how a scanned population is scored in sample: ``"carried"`` (each set's
            own continuous account; :mod:`quantarena.tournaments.carried`) or ``"fresh"``
            (each set replayed from flat over the IS window). Tuning and learning agents,
            and objectives the carried scoring does not compose, are scored fresh.
        bounds: every round boundary of the tournament (set by its setup), where the
            carried scoring splits its segments.
    """

    name: str
    agent: Agent
    params: P.Params
    objective: str = "sharpe"
    tuning: Any = None
    space: Any = None
    stops: Stops | None = None
    leverage: float = 1.0
    ticks: dict[str, Any] | None = None
    in_sample: str = C.DEFAULT_IN_SAMPLE
    bounds: np.ndarray | None = None
    filters: ExchangeFilters | None = None

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
        oos_metrics: the chosen set's OOS metrics, of the agent's account over this round:
            returns, Sharpe and drawdown from the round's first bar; ``end_equity``,
            ``fees_paid`` and ``funding_paid`` in the account's cash (it started the first
            round with 1.0).
        oos_daily_all: ``(days, P)`` daily compounded OOS returns of every set (UTC days).
        timings: seconds spent in ``replay_is``, ``replay_oos`` and ``indicators``.
        model: for learning agents (with ``last_models``), the chosen set's latest trained
            model (a :class:`~quantarena.strategies.ml.models.FitResult`), for MLflow.
        top_params: with tuning (:func:`evaluate_round_tuned`), the sets replayed out of
            sample, best IS first (``top_params[0] == chosen``): the next round's warm start.
            Empty for a fixed population.
        account: the chosen set's account at the close of the last OOS bar (cash, positions,
            open trades): the next round's OOS replay starts from it.
        failed: the traceback of the error that stopped this agent-round after its retries
            (None: it ran); a failed round is scored flat (:func:`failed_result`).
        population: with carried IS scoring, every set's own account and the segment
            tallies the next round needs (:class:`~quantarena.tournaments.carried.
            PopulationState`); the director keeps it on an agent's latest result only.
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
    top_params: list[dict[str, Any]] = field(default_factory=list)
    model: Any = None
    account: Account | None = None
    failed: str | None = None
    population: Any = None


def select_best(metrics: dict[str, np.ndarray], objective: str = "sharpe") -> int:
    """Index of the best parameter set by ``objective`` (NaN never wins; ties → lowest index)."""
    if objective not in metrics:
        raise ValueError(
            f"objective {objective!r} is not a metric: use one of {', '.join(sorted(metrics))}"
        )
    return int(np.argmax(score(metrics[objective], objective, ROUND_OBJECTIVES)))


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
    from quantarena.tournaments.overfitting import deflated_sharpe, sharpe_stats  # SciPy: lazy

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


def returns_from_equity(
    ts: np.ndarray, equity: np.ndarray, column: int, init_cash: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar returns of one ``column`` and UTC-day returns of every column, from recorded
    equity ``(n, P)`` (starting from ``init_cash``).

    Per-bar returns use the engine's own formula ``(E_t - E_{t-1}) / E_{t-1}``, so they equal
    recorded returns exactly; a day's return is ``E(last bar of the day) / E(last bar of the
    day before) - 1``, the compounded product of its bar returns — reading a handful of rows
    instead of compounding every bar of every parameter set.
    """
    e = np.ascontiguousarray(equity[:, column], dtype=np.float64)
    prev = np.empty_like(e)
    prev[0] = init_cash
    prev[1:] = e[:-1]
    r = (e - prev) / prev
    if equity.shape[0] == 0:
        return r, equity[:0]
    day = np.asarray(ts, dtype=np.int64) // DAY_NS
    ends = np.flatnonzero(np.r_[day[1:] != day[:-1], True])
    eq_end = np.asarray(equity[ends], dtype=np.float64)
    base = np.vstack([np.full((1, eq_end.shape[1]), init_cash), eq_end[:-1]])
    return r, eq_end / base - 1.0


def _population_run(
    window: BarPanel,
    entry: AgentEntry,
    params: P.Params,
    *,
    costs: Costs | None,
    stops: Stops | None,
    leverage: float | None,
    backend: Any,
    block: int,
    periods_per_year: float | None,
) -> PopulationRun:
    """The population on the round's window with the entry's stops and leverage (an
    explicit ``stops`` / ``leverage`` overrides them)."""
    return PopulationRun(
        entry.agent,
        window,
        params,
        costs=costs,
        stops=entry.stops if stops is None else stops,
        leverage=entry.leverage if leverage is None else leverage,
        filters=entry.filters,
        backend=backend,
        block=block,
        periods_per_year=periods_per_year,
    )


def _replay_oos(
    run: PopulationRun, rnd: Round, column: int, start: Account | None
) -> tuple[np.ndarray, SimResult, np.ndarray, np.ndarray, Account]:
    """Replay the population over ``rnd``'s OOS bars as the agent's account: from ``start``
    (None: flat, equity 1.0) with the decision at the close of the last IS bar filling at
    the first OOS open. Returns the OOS bar times, the result, the per-bar returns of set
    ``column``, every set's daily returns (read from recorded equity) and ``column``'s
    account at the end."""
    w0 = rnd.warmup_start
    res = run.replay(
        slice(rnd.oos_start - w0, rnd.oos_end - w0),
        start=start,
        from_prior_close=True,
        record=("equity",),
    )
    eq = to_host(res.equity)
    if eq.ndim == 1:
        eq = eq[:, None]
    oos_ts = run.bars.ts[rnd.oos_start - w0 : rnd.oos_end - w0].copy()
    base = 1.0 if start is None else float(start.equity)
    oos_returns, oos_daily = returns_from_equity(oos_ts, eq, column, init_cash=base)
    return oos_ts, res, oos_returns, oos_daily, res.account(column)


def evaluate_round(
    bars: BarPanel,
    entry: AgentEntry,
    rnd: Round,
    costs: Costs | None = None,
    *,
    start: Account | None = None,
    stops: Stops | None = None,
    leverage: float | None = None,
    backend: str = "auto",
    block: int = 2048,
    periods_per_year: float | None = None,
) -> RoundResult:
    """Pick ``entry``'s parameters on ``rnd``'s in-sample bars and trade them out of sample.

    Args:
        bars: the whole tournament panel (indices of ``rnd`` point into it).
        entry: the agent and its population (with its stops and leverage).
        rnd: the round (bar index windows).
        costs: cost models (fees, slippage, impact, funding), used both IS and OOS.
        start: the account the previous round ended with (``RoundResult.account``); None:
            flat with equity 1.0 (the first round).
        stops: stops for every parameter set (None: ``entry.stops``).
        leverage: gross exposure cap (None: ``entry.leverage``).
        backend: engine backend (``"auto"`` picks the GPU when CUDA is usable).
        block: bars per streamed block (2048: a block of 1,000 sets stays in cache between
            the agent's signal and the replay; results do not depend on it).
        periods_per_year: annualisation of the metrics (default: the engine's, a 365-day
            year); the director passes the tournament's (252 days for equities).
    """
    be = get_backend(backend)
    w0 = rnd.warmup_start
    t_ind = time.perf_counter()
    window = bars.select(slice(w0, rnd.oos_end))
    run = _population_run(
        window,
        entry,
        entry.params,
        costs=costs,
        stops=stops,
        leverage=leverage,
        backend=be,
        block=block,
        periods_per_year=periods_per_year,
    )
    t_ind = time.perf_counter() - t_ind

    t0 = time.perf_counter()
    want_dsr = entry.objective == "deflated_sharpe"
    is_res = run.replay(
        slice(rnd.is_start - w0, rnd.is_end - w0), record=("returns",) if want_dsr else ()
    )
    is_metrics = is_res.metrics
    if want_dsr:  # not an engine metric: it needs every set's IS returns (T_is × P floats)
        is_metrics = {**is_metrics, "deflated_sharpe": population_dsr(to_host(is_res.returns))}
    t_is = time.perf_counter() - t0
    best = select_best(is_metrics, entry.objective)

    t0 = time.perf_counter()
    oos_ts, oos_res, oos_returns, oos_daily, account = _replay_oos(run, rnd, best, start)
    t_oos = time.perf_counter() - t0

    return RoundResult(
        agent=entry.name,
        round=rnd.index,
        chosen={k: np.asarray(v)[best].item() for k, v in entry.params.items()},
        chosen_index=best,
        n_trials=entry.n_trials,
        is_metrics={k: float(v[best]) for k, v in is_metrics.items()},
        is_sharpe_all=np.asarray(is_res.metrics["sharpe"], dtype=np.float64),
        oos_ts=oos_ts,
        oos_returns=oos_returns,
        oos_metrics={k: float(v[best]) for k, v in oos_res.metrics.items()},
        oos_daily_all=oos_daily,
        timings={"indicators": t_ind, "replay_is": t_is, "replay_oos": t_oos},
        account=account,
    )


def evaluate_round_tuned(
    bars: BarPanel,
    entry: AgentEntry,
    rnd: Round,
    costs: Costs | None = None,
    *,
    tuning: Any,
    warm_start: list[dict[str, Any]] | None = None,
    space: Any = None,
    start: Account | None = None,
    stops: Stops | None = None,
    leverage: float | None = None,
    backend: str = "auto",
    block: int = 2048,
    periods_per_year: float | None = None,
) -> RoundResult:
    """Like :func:`evaluate_round`, but the agent TUNES in sample with Optuna instead of
    scanning its fixed population.

    ``tuning`` is a :class:`~quantarena.training.tuning.TuningSpec` (sampler, trials, batch,
    oos_top, seed). The search space is ``space`` (name → ``Int``/``Float``/``Choice``) or, by
    default, the box spanned by ``entry.params`` (see
    :func:`~quantarena.training.tuning.space_from_values`); each batch of trials is one
    IS replay (indicators over the warm-up + IS + OOS window, scored on the IS bars only, so
    no OOS bar leaks into the choice). ``warm_start`` sets (e.g. the previous round's
    ``top_params``) are asked first.

    Out of sample, the best ``tuning.oos_top`` distinct sets by the IS objective are replayed
    in one call from the agent's account ``start`` (best first: ``chosen_index`` is 0), so
    ``oos_daily_all`` is ``(days, K)`` with K fixed across rounds (the PBO matrix stays
    bounded). ``n_trials`` and ``is_sharpe_all`` cover EVERY distinct set evaluated in
    sample, which is what the deflated Sharpe must be deflated by. The objective
    ``"deflated_sharpe"`` is not supported here (it needs every set's IS returns at once).
    """
    from quantarena.training.tuning import (
        create_study,
        run_batches,
        space_from_values,
        warm_start_sets,
    )

    if entry.objective == "deflated_sharpe":
        raise ValueError(
            f"agent {entry.name!r}: objective 'deflated_sharpe' cannot be tuned trial by trial: "
            "use sharpe, sortino, calmar or total_return with tuning"
        )
    be = get_backend(backend)
    agent = entry.agent
    w0 = rnd.warmup_start
    window = bars.select(slice(w0, rnd.oos_end))
    settings = dict(
        costs=costs,
        stops=stops,
        leverage=leverage,
        backend=be,
        block=block,
        periods_per_year=periods_per_year,
    )
    is_slice = slice(rnd.is_start - w0, rnd.is_end - w0)
    t_ind = 0.0

    def evaluate(pop: P.Params) -> dict[str, np.ndarray]:
        nonlocal t_ind
        t = time.perf_counter()
        run = _population_run(window, entry, pop, **settings)
        t_ind += time.perf_counter() - t
        res = run.replay(is_slice)
        return {k: np.asarray(to_host(v), dtype=np.float64) for k, v in res.metrics.items()}

    space = dict(space) if space is not None else space_from_values(agent, entry.params)
    study = create_study(
        sampler=tuning.sampler,
        objective=entry.objective,
        seed=int(tuning.seed) + int(rnd.index),
        batch=tuning.batch,
    )
    for ps in warm_start_sets(agent, space, warm_start or []):
        study.enqueue_trial(ps)
    t0 = time.perf_counter()
    records, _ = run_batches(
        study,
        evaluate,
        space,
        n_trials=tuning.trials,
        batch=tuning.batch,
        objective=entry.objective,
        valid=agent.valid,
    )
    t_is = time.perf_counter() - t0 - t_ind
    if not records:
        raise ValueError(
            f"agent {entry.name!r}: no valid parameter set among {tuning.trials} trials in "
            f"round {rnd.index}: check its params ranges"
        )
    names = list(space)
    seen: dict[tuple, int] = {}
    rows = []
    for r in records:  # distinct sets, first occurrence
        key = tuple(str(r[n]) for n in names)
        if key not in seen:
            seen[key] = len(rows)
            rows.append(r)
    metric_names = [k for k in rows[0] if k != "number" and k not in names]
    is_metrics_all = {m: np.array([r[m] for r in rows], dtype=np.float64) for m in metric_names}
    order = np.argsort(
        -score(is_metrics_all[entry.objective], entry.objective, ROUND_OBJECTIVES), kind="stable"
    )[: max(int(tuning.oos_top), 1)]
    top_sets = [{n: rows[i][n] for n in names} for i in order]
    top_pop = {n: space[n].coerce(n, [s[n] for s in top_sets]) for n in names}

    t0 = time.perf_counter()
    run = _population_run(window, entry, top_pop, **settings)
    oos_ts, oos_res, oos_returns, oos_daily, account = _replay_oos(run, rnd, 0, start)
    t_oos = time.perf_counter() - t0
    best = int(order[0])
    return RoundResult(
        agent=entry.name,
        round=rnd.index,
        chosen=dict(top_sets[0]),
        chosen_index=0,
        n_trials=len(rows),
        is_metrics={k: float(a[best]) for k, a in is_metrics_all.items()},
        is_sharpe_all=is_metrics_all["sharpe"].copy(),
        oos_ts=oos_ts,
        oos_returns=oos_returns,
        oos_metrics={k: float(np.asarray(to_host(a))[0]) for k, a in oos_res.metrics.items()},
        oos_daily_all=oos_daily,
        timings={"indicators": t_ind, "replay_is": t_is, "replay_oos": t_oos},
        top_params=[dict(s) for s in top_sets],
        account=account,
    )


def evaluate_round_carried(
    bars: BarPanel,
    entry: Any,
    rnd: Round,
    costs: Costs | None = None,
    *,
    start: Account | None = None,
    population: C.PopulationState | None = None,
    bounds: np.ndarray | None = None,
    backend: str = "auto",
    block: int = 2048,
    periods_per_year: float | None = None,
) -> Any:
    """One round of a fixed population with carried IS scoring (:mod:`quantarena.tournaments.carried`).

    Args:
        bars, entry, rnd, costs, backend, block, periods_per_year: as
            :func:`quantarena.tournaments.rounds.evaluate_round`.
        start: the agent's own account after its previous round (None: flat 1.0).
        population: the population's state after the previous round (None: every set
            starts flat at this round's first IS bar).
        bounds: every round boundary of the tournament (:func:`~quantarena.tournaments.carried.round_bounds`); None: this
            round's.

    Returns the :class:`RoundResult` with ``population`` set
    (None when the state could not cover this round's IS window: the round was then scored
    fresh by :func:`~quantarena.tournaments.rounds.evaluate_round`, and the next round starts
    the accounts again).
    """
    be = get_backend(backend)
    P = entry.n_trials
    cuts = C.round_bounds([rnd]) if bounds is None else np.asarray(bounds, dtype=np.int64)
    warm = rnd.is_start - rnd.warmup_start
    if population is None or population.bar > rnd.is_end or population.accounts.n_params != P:
        population = C.start_state(bars.n_assets, P, rnd.is_start)
    else:  # keep the caller's object intact (a retried round starts from the same state)
        population = C.PopulationState(
            population.bar, population.accounts, list(population.segments)
        )
    settings = dict(
        costs=costs, stops=None, leverage=None, backend=be, block=block,
        periods_per_year=periods_per_year,
    )  # fmt: skip
    t_ind = time.perf_counter()
    # indicator history before the first replayed bar: the schedule's warm-up (the whole
    # lookback when it has none, as the fresh scoring's OOS bars would have)
    hist = warm if warm > 0 else rnd.is_end - rnd.is_start
    w0 = max(0, min(population.bar, rnd.is_end) - hist)
    window = bars.select(slice(w0, rnd.oos_end))
    run = _population_run(window, entry, entry.params, **settings)
    t_ind = time.perf_counter() - t_ind

    t0 = time.perf_counter()
    C.advance(run, w0, population, rnd.is_end, cuts, window.ts)
    segs = population.window(rnd.is_start, rnd.is_end)
    if segs is None:  # the state does not line up with this IS window: score it fresh
        res = evaluate_round(
            bars, entry, rnd, costs, start=start, backend=backend, block=block,
            periods_per_year=periods_per_year,
        )  # fmt: skip
        return res
    ppy = (
        float(periods_per_year)
        if periods_per_year is not None
        else bars_per_year(ALWAYS_OPEN, int(bars.interval_ns))
    )
    is_metrics = C.compose_metrics(segs, interval_ns=int(bars.interval_ns), periods_per_year=ppy)
    t_is = time.perf_counter() - t0
    best = select_best(is_metrics, entry.objective)

    t0 = time.perf_counter()
    daily = C.advance(run, w0, population, rnd.oos_end, cuts, window.ts, daily_from=rnd.oos_start)
    population.prune(rnd.is_start)
    chosen = {k: np.asarray(v)[best].item() for k, v in entry.params.items()}
    one = {k: np.asarray(v)[best : best + 1] for k, v in entry.params.items()}
    run1 = _population_run(
        bars.select(slice(rnd.warmup_start, rnd.oos_end)), entry, one, **settings
    )
    oos_ts, oos_res, oos_returns, _, account = _replay_oos(run1, rnd, 0, start)
    t_oos = time.perf_counter() - t0
    return RoundResult(
        agent=entry.name,
        round=rnd.index,
        chosen=chosen,
        chosen_index=best,
        n_trials=entry.n_trials,
        is_metrics={k: float(v[best]) for k, v in is_metrics.items()},
        is_sharpe_all=np.asarray(is_metrics["sharpe"], dtype=np.float64),
        oos_ts=oos_ts,
        oos_returns=oos_returns,
        oos_metrics={k: float(v[0]) for k, v in oos_res.metrics.items()},
        oos_daily_all=daily if daily is not None else np.zeros((0, P)),
        timings={"indicators": t_ind, "replay_is": t_is, "replay_oos": t_oos},
        account=account,
        population=population,
    )


def run_agent_round(
    bars: BarPanel,
    entry: AgentEntry,
    rnd: Round,
    costs: Costs | None = None,
    *,
    previous: RoundResult | None = None,
    backend: str = "auto",
    periods_per_year: float | None = None,
) -> RoundResult:
    """One agent's round, scanning its population or tuning (``entry.tuning``): its OOS
    account continues from ``previous`` (the agent's previous round; None: flat), a tuning
    agent is warm-started from its best sets. What agent actors and the in-process runner
    call, rounds in order."""
    if getattr(entry.agent, "tick", False):  # market making, arbitrage: the tick simulator
        from quantarena.tournaments.tick_rounds import evaluate_tick_round

        return evaluate_tick_round(bars, entry, rnd, periods_per_year=periods_per_year)
    start = previous.account if previous is not None else None
    carried = (
        entry.tuning is None
        and entry.in_sample == "carried"
        and C.carried_objective_ok(entry.objective)
        and not hasattr(entry.agent, "last_models")  # learning agents: one model per set
    )
    if carried:
        return evaluate_round_carried(
            bars,
            entry,
            rnd,
            costs,
            start=start,
            population=previous.population if previous is not None else None,
            bounds=entry.bounds,
            backend=backend,
            periods_per_year=periods_per_year,
        )
    if entry.tuning is None:
        res = evaluate_round(
            bars,
            entry,
            rnd,
            costs,
            start=start,
            backend=backend,
            periods_per_year=periods_per_year,
        )
        models = getattr(entry.agent, "last_models", None)
        if models and 0 <= res.chosen_index < len(models):
            res.model = models[res.chosen_index]
        return res
    warm = list(previous.top_params) if previous is not None else []
    return evaluate_round_tuned(
        bars,
        entry,
        rnd,
        costs,
        tuning=entry.tuning,
        warm_start=warm[: entry.tuning.warm_start],
        space=entry.space,
        start=start,
        backend=backend,
        periods_per_year=periods_per_year,
    )


def failed_result(
    ts: np.ndarray,
    entry: AgentEntry,
    rnd: Round,
    error: str,
    previous: RoundResult | None = None,
) -> RoundResult:
    """The result of an agent-round that failed past its retries: scored flat.

    Every OOS bar of ``rnd`` (in ``ts``, the panel's bar times) returns 0 for the agent and
    for every set of its population, no trade and no parameter set is counted, the parameters
    stay those of ``previous`` and the account carries over as ``previous`` left it (the
    round is not traded). ``error`` (the traceback) is kept in ``failed`` for the
    leaderboard and MLflow.
    """
    oos_ts = np.asarray(ts[rnd.oos_slice], dtype=np.int64)
    n_sets = max(1, entry.n_trials)
    if previous is not None and previous.oos_daily_all.ndim == 2:
        n_sets = previous.oos_daily_all.shape[1]  # as the population's record holds them
    zeros = np.zeros(oos_ts.size)
    return RoundResult(
        agent=entry.name,
        round=rnd.index,
        chosen=dict(previous.chosen) if previous is not None else {},
        chosen_index=previous.chosen_index if previous is not None else -1,
        n_trials=0,
        is_metrics={},
        is_sharpe_all=np.full(n_sets, np.nan),
        oos_ts=oos_ts,
        oos_returns=zeros,
        oos_metrics={
            "sharpe": float("nan"),
            "total_return": 0.0,
            "max_drawdown": 0.0,
            "n_trades": 0.0,
            "win_rate": float("nan"),
        },
        oos_daily_all=daily_returns(oos_ts, np.zeros((oos_ts.size, n_sets))),
        top_params=list(previous.top_params) if previous is not None else [],
        account=previous.account if previous is not None else None,
        failed=error,
        # the population's accounts stand where they were: the next round replays the gap
        population=previous.population if previous is not None else None,
    )
