"""quantarena.cluster: start or join Ray, size agent actors, submit and follow jobs.

* :mod:`~quantarena.cluster.runtime` — :func:`connect`, :func:`resources`,
  :func:`agent_resources`.
* :mod:`~quantarena.cluster.jobs` — :func:`submit` a tournament config as a Ray job.
* :mod:`~quantarena.cluster.auth` — Ray token auth (where the token is looked up).
* :mod:`~quantarena.cluster.local` — :class:`LocalHead`, a head node we start and stop.

Shell code: the core never imports it. Ray itself loads on first use.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "connect": "quantarena.cluster.runtime",
    "shutdown": "quantarena.cluster.runtime",
    "resources": "quantarena.cluster.runtime",
    "agent_resources": "quantarena.cluster.runtime",
    "agent_resources_for": "quantarena.cluster.runtime",
    "ClusterInfo": "quantarena.cluster.runtime",
    "submit": "quantarena.cluster.jobs",
    "submit_entrypoint": "quantarena.cluster.jobs",
    "follow": "quantarena.cluster.jobs",
    "JobFailedError": "quantarena.cluster.jobs",
    "ClusterUnreachableError": "quantarena.cluster.jobs",
    "ClusterAuthError": "quantarena.cluster.auth",
    "find_token": "quantarena.cluster.auth",
    "LocalHead": "quantarena.cluster.local",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'quantarena.cluster' has no attribute {name!r}")
