"""Bar intervals as strings ("1m", "5m", "1h", "1d", "1w") and as int64 nanoseconds."""

from __future__ import annotations

import re

NS_PER_SECOND = 1_000_000_000
_UNIT_NS = {
    "s": NS_PER_SECOND,
    "m": 60 * NS_PER_SECOND,
    "min": 60 * NS_PER_SECOND,
    "h": 3600 * NS_PER_SECOND,
    "d": 86400 * NS_PER_SECOND,
    "w": 7 * 86400 * NS_PER_SECOND,
}
_RE = re.compile(r"^\s*(\d+)\s*(s|min|m|h|d|w)\s*$", re.IGNORECASE)


def interval_ns(interval: str | int) -> int:
    """Return the length of ``interval`` in nanoseconds.

    Accepts ``"30s"``, ``"1m"``/``"1min"``, ``"4h"``, ``"1d"``, ``"1w"`` or an int (ns).
    """
    if isinstance(interval, int):
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        return interval
    m = _RE.match(str(interval))
    if not m:
        raise ValueError(
            f"unknown interval {interval!r}: use a number and a unit, e.g. 1m, 5m, 1h, 1d"
        )
    n = int(m.group(1))
    if n <= 0:
        raise ValueError(f"interval must be positive, got {interval!r}")
    return n * _UNIT_NS[m.group(2).lower()]


def interval_str(ns: int) -> str:
    """Inverse of :func:`interval_ns` using the largest unit that divides ``ns`` exactly."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_NS[unit]
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"
