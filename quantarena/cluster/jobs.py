"""Submit tournaments to a Ray cluster as Ray jobs, and follow them.

A job runs ``python -m quantarena tournament run <config>`` on the cluster, in a copy of
this repository: the runtime env's ``working_dir`` is the repo root, minus what does not
belong in a job (:data:`EXCLUDES`: the virtualenv, ``.git``, run outputs, MLflow files, data
stores; Ray also honours ``.gitignore``). The config file travels inside it, so it must
live in the repo (``configs/`` is the place). Data named by relative paths must be in the
repo too; a Parquet store is never uploaded — give its absolute path on the cluster.

Auth: the Jobs API is called with ``Authorization: Bearer <token>`` when a token is found
(:mod:`quantarena.cluster.auth`); a refusal is a one-line
:class:`~quantarena.cluster.auth.ClusterAuthError`, an unreachable address a one-line
:class:`ClusterUnreachableError`.

Example::

    job_id = submit("configs/demo.yaml", address="http://127.0.0.1:8265", wait=True)
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from quantarena.cluster.auth import (
    ClusterAuthError,
    Token,
    auth_error_message,
    auth_headers,
    find_token,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "EXCLUDES",
    "TOURNAMENT_ENTRYPOINT",
    "ClusterUnreachableError",
    "JobFailedError",
    "dashboard_url",
    "follow",
    "job_runtime_env",
    "job_status",
    "repo_root",
    "submit",
    "submit_entrypoint",
]

DEFAULT_ADDRESS = "http://127.0.0.1:8265"

#: The job's command; ``{config}`` is the config's path relative to the working dir.
TOURNAMENT_ENTRYPOINT = "python -m quantarena tournament run {config}"

#: Left out of the uploaded working dir (gitignore syntax; a leading "/" = repo root only).
EXCLUDES: tuple[str, ...] = (
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "*.egg-info",
    "*.db",
    "/runs",
    "/mlruns",
    "/mlartifacts",
    "/store",
    "/stores",
    "/demo-output",
    "/bench-output",
    "/build",
    "/dist",
    "/.whl",
    "/.gl",
)

_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")

LogSink = Callable[[str], None]


class JobFailedError(RuntimeError):
    """A followed job ended in a state other than SUCCEEDED; ``str(err)`` is one line."""

    def __init__(self, job_id: str, status: str, message: str) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(message)


class ClusterUnreachableError(ValueError):
    """Nothing answers at the Jobs API address; ``str(err)`` is one line."""


def repo_root() -> Path:
    """The repository this package runs from (the folder holding ``quantarena/``)."""
    return Path(__file__).resolve().parents[2]


def dashboard_url(address: str, job_id: str) -> str:
    """The Ray dashboard page of a job: ``{address}/#/jobs/{job_id}``."""
    return f"{address.rstrip('/')}/#/jobs/{job_id}"


