"""Redis connections from one URL, the same everywhere Redis is used (Optuna storage,
streams, kill switch).

Accepted: ``redis://[user[:password]@]host[:port][/db]`` and ``rediss://...`` (TLS; add
``?ssl_ca_certs=/path/ca.pem`` for a private CA, ``?ssl_cert_reqs=none`` only for tests),
``unix:///path/redis.sock``. A username selects a Redis ACL user: give it only the keys
under quantarena's prefix (:mod:`quantarena.redis_keys`), e.g.
``ACL SETUSER qa on >password ~quantarena:* +@all -@dangerous``. Passwords never appear in
messages: :func:`safe_url` masks them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from quantarena.redact import redact_text

__all__ = ["REDIS_SCHEMES", "check_redis_url", "redis_client", "safe_url"]

REDIS_SCHEMES = ("redis", "rediss", "unix")


def safe_url(url: str) -> str:
    """``url`` with its password masked (for messages and logs)."""
    return redact_text(url)


def check_redis_url(url: str) -> dict[str, Any]:
    """Parse a Redis URL: ``{"scheme", "tls", "username", "host", "port", "db"}``; raises
    ``ValueError`` (one line, password masked) for another scheme."""
    p = urlparse(url)
    scheme = p.scheme.lower()
    if scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"{safe_url(url)}: not a Redis URL — use redis://[user:password@]host:6379/0 or "
            "rediss:// for TLS"
        )
    db = p.path.strip("/") if scheme != "unix" else "0"
    return {
        "scheme": scheme,
        "tls": scheme == "rediss",
        "username": p.username,
        "host": p.hostname,
        "port": p.port or (6379 if scheme != "unix" else None),
        "db": int(db) if db.isdigit() else 0,
    }


def redis_client(url: str, **kwargs: Any) -> Any:
    """A ``redis.Redis`` for ``url`` (ACL user and password, TLS with ``rediss://``);
    ``kwargs`` go to ``redis.Redis.from_url`` (e.g. ``socket_timeout``)."""
    check_redis_url(url)
    import redis

    return redis.Redis.from_url(url, **kwargs)
