"""Batched Optuna tuning: a whole batch of trials is ONE population on the engine.

The loop (:func:`run_batches`) is::

    trials = [study.ask(distributions) for _ in range(batch)]
    population = {name: (P,) array of the trials' values}      # distinct sets only
    metrics = evaluate(population)                              # one simulate() call
    study.tell(trial, metrics[objective][column of trial])      # for every trial

so a batch of 256 trials costs one kernel call over 256 columns, never 256 backtests. With a
batch sampler (``tpe``, ``cmaes``, ``qmc``: :mod:`quantarena.training.batch_samplers`) the
batch also costs one model fit: ``sampler.prepare_batch(study, distributions, batch)`` proposes
the whole batch before the asks.

* Sets the agent rejects (:meth:`Agent.valid`, e.g. ``fast >= slow``) are told
  ``PRUNED`` and never evaluated (TPE then treats that region as bad; ``FAILED`` trials would
  be ignored and asked again). A NaN objective (e.g. a Sharpe of a set that never trades) is
  told ``FAILED``.
* Identical sets within a batch are evaluated once and told to each of their trials.
* ``warm_start`` parameter sets are enqueued first (``study.enqueue_trial``), so a study
  starts from, e.g., the previous round's best trials; they are in the first batch.
* Objectives: a metric of the engine (annualised ``sharpe``, ``sortino``, ``calmar``,
  ``total_return``, ...; ``max_drawdown``, ``fees_paid`` etc. are minimised: each metric's
  direction is in :data:`quantarena.engine.metrics.METRICS`) or a tuple of them for
  multi-objective search (NSGA-II: ``("sharpe", "max_drawdown")``).
* Fills follow the engine: a position decided at the close of bar t fills at the open of
  bar t+1; costs (fees, slippage in bps of traded notional) as :class:`~quantarena.engine.
  costs.Costs`.
* Determinism: same bars, space, sampler, seed, batch and in-memory storage → the same trials
  and values on the CPU. A shared study (Redis / RDB, several workers) is not deterministic.

The core imports no Ray, MLflow or Redis (a ``redis://`` storage URL is handed to Optuna).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from quantarena.engine.costs import DEFAULT_COSTS
from quantarena.engine.metrics import METRICS, direction
from quantarena.strategies import params as P
from quantarena.strategies.base import Agent
from quantarena.training.samplers import distributions, make_sampler, restrict_space
from quantarena.training.spec import TuningSpec
from quantarena.training.storage import make_storage

__all__ = [
    "BatchStats",
    "TuneResult",
    "TuningSpec",
    "directions",
    "evaluate_population",
    "run_batches",
    "space_from_values",
    "tune",
    "warm_start_sets",
]

Objective = str | Sequence[str]
Evaluator = Callable[[P.Params], Mapping[str, np.ndarray]]


@dataclass
class BatchStats:
    """Counts of one :func:`run_batches` call.

    Attributes:
        asked: trials asked and told. evaluated: trials whose set was replayed (valid).
        pruned: invalid sets (never replayed). failed: NaN objective.
        simulations: evaluator calls (one per batch with a valid set).
        columns: distinct parameter sets replayed, summed over batches.
    """

    asked: int = 0
    evaluated: int = 0
    pruned: int = 0
    failed: int = 0
    simulations: int = 0
    columns: int = 0


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes:
        study: the Optuna study (its storage may hold other workers' trials too).
        best_params: the best trial's parameters (multi-objective: the Pareto trial with the
            best first objective); ``None`` when no trial finished.
        best_value: its objective value (a tuple for multi-objective; NaN when none).
        trials: ``study.trials_dataframe()`` (every trial of the study).
        n_evaluated: trials of THIS call whose parameter set was replayed.
        evaluated: one row per trial of this call that was replayed: ``number``, the
            parameters and every engine metric.
        stats: counts (asked, pruned, failed, simulate calls, columns).
        best_trials: the Pareto front (multi-objective) or ``[best trial]``.
    """

    study: optuna.Study
    best_params: dict[str, Any] | None
    best_value: float | tuple[float, ...]
    trials: pd.DataFrame
    n_evaluated: int
    evaluated: pd.DataFrame = field(default_factory=pd.DataFrame)
    stats: BatchStats = field(default_factory=BatchStats)
    best_trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)


def _objectives(objective: Objective) -> tuple[str, ...]:
    objs = (objective,) if isinstance(objective, str) else tuple(objective)
    if not objs:
        raise ValueError("objective: give a metric name such as 'sharpe'")
    if len(set(objs)) != len(objs):
        raise ValueError(f"objective {objs!r} names a metric twice")
    return objs