def job_runtime_env(
    working_dir: str | Path | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    excludes: Sequence[str] = (),
    env_vars: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The runtime env of a job: ``base`` (e.g. the config's ``ray.runtime_env``) with
    ``working_dir`` (default: ``base``'s, else the repo root), :data:`EXCLUDES` plus
    ``excludes`` and ``base``'s own, and ``env_vars`` merged over ``base``'s."""
    env: dict[str, Any] = dict(base or {})
    wd = working_dir if working_dir is not None else env.get("working_dir", repo_root())
    env["working_dir"] = str(wd)
    env["excludes"] = [*EXCLUDES, *env.get("excludes", []), *excludes]
    merged_vars = {**(env.get("env_vars") or {}), **(env_vars or {})}
    if merged_vars:
        env["env_vars"] = {str(k): str(v) for k, v in merged_vars.items()}
    return env


@contextlib.contextmanager
def _cluster_errors(address: str, token: Token | None) -> Iterator[None]:
    """Turn Ray's auth and connection failures into our one-line errors."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as exc:
        raise ClusterAuthError(auth_error_message(address, token, str(exc))) from None
    except (ConnectionError, requests.exceptions.ConnectionError) as exc:
        if "Failed to connect" in str(exc) or isinstance(exc, requests.exceptions.ConnectionError):
            raise ClusterUnreachableError(
                f"{address}: no Ray Jobs API answers there — start a cluster "
                "(`ray start --head --dashboard-host 127.0.0.1`) or forward its dashboard port "
                "(`ray dashboard ray_config.yaml`), then retry"
            ) from None
        raise


def _client(address: str, token: Token | None) -> Any:
    from ray.job_submission import JobSubmissionClient

    with _cluster_errors(address, token):
        return JobSubmissionClient(address, headers=auth_headers(token))


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def submit_entrypoint(
    entrypoint: str,
    *,
    address: str = DEFAULT_ADDRESS,
    runtime_env: Mapping[str, Any] | None = None,
    token: str | None = None,
    wait: bool = False,
    log: LogSink = _stdout,
    timeout_s: float | None = None,
    metadata: Mapping[str, str] | None = None,
    submission_id: str | None = None,
    on_submit: Callable[[str], None] | None = None,
) -> str:
    """Submit a shell command as a Ray job; return its id.

    ``runtime_env`` default: :func:`job_runtime_env` (this repo as working dir).
    ``on_submit(job_id)`` is called as soon as the cluster accepted the job (default with
    ``wait``: a line with the dashboard URL into ``log``). With ``wait``: follow the job's
    logs into ``log`` until it ends (see :func:`follow`) and raise :class:`JobFailedError`
    unless it SUCCEEDED. ``token``: overrides the token lookup.
    """
    tok = find_token(token)
    client = _client(address, tok)
    env = dict(runtime_env) if runtime_env is not None else job_runtime_env()
    with _cluster_errors(address, tok):
        job_id = client.submit_job(
            entrypoint=entrypoint,
            runtime_env=env,
            metadata=dict(metadata or {}),
            submission_id=submission_id,
        )
    if on_submit is not None:
        on_submit(job_id)
    elif wait:
        log(f"job {job_id} submitted: {dashboard_url(address, job_id)}\n")
    if wait:
        status = follow(job_id, address=address, token=token, log=log, timeout_s=timeout_s)
        if status != "SUCCEEDED":
            info_msg = ""
            with contextlib.suppress(Exception), _cluster_errors(address, tok):
                info = client.get_job_info(job_id)
                info_msg = " ".join(str(info.message or "").split())
            detail = f": {info_msg}" if info_msg else ""
            raise JobFailedError(
                job_id,
                status,
                f"job {job_id} ended {status}{detail} — logs: {dashboard_url(address, job_id)}",
            )
    return job_id


def follow(
    job_id: str,
    *,
    address: str = DEFAULT_ADDRESS,
    token: str | None = None,
    log: LogSink = _stdout,
    timeout_s: float | None = None,
    poll_s: float = 0.5,
) -> str:
    """Stream a job's logs into ``log`` until it ends; return its final status
    (``SUCCEEDED``, ``FAILED`` or ``STOPPED``). Raises ``TimeoutError`` after ``timeout_s``
    (the job keeps running)."""
    tok = find_token(token)
    client = _client(address, tok)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            log(chunk)

    left = None if deadline is None else max(0.1, deadline - time.monotonic())
    with _cluster_errors(address, tok):
        try:
            asyncio.run(asyncio.wait_for(tail(), timeout=left))
        except TimeoutError:
            raise TimeoutError(
                f"job {job_id} still running after {timeout_s:g} s — follow it at "
                f"{dashboard_url(address, job_id)}"
            ) from None
        while True:  # the log stream can close a moment before the status turns terminal
            status = str(client.get_job_status(job_id).value)
            if status in _TERMINAL:
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} still {status} after {timeout_s:g} s — follow it at "
                    f"{dashboard_url(address, job_id)}"
                )
            time.sleep(poll_s)


def job_status(job_id: str, *, address: str = DEFAULT_ADDRESS, token: str | None = None) -> str:
    """A job's current status (``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ...)."""
    tok = find_token(token)
    client = _client(address, tok)
    with _cluster_errors(address, tok):
        return str(client.get_job_status(job_id).value)


def _config_in_working_dir(config_path: Path, working_dir: Path) -> str:
    from quantarena.config import ConfigError

    try:
        rel = config_path.resolve().relative_to(working_dir.resolve())
    except ValueError:
        raise ConfigError(
            f"{config_path}: the config must be inside {working_dir} to travel with the job "
            "— copy it under configs/ and submit that"
        ) from None
    first = rel.parts[0] if rel.parts else ""
    excluded_roots = {e.strip("/") for e in EXCLUDES if e.startswith("/")} | {".git", ".venv"}
    if first in excluded_roots:
        raise ConfigError(
            f"{config_path}: {first}/ is not uploaded with the job — put the config under configs/"
        )
    return rel.as_posix()


#: set in a submitted job's environment unless absolute paths are allowed: ``tournament
#: run`` then refuses config and data paths outside its working dir
CONFINE_ENV = "QUANTARENA_CONFINE_PATHS"


def confined_paths(cfg: Any, source: str, root: Path, *, allow_absolute: bool = False) -> None:
    """Refuse (``ConfigError``, one line) a config's data paths outside ``root``: a relative
    path that climbs out (``../``, a symlink), and any absolute path unless
    ``allow_absolute``."""
    from quantarena.config import ConfigError

    data = cfg.data
    paths = [("data.store", data.store)] if data.store is not None else []
    paths += [(f"data.files.{i}.path", f.path) for i, f in enumerate(data.files or [])]
    base = root.resolve()
    for key, p in paths:
        p = Path(p)
        if p.is_absolute():
            if allow_absolute:
                continue
            raise ConfigError(
                f"{source}: {key}: {p} is outside the job's working dir — pass "
                "--allow-absolute-paths to read a path on the cluster"
            )
        try:
            (base / p).resolve().relative_to(base)
        except ValueError:
            raise ConfigError(
                f"{source}: {key}: {p} leads outside the job's working dir {base} — keep "
                "data inside it"
            ) from None


def _check_job_paths(
    cfg: Any,
    source: str,
    working_dir: Path,
    log: LogSink,
    uri_override: str | None = None,
    allow_absolute: bool = False,
) -> None:
    from quantarena.config import ConfigError

    data = cfg.data
    if data.store is not None and not data.store.is_absolute():
        raise ConfigError(
            f"{source}: data.store: stores are not uploaded with a job — give the store's "
            "absolute path on the cluster (with --allow-absolute-paths)"
        )
    confined_paths(cfg, source, working_dir, allow_absolute=allow_absolute)
    for i, f in enumerate(data.files or []):
        if not f.path.is_absolute() and not (working_dir / f.path).exists():
            raise ConfigError(
                f"{source}: data.files.{i}.path: {f.path} is not in {working_dir} — the job "
                "sees only files inside the working dir (or absolute paths on the cluster)"
            )
    uri = uri_override or cfg.tracking.mlflow_uri or ""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        log(
            f"warning: tracking.mlflow_uri {uri} is relative: the job writes it inside its "
            "temporary working dir on the cluster — use an absolute path or an MLflow server "
            "to keep the results\n"
        )


def keep_results_here(config_path: str | Path, address: str) -> tuple[str | None, str | None]:
    """For a cluster on this machine (``address`` at 127.0.0.1 / localhost) and a config whose
    tracking URI is the default relative SQLite file: ``(absolute sqlite URI, absolute output
    dir)`` in the current folder, so the job's results land where the submitting user reads
    them (not in the job's temporary working dir). ``(None, None)`` otherwise."""
    from urllib.parse import urlparse

    from quantarena.config import TournamentConfig

    host = urlparse(address if "://" in address else f"http://{address}").hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None, None
    cfg = TournamentConfig.from_yaml(Path(config_path))
    t = cfg.tracking
    uri = t.mlflow_uri or ""
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:////"):
        return None, None
    out = Path(t.output_dir)
    out = out if out.is_absolute() else (Path.cwd() / out).resolve()
    db = Path(uri[len("sqlite:///") :])
    db = db if db.is_absolute() else (Path.cwd() / db).resolve()
    return f"sqlite:///{db.as_posix()}", str(out)


def submit(
    config_path: str | Path,
    *,
    address: str = DEFAULT_ADDRESS,
    wait: bool = False,
    token: str | None = None,
    working_dir: str | Path | None = None,
    entrypoint: str | None = None,
    log: LogSink = _stdout,
    timeout_s: float | None = None,
    on_submit: Callable[[str], None] | None = None,
    mlflow_uri_override: str | None = None,
    allow_absolute: bool = False,
) -> str:
    """Validate a tournament config here, then submit it as a Ray job; return the job id.

    The config must be inside ``working_dir`` (default: the config's ``ray.runtime_env``
    working dir, else this repo); the job runs ``entrypoint`` (default
    :data:`TOURNAMENT_ENTRYPOINT`) with ``{config}`` replaced by its relative path. ``wait``: follow the logs and raise :class:`JobFailedError` unless the
    job SUCCEEDED. Raises :class:`~quantarena.config.ConfigError`,
    :class:`~quantarena.cluster.auth.ClusterAuthError` or :class:`ClusterUnreachableError`
    with one-line messages. ``mlflow_uri_override``: the tracking URI the entrypoint was told
    to use instead of the config's (only checked here, e.g. for a relative SQLite path).
    ``allow_absolute``: let the config name absolute data paths on the cluster (else data
    must lie inside the working dir, checked here and again by the job, :data:`CONFINE_ENV`).
    """
    from quantarena.config import TournamentConfig

    path = Path(config_path)
    cfg = TournamentConfig.from_yaml(path)
    base = dict(cfg.ray.runtime_env or {})
    wd = Path(working_dir if working_dir is not None else base.get("working_dir", repo_root()))
    rel = _config_in_working_dir(path, wd)
    _check_job_paths(cfg, str(path), wd, log, mlflow_uri_override, allow_absolute)
    env = job_runtime_env(wd, base=base, env_vars=None if allow_absolute else {CONFINE_ENV: "1"})
    template = TOURNAMENT_ENTRYPOINT if entrypoint is None else entrypoint
    command = template.format(config=shlex.quote(rel))
    return submit_entrypoint(
        command,
        address=address,
        runtime_env=env,
        token=token,
        wait=wait,
        log=log,
        timeout_s=timeout_s,
        metadata={"quantarena.name": cfg.name, "quantarena.config": rel},
        on_submit=on_submit,
    )
