"""The one place that names Redis keys: every key quantarena writes starts with a prefix.

The prefix defaults to :data:`DEFAULT_PREFIX` (``"quantarena:"``); the command line takes
another with ``--redis-prefix`` or ``$QUANTARENA_REDIS_PREFIX`` (:data:`PREFIX_ENV`), so
several teams or test runs can share one Redis without touching each other's keys, and
``SCAN MATCH quantarena:*`` lists (or cleans up) everything quantarena wrote.

Key layout: ``{prefix}{part}:{part}...``, e.g. ``quantarena:optuna:log:0`` for the journal of
the shared Optuna studies (:data:`OPTUNA_PART`). Imports nothing (the core may use it).
"""

from __future__ import annotations

__all__ = ["DEFAULT_PREFIX", "OPTUNA_PART", "PREFIX_ENV", "normalize_prefix", "redis_key"]

#: prefix of every Redis key quantarena writes
DEFAULT_PREFIX = "quantarena:"
#: environment variable the command line reads for another prefix
PREFIX_ENV = "QUANTARENA_REDIS_PREFIX"
#: namespace of the Optuna journal (shared studies) under the prefix
OPTUNA_PART = "optuna"


def normalize_prefix(prefix: str | None = None) -> str:
    """``prefix`` ending in one ``:`` (``"team1"`` -> ``"team1:"``); ``None`` gives
    :data:`DEFAULT_PREFIX`. Raises ``ValueError`` for an empty prefix or one with spaces or
    glob characters (they would break ``SCAN MATCH prefix*``)."""
    p = DEFAULT_PREFIX if prefix is None else str(prefix)
    if not p.strip(":"):
        raise ValueError(f"Redis key prefix {prefix!r} is empty: use e.g. {DEFAULT_PREFIX!r}")
    bad = [c for c in p if c.isspace() or c in "*?[]\\"]
    if bad:
        raise ValueError(
            f"Redis key prefix {prefix!r} holds {bad[0]!r}: use letters, digits, '-', '_', ':'"
        )
    return p if p.endswith(":") else p + ":"


def redis_key(*parts: str, prefix: str | None = None) -> str:
    """The full key of ``parts`` under ``prefix`` (default :data:`DEFAULT_PREFIX`):
    ``redis_key("optuna", "log", "0")`` -> ``"quantarena:optuna:log:0"``."""
    if not parts or any(not str(p) for p in parts):
        raise ValueError(f"redis_key needs non-empty parts, got {parts!r}")
    return normalize_prefix(prefix) + ":".join(str(p) for p in parts)
