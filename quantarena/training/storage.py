"""Where a study lives: in memory, in Redis (a journal) or in a SQL database.

* ``None`` -> Optuna's in-memory storage (one process);
* ``"redis://[user:password@]host:port/db"`` (or ``rediss://`` for TLS; a Redis ACL user
  allowed only the prefix's keys is enough) -> ``JournalStorage(JournalRedisBackend)``
  with its keys under the quantarena prefix (:mod:`quantarena.redis_keys`:
  ``quantarena:optuna:log:N`` by default): many processes / Ray actors ask and tell trials
  of one study together. A plain Optuna client reads the same studies with
  ``JournalRedisBackend(url, prefix=optuna_journal_prefix())``;
* ``sqlite:///study.db``, ``postgresql://...``, ``mysql://...`` -> ``RDBStorage(url)``.

A storage that cannot be opened (Redis not answering, an unknown scheme, a database driver
missing) raises :class:`StorageError` (a ``ValueError``) with one line saying what to do;
a password in the URL is masked in it.
The URL is handed to Optuna only; no Redis client is imported here (Optuna imports ``redis``
itself when given a Redis URL).
"""

from __future__ import annotations

from typing import Any

import optuna

from quantarena.redact import redact_text
from quantarena.redis_keys import OPTUNA_PART, redis_key

__all__ = ["StorageError", "is_redis_url", "make_storage", "optuna_journal_prefix"]

#: URL schemes a study can be stored under (the part before ``://``, before any ``+driver``)
SCHEMES = ("redis", "rediss", "sqlite", "postgresql", "postgres", "mysql", "oracle", "mssql")


class StorageError(ValueError):
    """A study storage cannot be opened (one-line message with what to do)."""


def is_redis_url(url: str | None) -> bool:
    """True for ``redis://`` and ``rediss://`` URLs."""
    return isinstance(url, str) and url.split("://", 1)[0].lower() in ("redis", "rediss")


def optuna_journal_prefix(prefix: str | None = None) -> str:
    """The ``prefix`` argument of Optuna's ``JournalRedisBackend`` for studies under the
    quantarena key ``prefix`` (default ``quantarena:``): ``"quantarena:optuna"``."""
    return redis_key(OPTUNA_PART, prefix=prefix)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def make_storage(url: str | Any | None, *, prefix: str | None = None) -> Any:
    """An Optuna storage for ``url`` (see the module docstring); a storage object passes
    through unchanged. ``prefix`` is the quantarena Redis key prefix (default
    ``quantarena:``; see :mod:`quantarena.redis_keys`). Raises :class:`StorageError` for
    text that is not a URL, an unknown scheme, or a storage that cannot be opened."""
    if url is None or not isinstance(url, str):
        return url
    if "://" not in url:
        raise StorageError(
            f"storage {url!r} is not a URL: use redis://host:6379/0 or sqlite:///study.db"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme.split("+", 1)[0] not in SCHEMES:
        raise StorageError(
            f"storage scheme {scheme!r} is unknown: use redis://host:6379/0, "
            "sqlite:///study.db or postgresql://user@host/db"
        )
    if is_redis_url(url):
        from optuna.storages.journal import JournalRedisBackend

        journal = optuna_journal_prefix(prefix)
        try:
            return optuna.storages.JournalStorage(JournalRedisBackend(url, prefix=journal))
        except ImportError as exc:
            raise StorageError(
                f"storage {redact_text(url)}: {_first_line(exc)} (pip install redis)"
            ) from None
        except Exception as exc:  # connection refused, timeout, auth, protocol
            raise StorageError(
                f"Redis at {redact_text(url)} is not answering ({_first_line(exc)}): start "
                "redis-server there or fix the URL (user, password, rediss:// for TLS)"
            ) from None
    try:
        return optuna.storages.RDBStorage(url)
    except ImportError as exc:
        raise StorageError(
            f"storage {redact_text(url)}: the database driver is missing ({_first_line(exc)})"
        ) from None
    except Exception as exc:  # unknown dialect, connection refused, bad path
        raise StorageError(
            f"storage {redact_text(url)} cannot be opened: {redact_text(_first_line(exc))}"
        ) from None
