"""Start or join Ray, and size agent actors.

* :func:`connect` starts a local Ray or joins a cluster, once per process (later calls
  return the same :class:`ClusterInfo`).
* :func:`resources` summarises the cluster's resources.
* :func:`agent_resources` turns an agent's ``gpu_fraction`` into Ray actor options.

Token auth: Ray >= 2.59 turns token auth on for a new local Ray (it writes a token to
``~/.ray/auth_token`` if there is none). When joining a cluster by address, Ray sends the
token only with ``RAY_AUTH_MODE=token``; :func:`connect` sets that for this process when a
token is found (see :mod:`quantarena.cluster.auth`), which is harmless on a cluster without
auth, and turns a refusal into a one-line :class:`~quantarena.cluster.auth.ClusterAuthError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quantarena.cluster.auth import (
    AUTH_MODE_ENV,
    ClusterAuthError,
    auth_error_message,
    find_token,
)

__all__ = [
    "ClusterInfo",
    "agent_resources",
    "agent_resources_for",
    "connect",
    "resources",
    "shutdown",
]


@dataclass(frozen=True)
class ClusterInfo:
    """What :func:`connect` joined: the GCS ``address``, the ``dashboard_url`` (None if no
    dashboard), whether this process ``started`` it, and its total ``resources``."""

    address: str
    dashboard_url: str | None
    started: bool
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def num_gpus(self) -> float:
        """Logical GPUs in the cluster."""
        return float(self.resources.get("GPU", 0.0))


_INFO: ClusterInfo | None = None


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: float | None = None,
    include_dashboard: bool = False,
    namespace: str = "quantarena",
    runtime_env: Mapping[str, Any] | None = None,
    log_to_driver: bool = True,
) -> ClusterInfo:
    """Start or join Ray, once per process.

    ``address`` None: inside a Ray job (``RAY_ADDRESS`` set) join the job's cluster, else
    start a local Ray with ``num_cpus`` CPUs (None: all cores) and ``num_gpus`` GPUs (may be
    logical: ``1`` on a CPU-only machine lets GPU-fraction actors be placed), with the
    dashboard only if ``include_dashboard``. Any other ``address`` (``"auto"``,
    ``"HOST:PORT"``, ``"ray://HOST:10001"``) is joined as is; ``num_cpus`` / ``num_gpus`` are
    then ignored (a cluster's size is set where it starts).

    Idempotent: if Ray is already initialised in this process, returns its info and starts
    nothing. Raises :class:`ClusterAuthError` (one line) when the cluster refuses the token.
    """
    global _INFO
    import ray

    if ray.is_initialized():
        started = _INFO is not None and _INFO.started
        _INFO = _info(started=started)
        return _INFO
    target = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "namespace": namespace,
        "log_to_driver": log_to_driver,
        "ignore_reinit_error": True,
    }
    if runtime_env:
        kwargs["runtime_env"] = dict(runtime_env)
    if target is None:
        kwargs.update(
            address="local",
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=include_dashboard,
        )
        if include_dashboard:
            kwargs["dashboard_host"] = "127.0.0.1"
        started = True
    else:
        _enable_token_mode_if_token()
        kwargs["address"] = target
        started = False
    try:
        ray.init(**kwargs)
    except Exception as exc:
        if _is_auth_error(exc):
            raise ClusterAuthError(
                auth_error_message(str(target), find_token(), str(exc))
            ) from None
        raise
    _INFO = _info(started=started)
    return _INFO


def _is_auth_error(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if type(exc).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _enable_token_mode_if_token() -> None:
    if os.environ.get(AUTH_MODE_ENV) or find_token() is None:
        return
    try:
        from ray._private.authentication.authentication_token_setup import _enable_token_auth

        _enable_token_auth()  # sets RAY_AUTH_MODE=token and refreshes Ray's cached config
    except ImportError:  # pragma: no cover - other Ray versions
        os.environ[AUTH_MODE_ENV] = "token"


def _info(*, started: bool) -> ClusterInfo:
    import ray

    ctx = ray.get_runtime_context()
    gcs = getattr(ctx, "gcs_address", None) or ""
    dash = None
    try:
        url = ray._private.worker.get_dashboard_url()  # noqa: SLF001 - no public getter
        dash = f"http://{url}" if url and not url.startswith("http") else (url or None)
    except Exception:  # pragma: no cover - no dashboard
        dash = None
    return ClusterInfo(
        address=gcs,
        dashboard_url=dash,
        started=started,
        resources={k: float(v) for k, v in ray.cluster_resources().items()},
    )


def shutdown() -> None:
    """Disconnect from Ray (stopping it if :func:`connect` started it here)."""
    global _INFO
    import ray

    ray.shutdown()
    _INFO = None


def resources() -> dict[str, float]:
    """Summary of the connected cluster: ``CPU``, ``GPU`` (logical), ``memory_gb``,
    ``object_store_gb`` (totals), ``CPU_available``, ``GPU_available`` and ``nodes`` (alive)."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("Ray is not connected: call quantarena.cluster.connect() first")
    total = ray.cluster_resources()
    avail = ray.available_resources()
    gib = float(1024**3)
    return {
        "CPU": float(total.get("CPU", 0.0)),
        "GPU": float(total.get("GPU", 0.0)),
        "memory_gb": float(total.get("memory", 0.0)) / gib,
        "object_store_gb": float(total.get("object_store_memory", 0.0)) / gib,
        "CPU_available": float(avail.get("CPU", 0.0)),
        "GPU_available": float(avail.get("GPU", 0.0)),
        "nodes": float(sum(1 for n in ray.nodes() if n.get("Alive"))),
    }


def agent_resources_for(gpu_fraction: float, cluster_gpus: float) -> dict[str, float]:
    """Ray actor options for an agent: ``{"num_gpus": gpu_fraction, "num_cpus": 0}`` when the
    cluster has GPUs (so 1 / gpu_fraction agents share one GPU), else ``{"num_cpus": gpu_fraction}`` —
    the same share of one CPU, so as many agents fit on a CPU as would on a GPU and a
    tournament never waits for a CPU slot that a long-lived agent actor holds."""
    f = float(gpu_fraction)
    if not 0.0 < f <= 1.0:
        raise ValueError(f"gpu_fraction must be in (0, 1], got {gpu_fraction!r}")
    if cluster_gpus > 0:
        # num_cpus=0: the GPU share is the agent's resource; without it Ray would also hold a
        # whole CPU per actor for scheduling, and a 2-CPU node would place only two agents
        return {"num_gpus": f, "num_cpus": 0}
    return {"num_cpus": f}


def agent_resources(gpu_fraction: float) -> dict[str, float]:
    """:func:`agent_resources_for` with the connected cluster's GPU count."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("Ray is not connected: call quantarena.cluster.connect() first")
    return agent_resources_for(gpu_fraction, float(ray.cluster_resources().get("GPU", 0.0)))
