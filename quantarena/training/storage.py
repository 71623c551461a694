"""Where a study lives: in memory, in Redis (a journal) or in a SQL database.

* ``None`` → Optuna's in-memory storage (one process);
* ``"redis://host:port/db"`` (or ``rediss://``) → ``JournalStorage(JournalRedisBackend(url, prefix=prefix))``:
  many processes / Ray actors ask and tell trials of one study together;
* any other URL (``sqlite:///study.db``, ``postgresql://...``) → ``RDBStorage(url)``.

The URL is handed to Optuna only; no Redis client is imported here unless a Redis URL is
given (Optuna imports ``redis`` itself).
"""

from __future__ import annotations

from typing import Any

import optuna

__all__ = ["is_redis_url", "make_storage"]


def is_redis_url(url: str | None) -> bool:
    """True for ``redis://`` and ``rediss://`` URLs."""
    return isinstance(url, str) and url.split("://", 1)[0].lower() in ("redis", "rediss")


def make_storage(url: str | Any | None, *, prefix: str = "") -> Any:
    """An Optuna storage for ``url`` (see the module docstring); a storage object passes
    through unchanged. ``prefix`` namespaces a Redis journal's keys (``{prefix}:log:N``);
    the default ``""`` is Optuna's own, so plain Optuna clients see the same studies.
    Raises ``ValueError`` for text that is not a URL."""
    if url is None or not isinstance(url, str):
        return url
    if "://" not in url:
        raise ValueError(
            f"storage {url!r} is not a URL: use redis://host:6379/0 or sqlite:///study.db"
        )
    if is_redis_url(url):
        from optuna.storages.journal import JournalRedisBackend

        return optuna.storages.JournalStorage(JournalRedisBackend(url, prefix=prefix))
    return optuna.storages.RDBStorage(url)
