"""MLflow logging of a tournament: one parent run, one nested child run per agent.

Layout in MLflow::

    experiment <tracking.experiment>
    └── run "<name>"                      parent: config params, config.yaml, portfolio metrics,
        │                                 leaderboard, plots
        ├── run "<agent>"                 child (tag mlflow.parentRunId): per-round metrics
        │                                 (step = round index), chosen params, gate tags
        └── ...

One writer: only the driver / director process logs (a SQLite store written by several
processes at once fails with "database is locked"); actors return numbers to it.

Metrics are written with :meth:`MlflowClient.log_batch`: :meth:`TournamentLogger.log_round`
makes ONE call per agent per round (or none with ``buffer=True``: rounds accumulate and go
out in batches of up to 1000 metrics on :meth:`~TournamentLogger.flush` / ``finish``).

The client-only API is used (no ``mlflow.start_run`` globals), so a logger never touches
another logger's runs and works from any thread of the driver.

Faults: every call to the tracking store is retried with exponential backoff
(:func:`retrying`: 0.5 s, 1 s, 2 s, ... up to ``retry_s`` seconds in all) when the server or
its database is unreachable; errors in the request itself (a bad value, a missing run) are
not retried. Buffered metrics that still cannot be written stay in the buffer for the next
flush. :meth:`TournamentLogger.resume` reopens the runs of an interrupted tournament and
skips every metric point (key, step) they already hold, so a resumed run logs each round once.
Experiments are tagged ``mlflow.experimentKind = custom_model_development`` (MLflow 3's UI
then opens them on the runs table).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["TournamentLogger", "default_artifact_location", "flatten", "retrying"]

#: the experiment tag MLflow 3's UI reads to open an experiment on its runs table
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
#: MLflow error codes of a bad request: retrying cannot help
_PERMANENT = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "INVALID_STATE",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
}


def _permanent(exc: BaseException) -> bool:
    """Whether ``exc`` is an error of the request itself (not of reaching the store)."""
    code = getattr(exc, "error_code", None)
    return code in _PERMANENT or isinstance(exc, TypeError | ValueError | KeyError) and code is None


def retrying(
    fn: Any,
    *args: Any,
    retry_s: float = 60.0,
    first_wait_s: float = 0.5,
    sleep: Any = None,
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)``, retried with exponential backoff (``first_wait_s``, doubling,
    at most 30 s a wait) while it raises a transient error, until ``retry_s`` seconds are
    spent (waiting, or in all since the first call: an HTTP client's own retries count too);
    the last error is raised then. Errors of the request itself (:data:`_PERMANENT` MLflow
    codes, ``TypeError``/``ValueError``/``KeyError``) are raised at once."""
    sleep = sleep or time.sleep
    t0 = time.monotonic()
    waited = 0.0
    wait = first_wait_s
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            spent = max(waited, time.monotonic() - t0)
            if _permanent(exc) or spent + wait > retry_s:
                raise
            sleep(wait)
            waited += wait
            wait = min(wait * 2, 30.0)


# MLflow's per-request limits for log_batch.
_MAX_METRICS = 1000
_MAX_PARAMS = 100
_MAX_TAGS = 100
_MAX_PARAM_CHARS = 6000
_MAX_TAG_CHARS = 8000

_STATUSES = ("FINISHED", "FAILED", "KILLED")


def flatten(obj: Any, prefix: str = "", sep: str = ".") -> dict[str, str]:
    """Flatten nested mappings and lists into ``{"a.b.0.c": "value"}`` text (MLflow params).

    ``None`` becomes ``"null"``; a list of scalars stays one value (``"[5, 10]"``) so a
    grid is one param rather than one per element; lists of mappings are indexed.
    """
    out: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            if not value and key:
                out[key] = "{}"
            for k, v in value.items():
                walk(v, f"{key}{sep}{k}" if key else str(k))
        elif isinstance(value, list | tuple) and any(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value):
                walk(v, f"{key}{sep}{i}" if key else str(i))
        elif value is None:
            out[key] = "null"
        elif isinstance(value, list | tuple):
            out[key] = "[" + ", ".join(str(v) for v in value) + "]"
        else:
            out[key] = str(value)

    walk(obj, prefix)
    return out


