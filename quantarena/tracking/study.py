"""MLflow logging of an Optuna study (one run per study).

A run holds:

* params: the best trial's parameters (``best.<name>``) plus any ``context`` given (agent,
  symbol, sampler, batch, ...);
* metrics: ``best_value`` (multi-objective: ``best_<objective>`` for the Pareto trial with
  the best first objective), ``n_trials``, ``n_complete``, ``n_pruned``, ``n_failed``;
* artifacts: ``study/history.png`` (every trial's objective and the running best),
  ``study/importances.png`` + ``study/importances.json`` (fANOVA parameter importances on at
  most ``importance_trials`` trials, so a study of 100k trials does not stall the logger),
  ``study/trials.csv``.

Plots use matplotlib's Agg backend (no display). One writer: call this from the driver, not
from many workers at once (a SQLite MLflow store fails with "database is locked").
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["log_study", "param_importances", "plot_history"]


def _complete(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return list(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _first_value(study: Any, t: Any) -> float:
    return float(t.values[0])


def plot_history(study: Any, *, title: str | None = None, ylabel: str | None = None) -> Any:
    """A matplotlib Figure: each complete trial's first objective by trial number, and the
    running best (max or min by the study's first direction); ``ylabel`` names the
    objective (default: the study's ``objective`` user attribute, else "objective")."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import numpy as np
    from matplotlib.figure import Figure
    from optuna.study import StudyDirection

    done = sorted(_complete(study), key=lambda t: t.number)
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    if done:
        x = np.array([t.number for t in done])
        y = np.array([_first_value(study, t) for t in done])
        minimize = study.directions[0] == StudyDirection.MINIMIZE
        best = np.minimum.accumulate(y) if minimize else np.maximum.accumulate(y)
        ax.scatter(x, y, s=6, alpha=0.5, label="trial")
        ax.step(x, best, where="post", color="C3", label="best so far")
        ax.legend(loc="best")
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel or study.user_attrs.get("objective", "objective"))
    ax.set_title(title or f"Optimisation history: {study.study_name}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def param_importances(study: Any, *, max_trials: int = 1000, seed: int = 0) -> dict[str, float]:
    """fANOVA importances of the parameters for the first objective, from at most
    ``max_trials`` complete trials (the best half and the most recent, in a throw-away
    in-memory study); ``{}`` with fewer than 2 complete trials or one-valued parameters."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    done = _complete(study)
    if len(done) < 2:
        return {}
    if len(done) > max_trials:
        done = sorted(done, key=lambda t: t.number)[-max_trials:]
    tmp = optuna.create_study(directions=study.directions)
    tmp.add_trials(done)
    try:
        imp = get_param_importances(
            tmp,
            evaluator=FanovaImportanceEvaluator(n_trees=32, seed=seed),
            target=lambda t: t.values[0],
        )
    except (RuntimeError, ValueError):  # e.g. every parameter fixed
        return {}
    return {k: float(v) for k, v in imp.items()}


def _importance_figure(imp: Mapping[str, float]) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 0.5 + 0.4 * max(len(imp), 1)))
    ax = fig.subplots()
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title("Parameter importances")
    fig.tight_layout()
    return fig


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def log_study(
    study: Any,
    *,
    uri: str,
    experiment: str = "quantarena-tuning",
    run_name: str | None = None,
    objectives: Sequence[str] = ("objective",),
    context: Mapping[str, Any] | None = None,
    importance_trials: int = 1000,
) -> str:
    """Log ``study`` as one MLflow run (see the module docstring); returns the run id.

    ``uri`` is the tracking URI (``sqlite:///runs/mlflow.db``, ``http://host:5000``,
    ``file:./mlruns``); ``objectives`` names the study's objectives (metric names);
    ``context`` adds run params.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from optuna.trial import TrialState

    from quantarena.tracking.artifacts import save_figure
    from quantarena.tracking.mlflow_logger import _ensure_sqlite_dir, default_artifact_location

    _ensure_sqlite_dir(uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        exp_id = client.create_experiment(
            experiment, artifact_location=default_artifact_location(uri)
        )
    else:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        exp_id = exp.experiment_id
    run = client.create_run(
        exp_id,
        run_name=run_name or study.study_name,
        tags={"quantarena.role": "study", "optuna.study": study.study_name},
    )
    rid = run.info.run_id
    try:
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        params: dict[str, str] = {k: str(v) for k, v in (context or {}).items()}
        metrics: dict[str, float] = {
            "n_trials": float(len(trials)),
            "n_complete": float(len(done)),
            "n_pruned": float(sum(t.state == TrialState.PRUNED for t in trials)),
            "n_failed": float(sum(t.state == TrialState.FAIL for t in trials)),
        }
        if done:
            if len(study.directions) == 1:
                best = study.best_trial
                metrics["best_value"] = float(best.value)
            else:
                from optuna.study import StudyDirection

                sign = -1.0 if study.directions[0] == StudyDirection.MINIMIZE else 1.0
                best = max(study.best_trials, key=lambda t: (sign * t.values[0], -t.number))
                for name, v in zip(objectives, best.values, strict=False):
                    metrics[f"best_{name}"] = float(v)
                metrics["pareto_size"] = float(len(study.best_trials))
            params.update({f"best.{k}": str(v) for k, v in best.params.items()})
            params["best.trial"] = str(best.number)
        client.log_batch(
            rid,
            metrics=[Metric(k, v, 0, 0) for k, v in metrics.items() if _finite(v) is not None],
            params=[Param(k, v[:6000]) for k, v in list(params.items())[:100]],
        )
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / "study"
            d.mkdir()
            who = (context or {}).get("agent")
            title = f"{who}: {objectives[0]} by trial" if who else None
            save_figure(plot_history(study, title=title, ylabel=objectives[0]), d / "history.png")
            imp = param_importances(study, max_trials=importance_trials)
            if imp:
                (d / "importances.json").write_text(json.dumps(imp, indent=2))
                save_figure(_importance_figure(imp), d / "importances.png")
            study.trials_dataframe().to_csv(d / "trials.csv", index=False)
            client.log_artifacts(rid, str(d), "study")
    except BaseException:
        client.set_terminated(rid, "FAILED")
        raise
    client.set_terminated(rid, "FINISHED")
    return rid