def directions(objective: Objective) -> list[str]:
    """Optuna directions, one per objective, from each metric's entry in
    :data:`quantarena.engine.metrics.METRICS` (``"minimize"`` for drawdown, volatility,
    turnover and costs; an unknown metric raises ``ValueError``)."""
    out = []
    for o in _objectives(objective):
        if o not in METRICS:
            raise ValueError(
                f"objective {o!r} is not a metric: use one of {', '.join(sorted(METRICS))}"
            )
        out.append(direction(o))
    return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _population(space: P.Space, sets: Sequence[Mapping[str, Any]]) -> P.Params:
    return {name: dim.coerce(name, [s[name] for s in sets]) for name, dim in space.items()}


def _check_warm_start(space: P.Space, warm: Sequence[Mapping[str, Any]]) -> list[dict]:
    out = []
    for i, ps in enumerate(warm):
        unknown = [k for k in ps if k not in space]
        if unknown:
            raise ValueError(
                f"warm_start #{i}: unknown parameter {unknown[0]!r}: expected one of "
                f"{', '.join(space)}"
            )
        clean = {}
        for k, v in ps.items():
            dim = space[k]
            val = _plain(dim.coerce(k, [_plain(v)])[0])
            if isinstance(dim, P.Int) and (val - dim.lo) % dim.step:
                raise ValueError(f"warm_start #{i}: {k}={val} is off the step {dim.step}")
            if isinstance(dim, P.Choice):
                val = next(c for c in dim.choices if c == val or str(c) == str(val))
                val = _plain(val)
            clean[k] = val
        out.append(clean)
    return out


def space_from_values(agent: Agent, values: Mapping[str, Any]) -> dict[str, P.Dimension]:
    """The search box spanned by per-parameter values: a population (a tournament entry's
    grid or sample) or value lists of any lengths (``AgentConfig.grid()``; no cartesian
    product is built). Values are checked against the agent's own dimensions.

    Per parameter of ``agent.space``: an ``Int`` becomes ``Int(min, max, step)`` with the
    step the gcd of the values' offsets from ``min`` (a ``"5:50:5"`` grid stays on its step);
    a ``Float`` becomes ``Float(min, max)`` (keeping ``log``); a ``Choice`` the distinct
    values. One distinct value fixes the parameter; a parameter the population omits takes
    its default.
    """
    import math

    P._check_names(agent.space, list(values), f"agent {agent.name!r}")
    out: dict[str, P.Dimension] = {}
    for name, dim in agent.space.items():
        given = P.as_values(values[name]) if name in values else [dim.default_value()]
        if not given:
            raise ValueError(f"parameter {name!r}: no values given")
        vals = dim.coerce(name, given)
        if isinstance(dim, P.Int):
            u = np.unique(vals.astype(np.int64))
            lo, hi = int(u[0]), int(u[-1])
            step = 0
            for x in u[1:]:
                step = math.gcd(step, int(x) - lo)
            out[name] = P.Int(lo, hi, max(step, 1)) if hi > lo else P.Choice([lo])
        elif isinstance(dim, P.Float):
            lo_f, hi_f = float(vals.min()), float(vals.max())
            out[name] = P.Float(lo_f, hi_f, log=dim.log) if hi_f > lo_f else P.Choice([lo_f])
        else:
            out[name] = P.Choice(list(dict.fromkeys(_plain(v) for v in vals)))
    return out