def default_artifact_location(uri: str) -> str | None:
    """Where artifacts go for a local store URI: ``<dir of the SQLite file>/artifacts`` for
    ``sqlite:///path/mlflow.db``, ``<dir>`` for a file store; None (the server decides) for
    ``http(s)://`` and database servers. Without this, MLflow puts a SQLite store's artifacts
    in ``./mlruns`` of whatever the current directory is."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        # sqlite:///relative/path.db -> "relative/path.db"; sqlite:////abs/path.db -> "/abs/..."
        raw = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else parsed.path
        db = Path(unquote(raw.split("?", 1)[0]))
        return (db.resolve().parent / "artifacts").as_uri()
    if parsed.scheme in ("", "file"):
        root = Path(unquote(parsed.path if parsed.scheme == "file" else uri))
        return root.resolve().as_uri()
    return None


def _ensure_sqlite_dir(uri: str) -> None:
    if uri.startswith("sqlite:///"):
        db = Path(unquote(uri[len("sqlite:///") :].split("?", 1)[0]))
        db.parent.mkdir(parents=True, exist_ok=True)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class TournamentLogger:
    """Logs one tournament to MLflow.

    Args:
        uri: the tracking URI: ``sqlite:///runs/demo/mlflow.db`` (the parent folder is
            created), ``http://127.0.0.1:5000`` for a tracking server, ...
        experiment: the experiment name (created if missing).
        artifact_location: where a NEW experiment stores artifacts; default
            :func:`default_artifact_location` (next to a SQLite file; the server's choice
            for a tracking server).
        buffer: hold round metrics until :meth:`flush` (else one ``log_batch`` per
            :meth:`log_round` call).

    Use as a context manager, or call :meth:`start` then :meth:`finish`::

        with TournamentLogger.from_config(cfg) as log:
            log.start(cfg)
            log.agent_run("trend", kind="momentum")
            log.log_round("trend", 0, {"sharpe": 1.2, "return": 0.01})
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        *,
        artifact_location: str | None = None,
        buffer: bool = False,
        retry_s: float = 60.0,
    ) -> None:
        from mlflow import MlflowClient

        _ensure_sqlite_dir(uri)
        self.uri = uri
        self.experiment = experiment
        self.buffer = buffer
        self.retry_s = retry_s
        self.client = _RetryingClient(MlflowClient(tracking_uri=uri), retry_s)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            location = artifact_location or default_artifact_location(uri)
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=location, tags=dict([EXPERIMENT_KIND])
            )
        else:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id
            if exp.tags.get(EXPERIMENT_KIND[0]) is None:
                self.client.set_experiment_tag(self.experiment_id, *EXPERIMENT_KIND)
        self.parent_run_id: str | None = None
        self._agents: dict[str, str] = {}
        self._pending: dict[str, list[Any]] = {}
        self._pending_tags: dict[str, dict[str, str]] = {}  # run -> tag -> value, buffered
        # metric points (run, key, step) the store holds / the buffer holds: none twice
        self._logged: set[tuple[str, str, int]] = set()
        self._tag_cache: dict[tuple[str, str], str] = {}  # (run, key) -> value last set
        self._queued: set[tuple[str, str, int]] = set()
        self._finished = False

    @classmethod
    def from_config(cls, config: Any, *, buffer: bool = False) -> TournamentLogger:
        """A logger for a :class:`~quantarena.config.TournamentConfig`'s ``tracking`` section."""
        t = config.tracking
        return cls(t.mlflow_uri, t.experiment, buffer=buffer)

    # ------------------------------------------------------------------ runs

    def resume(self, parent_run_id: str, agents: Mapping[str, str]) -> None:
        """Continue an interrupted tournament's runs (``agents``: name → run id): they are
        set RUNNING again, and metric points they already hold are not logged again."""
        if self.parent_run_id is not None:
            raise RuntimeError("start() or resume() was already called on this logger")
        self.parent_run_id = parent_run_id
        self._agents = dict(agents)
        for run in (parent_run_id, *self._agents.values()):
            self.client.update_run(run, status="RUNNING")
            for key in self.client.get_run(run).data.metrics:
                for m in self.client.get_metric_history(run, key):
                    self._logged.add((run, key, int(m.step)))

    def run_ids(self) -> dict[str, str]:
        """``{"parent": id, <agent>: id, ...}``: what :meth:`resume` needs."""
        return {"parent": self._require_parent(), **self._agents}

    def start(
        self,
        config: Any = None,
        *,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Open the parent run; log ``config`` (a TournamentConfig or a mapping) flattened as
        params and, for a TournamentConfig, its resolved YAML as ``config.yaml``. Returns the
        run id."""
        if self.parent_run_id is not None:
            raise RuntimeError("start() was already called on this logger")
        name = run_name or getattr(config, "name", None) or self.experiment
        all_tags = {"quantarena.role": "tournament", **{k: str(v) for k, v in (tags or {}).items()}}
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        self.parent_run_id = run.info.run_id
        if config is not None:
            if hasattr(config, "model_dump"):
                data = config.model_dump(mode="json")
            else:
                data = dict(config)
            self._write_params(self.parent_run_id, flatten(data))
            if hasattr(config, "to_yaml"):
                self.client.log_text(self.parent_run_id, config.to_yaml(), "config.yaml")
        return self.parent_run_id

    def agent_run(
        self, agent: str, *, kind: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> str:
        """The nested child run of ``agent`` (created on first call; later calls return the
        same id). Tagged ``quantarena.agent`` and, if given, ``quantarena.agent_kind``."""
        if agent in self._agents:
            return self._agents[agent]
        parent = self._require_parent()
        all_tags = {
            "mlflow.parentRunId": parent,
            "quantarena.role": "agent",
            "quantarena.agent": agent,
        }
        if kind is not None:
            all_tags["quantarena.agent_kind"] = kind
        all_tags.update({k: str(v) for k, v in (tags or {}).items()})
        run = self.client.create_run(self.experiment_id, run_name=agent, tags=all_tags)
        self._agents[agent] = run.info.run_id
        return run.info.run_id

    def run_id(self, agent: str | None = None) -> str:
        """The run id of ``agent`` (None: the parent run)."""
        if agent is None:
            return self._require_parent()
        if agent not in self._agents:
            raise KeyError(f"no run for agent {agent!r}: call agent_run({agent!r}) first")
        return self._agents[agent]

    # ------------------------------------------------------------------ values

    def log_round(
        self,
        agent: str | None,
        round_idx: int,
        metrics: Mapping[str, Any],
        *,
        timestamp_ms: int | None = None,
    ) -> None:
        """Log ``metrics`` of ``agent`` (None: the portfolio, on the parent run) for round
        ``round_idx`` (the MLflow step). Non-finite values (NaN, inf) and None are skipped —
        MLflow stores NaN but it breaks plots — so a missing statistic simply has no point.
        One ``log_batch`` call (none with ``buffer=True``)."""
        from mlflow.entities import Metric

        run = self.run_id(agent)
        ts = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        batch = []
        for key, value in metrics.items():
            f = _finite(value)
            point = (run, str(key), int(round_idx))
            if f is not None and point not in self._logged and point not in self._queued:
                batch.append(Metric(key=str(key), value=f, timestamp=ts, step=int(round_idx)))
                if self.buffer:
                    self._queued.add(point)
        if not batch:
            return
        if self.buffer:
            pending = self._pending.setdefault(run, [])
            pending.extend(batch)
            if len(pending) >= _MAX_METRICS:
                self._flush_run(run)
            return
        for chunk in _chunks(batch, _MAX_METRICS):
            self.client.log_batch(run, metrics=chunk, synchronous=True)

    def flush(self) -> None:
        """Write buffered round metrics and tags (one ``log_batch`` per run per 1000
        metrics)."""
        for run in list(set(self._pending) | set(self._pending_tags)):
            self._flush_run(run)

    def _flush_run(self, run: str) -> None:
        from mlflow.entities import RunTag

        pending = self._pending.pop(run, [])
        tags = [RunTag(k, v) for k, v in self._pending_tags.pop(run, {}).items()]
        n = max(1, -(-len(pending) // _MAX_METRICS), -(-len(tags) // _MAX_TAGS))
        for i in range(n):
            chunk = pending[i * _MAX_METRICS : (i + 1) * _MAX_METRICS]
            tchunk = tags[i * _MAX_TAGS : (i + 1) * _MAX_TAGS]
            if not chunk and not tchunk:
                continue
            try:
                self.client.log_batch(run, metrics=chunk, tags=tchunk, synchronous=True)
            except Exception:  # unreachable past the retries: keep what is left for later
                rest = pending[i * _MAX_METRICS :]
                self._pending[run] = rest + self._pending.get(run, [])
                left = {t.key: t.value for t in tags[i * _MAX_TAGS :]}
                self._pending_tags[run] = {**left, **self._pending_tags.get(run, {})}
                raise
            for m in chunk:
                self._logged.add((run, m.key, int(m.step)))
                self._queued.discard((run, m.key, int(m.step)))
            self._tag_cache.update(((run, t.key), t.value) for t in tchunk)

    def log_params(
        self, agent: str | None, params: Mapping[str, Any], *, round_idx: int | None = None
    ) -> None:
        """Log the parameters ``agent`` chose.

        Without ``round_idx``: MLflow params (immutable — logging a different value for a
        key later raises). With ``round_idx`` (parameters re-chosen every round): numeric
        values become metrics ``param.<name>`` at that step and every value is also set as
        tag ``param.<name>`` (the latest choice).
        """
        from mlflow.entities import RunTag

        run = self.run_id(agent)
        if round_idx is None:
            self._write_params(run, flatten(dict(params)))
            return
        # the numbers go with the round's metrics (buffered like them); a tag is written only
        # when its value changes, so a choice that holds costs no database round trip
        numeric = {f"param.{k}": v for k, v in params.items() if not isinstance(v, bool | str)}
        if numeric:
            self.log_round(agent, int(round_idx), numeric)
        tags = []
        for k, v in params.items():
            key, text = f"param.{k}", str(v)[:_MAX_TAG_CHARS]
            if self._tag_cache.get((run, key)) != text:
                tags.append(RunTag(key, text))
        if self.buffer:  # written with the buffered metrics, the latest value winning
            self._pending_tags.setdefault(run, {}).update((t.key, t.value) for t in tags)
            return
        for chunk in _chunks(tags, _MAX_TAGS):
            self.client.log_batch(run, metrics=[], tags=chunk, synchronous=True)
            self._tag_cache.update(((run, t.key), t.value) for t in chunk)

    def set_tags(self, agent: str | None, tags: Mapping[str, Any]) -> None:
        """Set tags on ``agent``'s run (None: the parent run), in one batch."""
        from mlflow.entities import RunTag

        run = self.run_id(agent)
        items = [RunTag(str(k), str(v)[:_MAX_TAG_CHARS]) for k, v in tags.items()]
        for chunk in _chunks(items, _MAX_TAGS):
            self.client.log_batch(run, tags=chunk, synchronous=True)

    def set_gate_status(self, agent: str, status: Any) -> None:
        """Record ``agent``'s gate outcome as tags ``gate.<name>`` = ``pass`` / ``fail`` and
        ``gate.passed`` = ``true`` / ``false``.

        ``status``: a mapping ``gate -> bool`` (optionally with a ``"passed"`` key), or a
        :class:`~quantarena.tournaments.gates.GateStatus` (then ``gate.<name>.value`` and
        ``gate.<name>.reason`` tags are added too)."""
        tags: dict[str, str] = {}
        results = getattr(status, "results", None)
        if results is not None:
            for name, r in results.items():
                tags[f"gate.{name}"] = "pass" if r.passed else "fail"
                tags[f"gate.{name}.value"] = "null" if r.value is None else f"{r.value:g}"
                if r.reason:
                    tags[f"gate.{name}.reason"] = r.reason
            passed = bool(status.passed)
        else:
            items = dict(status)
            explicit = items.pop("passed", None)
            for name, ok in items.items():
                tags[f"gate.{name}"] = "pass" if bool(ok) else "fail"
            passed = (
                bool(explicit) if explicit is not None else all(bool(v) for v in items.values())
            )
        tags["gate.passed"] = "true" if passed else "false"
        self.set_tags(agent, tags)

    # ------------------------------------------------------------------ artifacts

    def log_artifact(
        self, path: str | Path, *, agent: str | None = None, artifact_path: str | None = None
    ) -> None:
        """Upload a file or a folder to ``agent``'s run (None: the parent run)."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file to log as an artifact")
        run = self.run_id(agent)
        if p.is_dir():
            self.client.log_artifacts(run, str(p), artifact_path)
        else:
            self.client.log_artifact(run, str(p), artifact_path)

    def log_figure(self, figure: Figure, name: str, *, agent: str | None = None) -> None:
        """Save a matplotlib figure as artifact ``name`` (``.png`` added if no extension)."""
        if not Path(name).suffix:
            name += ".png"
        self.client.log_figure(self.run_id(agent), figure, name)

    def log_table(self, df: pd.DataFrame, name: str, *, agent: str | None = None) -> None:
        """Log a table as ``<name>.csv`` and ``<name>.html`` (a readable leaderboard) under
        ``tables/``."""
        from quantarena.tracking.artifacts import table_html

        run = self.run_id(agent)
        with tempfile.TemporaryDirectory(prefix="qa-table-") as tmp:
            csv = os.path.join(tmp, f"{name}.csv")
            html = os.path.join(tmp, f"{name}.html")
            df.to_csv(csv, index=True)
            Path(html).write_text(table_html(df, title=name), encoding="utf-8")
            self.client.log_artifact(run, csv, "tables")
            self.client.log_artifact(run, html, "tables")

    def log_text(self, text: str, name: str, *, agent: str | None = None) -> None:
        """Log ``text`` as artifact file ``name``."""
        self.client.log_text(self.run_id(agent), text, name)

    # ------------------------------------------------------------------ end

    def finish(self, status: str = "FINISHED") -> None:
        """Flush buffered metrics and close every run with ``status`` (FINISHED, FAILED or
        KILLED). Calling it again does nothing."""
        if self._finished:
            return
        st = status.upper()
        if st not in _STATUSES:
            raise ValueError(f"status must be one of {', '.join(_STATUSES)}, got {status!r}")
        self.flush()
        for run in self._agents.values():
            self.client.set_terminated(run, status=st)
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, status=st)
        self._finished = True

    def __enter__(self) -> TournamentLogger:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("KILLED")
        else:
            self.finish("FAILED")

    # ------------------------------------------------------------------ helpers

    def _require_parent(self) -> str:
        if self.parent_run_id is None:
            raise RuntimeError("call start() first: there is no parent run yet")
        return self.parent_run_id

    def _write_params(self, run: str, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], v[:_MAX_PARAM_CHARS]) for k, v in params.items()]
        for chunk in _chunks(items, _MAX_PARAMS):
            self.client.log_batch(run, params=chunk, synchronous=True)


class _RetryingClient:
    """An ``MlflowClient`` whose every method call goes through :func:`retrying`."""

    def __init__(self, client: Any, retry_s: float) -> None:
        self._client = client
        self._retry_s = retry_s

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return retrying(attr, *args, retry_s=self._retry_s, **kwargs)

        return call
