"""MLflow logging of trained torch models, and the model registry for agents that pass gates.

* :func:`log_model` saves a torch model (or a :class:`~quantarena.strategies.ml.models.FitResult`)
  with ``mlflow.pytorch.log_model`` under a run — a run id, or a
  :class:`~quantarena.tracking.mlflow_logger.TournamentLogger` and an agent name — with a
  signature inferred from a features sample (``(n, window, n_features)`` float32, the raw
  features of :mod:`quantarena.strategies.ml.features`) and the model's output, and logs
  ``metrics`` on that run. Returns the model URI (``models:/<model id>`` in MLflow 3).
* :func:`register_if_passed` registers a logged model as a new version of the registered model
  ``name`` only when the agent's gates passed (``GateStatus``, a mapping gate -> bool, or a
  bool); the version is tagged with the gate outcome. A SQLite tracking store
  (``sqlite:///path/mlflow.db``) holds the registry.

Shell code (imports mlflow and torch lazily). One writer: call these from the driver, like
the rest of :mod:`quantarena.tracking`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["gates_passed", "load_model", "log_model", "register_if_passed"]


@contextlib.contextmanager
def _tracking(uri: str | None) -> Iterator[None]:
    """Point mlflow's fluent API at ``uri`` (tracking and registry) for the block only, then
    restore the previous state exactly (an unset registry URI follows the tracking URI again,
    and the ``MLFLOW_*_URI`` variables mlflow sets for subprocesses are put back)."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    if uri is None:
        yield
        return
    env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    prev_t = getattr(tracking_utils, "_tracking_uri", None)
    prev_r = getattr(registry_utils, "_registry_uri", None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(prev_t)
        registry_utils._registry_uri = prev_r
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _PickleNotice(logging.Filter):
    """Drops MLflow's notice that a pickled model must be loaded with care: pickle is chosen
    here on purpose (see :func:`log_model`), and the notice came once per logged model."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Saving pytorch model by Pickle")


@contextlib.contextmanager
def _without_pickle_notice() -> Iterator[None]:
    log = logging.getLogger("mlflow.pytorch")
    notice = _PickleNotice()
    log.addFilter(notice)
    try:
        yield
    finally:
        log.removeFilter(notice)


def _resolve_run(run: Any, agent: str | None, tracking_uri: str | None) -> tuple[str, str | None]:
    if isinstance(run, str):
        return run, tracking_uri
    if hasattr(run, "run_id") and hasattr(run, "uri"):  # a TournamentLogger
        return run.run_id(agent), tracking_uri or run.uri
    raise TypeError(f"run must be a run id or a TournamentLogger, got {type(run).__name__}")


def log_model(
    run: Any,
    model: Any,
    name: str,
    *,
    example: Any = None,
    metrics: Mapping[str, Any] | None = None,
    agent: str | None = None,
    tracking_uri: str | None = None,
    step: int = 0,
) -> str:
    """Log ``model`` under ``run`` as MLflow model ``name``; returns its model URI.

    Args:
        run: a run id, or a TournamentLogger (its ``agent``'s run; None: the parent run).
        model: a torch ``nn.Module`` or a ``FitResult`` (its ``model``; its ``example``
            features, ``val_loss``, ``train_loss``, ``best_epoch`` are used when not given).
        name: the model's name in the run (letters, digits, ``-_.``).
        example: a features sample ``(n, window, n_features)`` float32: becomes the input
            example, and with the model's output the signature.
        metrics: numbers logged on the run at ``step`` (non-finite values skipped).
        tracking_uri: the store (taken from a TournamentLogger when given one).
    """
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    from quantarena.strategies.ml import models as M

    fit = None
    if not hasattr(model, "state_dict") and hasattr(model, "model"):
        fit = model
        model = fit.model
        if example is None:
            example = getattr(fit, "example", None)
    run_id, uri = _resolve_run(run, agent, tracking_uri)
    all_metrics: dict[str, float] = {}
    if fit is not None:
        for key in ("val_loss", "train_loss", "best_epoch", "epochs_run", "n_train"):
            all_metrics[key] = getattr(fit, key)
    all_metrics.update(metrics or {})
    clean = {}
    for k, v in all_metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            clean[str(k)] = f

    signature = None
    input_example = None
    if example is not None:
        x = np.ascontiguousarray(np.asarray(example, dtype=np.float32))
        out = M.predict(model.cpu(), M.as_tensor(x)).numpy()
        signature = infer_signature(x, out)
        input_example = x
    with (
        _tracking(uri),
        _without_pickle_notice(),
        mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None),
    ):
        info = mlflow.pytorch.log_model(
            model.cpu(),
            name=name,
            signature=signature,
            input_example=input_example,
            step=int(step),
            # a plain nn.Module back (pt2/torch.export gives a graph without .eval()/.train())
            serialization_format="pickle",
            # pinned: MLflow's requirement inference reloads the model in a subprocess (~10 s)
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
        if clean:
            mlflow.log_metrics(clean, step=int(step))
    return str(info.model_uri)


def load_model(model_uri: str, tracking_uri: str | None = None) -> Any:
    """The torch module logged at ``model_uri`` (``mlflow.pytorch.load_model``)."""
    import mlflow.pytorch

    with _tracking(tracking_uri):
        return mlflow.pytorch.load_model(model_uri)


def gates_passed(gate_status: Any) -> bool:
    """True when ``gate_status`` says the agent passed: a ``GateStatus`` (``.passed``), a bool,
    or a mapping gate -> bool (its ``"passed"`` key if present, else every gate)."""
    if isinstance(gate_status, bool | np.bool_):
        return bool(gate_status)
    if hasattr(gate_status, "passed"):
        return bool(gate_status.passed)
    if isinstance(gate_status, Mapping):
        items = dict(gate_status)
        if "passed" in items:
            return bool(items["passed"])
        return bool(items) and all(bool(v) for v in items.values())
    raise TypeError(
        f"gate_status must be a GateStatus, a bool or a mapping, got {type(gate_status).__name__}"
    )


def register_if_passed(
    model_uri: str,
    name: str,
    gate_status: Any,
    *,
    tracking_uri: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Any:
    """Register ``model_uri`` as a new version of registered model ``name`` when the gates
    passed (:func:`gates_passed`); returns the ``ModelVersion``, or None (nothing written) when
    they did not. The version is tagged ``gate.passed=true``, ``gate.<name>=pass`` for each
    gate of a ``GateStatus`` / mapping, plus ``tags``."""
    import mlflow

    if not gates_passed(gate_status):
        return None
    all_tags: dict[str, str] = {"gate.passed": "true"}
    results = getattr(gate_status, "results", None)
    if results is not None:
        for g, r in results.items():
            all_tags[f"gate.{g}"] = "pass" if r.passed else "fail"
    elif isinstance(gate_status, Mapping):
        for g, ok in gate_status.items():
            if g != "passed":
                all_tags[f"gate.{g}"] = "pass" if bool(ok) else "fail"
    all_tags.update({str(k): str(v) for k, v in (tags or {}).items()})
    with _tracking(tracking_uri):
        return mlflow.register_model(model_uri, name, tags=all_tags)