def warm_start_sets(
    agent: Agent, space: P.Space, sets: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The ``sets`` that fit ``space`` and ``agent.valid`` (others dropped silently: a warm
    start is a hint, not a requirement), as plain values ready for ``enqueue_trial``."""
    out = []
    for ps in sets:
        try:
            (clean,) = _check_warm_start(space, [ps])
        except ValueError:
            continue
        if set(clean) == set(space):
            pop = _population(space, [clean])
            if not bool(np.asarray(agent.valid(pop))[0]):
                continue
        out.append(clean)
    return out


try:  # what Study.tell runs before it re-reads the trial to return a copy
    from optuna.study._tell import _tell_with_warning
except ImportError:  # pragma: no cover - another Optuna: Study.tell itself
    _tell_with_warning = None


def _tell(study: optuna.Study, trial: optuna.Trial, values: Any = None, state: Any = None) -> None:
    """``study.tell(trial, values, state=state)`` without its return value.

    Optuna's ``Study.tell`` finishes the trial with ``_tell_with_warning`` and then reads the
    finished trial back from the storage and deep-copies it for the caller (≈ 25 µs a trial in
    memory, a round trip on RDB or Redis); :func:`run_batches` never uses that copy. The trial
    lands in the storage exactly as ``Study.tell`` leaves it (same checks, sampler hook and
    storage call); without Optuna's internal function this is ``Study.tell``.
    """
    if _tell_with_warning is None:  # pragma: no cover - another Optuna
        study.tell(trial, values, state=state)
        return
    _tell_with_warning(study=study, trial=trial, value_or_values=values, state=state)


def run_batches(
    study: optuna.Study,
    evaluate: Evaluator,
    space: P.Space,
    *,
    n_trials: int,
    batch: int = 256,
    objective: Objective = "sharpe",
    valid: Callable[[P.Params], np.ndarray] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[list[dict[str, Any]], BatchStats]:
    """Ask ``n_trials`` trials in batches of ``batch``, evaluate each batch as ONE population
    and tell every trial (see the module docstring).

    ``evaluate(population) -> {metric: (P,) array}`` replays a population; ``valid`` masks
    impossible sets (never passed to ``evaluate``). ``on_batch(done, total)`` is called
    after each batch. Returns one record per evaluated trial (``number``, the parameters
    and every metric) and the :class:`BatchStats`. If ``evaluate`` raises, the batch's
    trials are told ``FAILED`` before the error propagates (a shared study keeps no
    trial stuck RUNNING).
    """
    n_trials, batch = int(n_trials), int(batch)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    objs = _objectives(objective)
    dists = distributions(space)
    names = list(space)
    stats = BatchStats()
    records: list[dict[str, Any]] = []
    prepare = getattr(study.sampler, "prepare_batch", None)
    valid_sets = (
        (lambda pop: valid({n: space[n].coerce(n, pop[n]) for n in names}))
        if valid is not None and names
        else None
    )
    while stats.asked < n_trials:
        k = min(batch, n_trials - stats.asked)
        if prepare is not None:  # a batch sampler: one model fit for the whole batch
            prepare(study, dists, k, valid=valid_sets)
        trials = [study.ask(dists) for _ in range(k)]
        told: set[int] = set()
        try:
            sets = [{n: p[n] for n in names} for p in (t.params for t in trials)]
            pop_all = _population(space, sets) if names else {}
            ok = (
                np.asarray(valid(pop_all), dtype=bool)
                if valid is not None and names
                else np.ones(k, dtype=bool)
            )
            # distinct valid sets → columns
            col_of: dict[tuple, int] = {}
            cols: list[int] = []
            for i in range(k):
                if ok[i]:
                    key = tuple(str(sets[i][n]) for n in names)
                    cols.append(col_of.setdefault(key, len(col_of)))
                else:
                    cols.append(-1)
            first = {c: cols.index(c) for c in range(len(col_of))}
            metrics: dict[str, np.ndarray] = {}
            if col_of:
                take = np.asarray([first[c] for c in range(len(col_of))], dtype=np.int64)
                pop = P.take(pop_all, take) if names else {}
                raw = evaluate(pop)
                missing = [o for o in objs if o not in raw]
                if missing:
                    raise ValueError(
                        f"objective {missing[0]!r} is not a metric: use one of "
                        f"{', '.join(sorted(raw))}"
                    )
                metrics = {m: np.asarray(v, dtype=np.float64).ravel() for m, v in raw.items()}
                stats.simulations += 1
                stats.columns += len(col_of)
            for i, t in enumerate(trials):
                c = cols[i]
                if c < 0:
                    _tell(study, t, state=TrialState.PRUNED)
                    told.add(i)
                    stats.pruned += 1
                    continue
                vals = [float(metrics[o][c]) for o in objs]
                stats.evaluated += 1
                records.append(
                    {
                        "number": t.number,
                        **{n: _plain(sets[i][n]) for n in names},
                        **{m: float(v[c]) for m, v in metrics.items()},
                    }
                )
                if all(np.isfinite(vals)):
                    _tell(study, t, vals[0] if len(vals) == 1 else vals)
                else:
                    _tell(study, t, state=TrialState.FAIL)
                    stats.failed += 1
                told.add(i)
        except BaseException:
            for i, t in enumerate(trials):
                if i not in told:
                    try:
                        study.tell(t, state=TrialState.FAIL)
                    except Exception:  # pragma: no cover - best effort on the way out
                        pass
            raise
        stats.asked += k
        if on_batch is not None:
            on_batch(stats.asked, n_trials)
    return records, stats


def evaluate_population(
    bars: Any,
    agent: Agent,
    params: P.Params,
    costs: Any = None,
    *,
    backend: Any = "auto",
    periods_per_year: float | None = None,
    block: int = 8192,
    stops: Any = None,
    leverage: float = 1.0,
) -> dict[str, np.ndarray]:
    """Every engine metric of a population, ``{name: (P,)}``, from ONE engine call
    (:func:`~quantarena.strategies.runner.run_population`: fills at the next bar's open;
    Sharpe annualised with ``periods_per_year``, default the engine's 365-day year)."""
    from quantarena.engine.backend import to_host
    from quantarena.strategies.runner import run_population

    res = run_population(
        agent,
        bars,
        params,
        costs=costs,
        stops=stops,
        leverage=leverage,
        backend=backend,
        block=block,
        periods_per_year=periods_per_year,
    )
    return {k: np.asarray(to_host(v), dtype=np.float64) for k, v in res.metrics.items()}


def create_study(
    *,
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    objective: Objective = "sharpe",
    seed: int = 0,
    batch: int = 256,
    storage: Any = None,
    study_name: str | None = None,
) -> optuna.Study:
    """A new study, or the existing one called ``study_name`` in ``storage`` (shared)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # progress is ours to show
    dirs = directions(objective)
    smp = (
        sampler
        if isinstance(sampler, optuna.samplers.BaseSampler)
        else make_sampler(sampler, seed, batch=batch, n_objectives=len(dirs))
    )
    return optuna.create_study(
        storage=make_storage(storage),
        sampler=smp,
        study_name=study_name,
        directions=dirs,
        load_if_exists=study_name is not None,
    )


def _best(study: optuna.Study, n_obj: int) -> tuple[Any, Any, list]:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not done:
        return None, (float("nan"),) * n_obj if n_obj > 1 else float("nan"), []
    if n_obj == 1:
        bt = study.best_trial
        return dict(bt.params), float(bt.value), [bt]
    front = list(study.best_trials)
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else 1.0
    top = max(front, key=lambda t: (sign * t.values[0], -t.number))
    return dict(top.params), tuple(float(v) for v in top.values), front


def tune(
    bars: Any,
    agent: Agent | str,
    *,
    n_trials: int,
    batch: int = 256,
    sampler: str = "tpe",
    objective: Objective = "sharpe",
    costs: Any = DEFAULT_COSTS,
    backend: str = "auto",
    seed: int = 0,
    storage: Any = None,
    study_name: str | None = None,
    warm_start: Sequence[Mapping[str, Any]] | None = None,
    space: Mapping[str, Any] | None = None,
    periods_per_year: float | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    stops: Any = None,
    leverage: float = 1.0,
) -> TuneResult:
    """Tune ``agent``'s parameters on ``bars`` with Optuna, one engine call per batch.

    Args:
        bars: a :class:`~quantarena.data.panel.BarPanel`.
        agent: an agent or a registry name (``"momentum"``).
        n_trials: trials to ask (invalid sets included: they are told PRUNED, not replayed).
        batch: trials per engine call (the population width P).
        sampler: ``"tpe"`` | ``"cmaes"`` | ``"random"`` | ``"nsga2"`` (seeded by ``seed``).
        objective: a metric (``"sharpe"``: annualised, maximised) or a tuple for
            multi-objective search (``("sharpe", "max_drawdown")`` with NSGA-II).
        costs: :class:`~quantarena.engine.costs.Costs` (fees/slippage in bps); default
            :data:`~quantarena.engine.costs.DEFAULT_COSTS`; ``Costs.none()`` or None: free.
        backend: ``"auto"`` | ``"cpu"`` | ``"gpu"``.
        storage: None (memory), ``"redis://host:6379/0"`` (a journal shared by workers),
            or an RDB URL (``sqlite:///x.db``).
        study_name: joins the study of that name in ``storage`` when it exists.
        warm_start: parameter sets enqueued first (e.g. last round's best trials).
        space: overrides of the agent's space (see
            :func:`~quantarena.training.samplers.restrict_space`), e.g. ``{"fast": "5:50"}``.
        periods_per_year: annualisation (default: the engine's, 365-day year).
        on_batch: progress callback ``(done, total)``.
        stops: :class:`~quantarena.engine.stops.Stops` applied to every trial (None: none).
        leverage: cap on the sum of |weights| per bar.
    """
    if isinstance(agent, str):
        from quantarena.strategies.registry import get_agent

        agent = get_agent(agent)
    objs = _objectives(objective)
    sp = restrict_space(agent.space, space)
    warm = _check_warm_start(sp, warm_start or [])
    study = create_study(
        sampler=sampler,
        objective=objs,
        seed=seed,
        batch=batch,
        storage=storage,
        study_name=study_name,
    )
    for ps in warm:
        study.enqueue_trial(ps, skip_if_exists=storage is not None)

    def evaluate(pop: P.Params) -> dict[str, np.ndarray]:
        return evaluate_population(
            bars,
            agent,
            pop,
            costs,
            backend=backend,
            periods_per_year=periods_per_year,
            stops=stops,
            leverage=leverage,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        records, stats = run_batches(
            study,
            evaluate,
            sp,
            n_trials=n_trials,
            batch=batch,
            objective=objs,
            valid=agent.valid,
            on_batch=on_batch,
        )
    best_params, best_value, front = _best(study, len(objs))
    return TuneResult(
        study=study,
        best_params=best_params,
        best_value=best_value,
        trials=study.trials_dataframe(),
        n_evaluated=stats.evaluated,
        evaluated=pd.DataFrame.from_records(records),
        stats=stats,
        best_trials=front,
    )
