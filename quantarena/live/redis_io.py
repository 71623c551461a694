"""Redis plumbing of the live shell: key names, connections, retries with backoff.

Every key is under the Redis key prefix (:mod:`quantarena.redis_keys`); :class:`LiveKeys`
names them all in one place (docs/streams.md lists them). :func:`retry` runs a Redis call
again after a lost connection (Redis restarted, network blip) with exponential backoff, so a
trader reconnects by itself and loses nothing (its state and effects are in Redis; see
:mod:`.redis_trader`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from quantarena.redis_keys import normalize_prefix, redis_key

__all__ = ["DEFAULT_URL", "LiveKeys", "connect", "retry"]

log = logging.getLogger("quantarena.live")

#: the Redis the live shell talks to unless told otherwise
DEFAULT_URL = "redis://127.0.0.1:6379/0"

T = TypeVar("T")


@dataclass(frozen=True)
class LiveKeys:
    """The Redis keys of the live shell under one prefix."""

    prefix: str = "quantarena:"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", normalize_prefix(self.prefix))

    def feed(self, name: str) -> str:
        """The market-data stream of feed ``name``."""
        return redis_key("feed", name, prefix=self.prefix)

    def agents(self) -> str:
        """Set of the paper-trading agents' names."""
        return redis_key("live", "agents", prefix=self.prefix)

    def state(self, agent: str) -> str:
        """The agent's trader snapshot (state + last message applied)."""
        return redis_key("live", "agent", agent, "state", prefix=self.prefix)

    def events(self, agent: str) -> str:
        """Stream of the agent's orders, fills, rejections, gaps and state changes."""
        return redis_key("live", "agent", agent, "events", prefix=self.prefix)

    def status(self, agent: str) -> str:
        """Hash of the agent's latest account figures (for ``quantarena live status``)."""
        return redis_key("live", "agent", agent, "status", prefix=self.prefix)

    def daily(self, agent: str) -> str:
        """Hash UTC day number -> the agent's equity at the last bar of that day."""
        return redis_key("live", "agent", agent, "daily", prefix=self.prefix)

    def allocations(self) -> str:
        """Stream of the director's reallocations (JSON in field ``json``)."""
        return redis_key("live", "director", "allocations", prefix=self.prefix)

    def promotions(self) -> str:
        """Hash account -> JSON of its promotion record (state promoted/demoted, reason, day,
        agent, kind, params, tournament)."""
        return redis_key("live", "promotions", prefix=self.prefix)

    def promotion_log(self) -> str:
        """Stream of every promotion and demotion (JSON in field ``json``)."""
        return redis_key("live", "promotions", "log", prefix=self.prefix)

    def capital(self, agent: str) -> str:
        """The capital the director allocates to the agent (a float as text)."""
        return redis_key("live", "agent", agent, "capital", prefix=self.prefix)

    def kill(self, agent: str | None = None) -> str:
        """The kill switch of one agent, or of all (``None``): present = halted."""
        return redis_key("live", "kill", *([agent] if agent else ["all"]), prefix=self.prefix)

    def resume(self, agent: str | None = None) -> str:
        """A counter raised by ``quantarena resume`` (the trader resumes when it grows)."""
        return redis_key("live", "resume", *([agent] if agent else ["all"]), prefix=self.prefix)


def connect(url: str = DEFAULT_URL, **kwargs: Any) -> Any:
    """A Redis client for ``url`` (bytes replies; short timeouts so a dead server is
    noticed)."""
    import redis

    kwargs.setdefault("socket_timeout", 5.0)
    kwargs.setdefault("socket_connect_timeout", 2.0)
    return redis.Redis.from_url(url, **kwargs)


def retry(
    fn: Callable[[], T],
    what: str,
    *,
    max_wait_s: float = 60.0,
    first_delay_s: float = 0.05,
    max_delay_s: float = 2.0,
    on_retry: Callable[[int, Exception], None] | None = None,
) -> T:
    """``fn()``, called again after a connection error with exponential backoff (``first_delay_s``
    doubling up to ``max_delay_s``) until it succeeds or ``max_wait_s`` have passed; then the
    last error is raised with a one-line message naming ``what``."""
    import redis

    delay = first_delay_s
    start = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as e:
            attempt += 1
            waited = time.monotonic() - start
            if waited >= max_wait_s:
                raise ConnectionError(
                    f"Redis unreachable for {waited:.0f} s while {what}: {e} — is redis-server "
                    "running at the URL given (--redis)?"
                ) from e
            if on_retry is not None:
                on_retry(attempt, e)
            log.warning(
                "Redis lost while %s (attempt %d): %s; retrying in %.2f s", what, attempt, e, delay
            )
            time.sleep(delay)
            delay = min(max_delay_s, delay * 2)
