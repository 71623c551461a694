"""The walk-forward schedule: which bars each tournament round trains on and trades on.

A round is three consecutive time windows, each a half-open ``[start, end)`` range of
*bar open times* (int64 ns since the epoch, UTC)::

    |-- warm-up --|------ in-sample (lookback) ------|--- out-of-sample (round) ---|
                                                     ^ oos_start_ns

- **out-of-sample (OOS)**: the round itself, ``round_ns`` long (7 days by default). Agents
  are scored, ranked and allocated capital on these bars only.
- **in-sample (IS)**: the ``lookback_ns`` immediately before the OOS window (21 days by
  default): the bars on which agents tune or fit before the round. It ends exactly where
  the OOS window starts, so no OOS bar is ever inside its own IS window.
- **warm-up**: ``warmup_ns`` before the IS window, for indicator history only (a 200-bar
  moving average needs 200 bars before its first value); never scored.

Round boundaries are *times*; the :class:`Round` carries both the times and the bar *index*
slices into ``ts`` (``ts[oos_start:oos_end]`` are the OOS bars). A bar belongs to the window
holding its open time, so with no look-ahead (a position decided at the close of bar ``t``
fills at the open of ``t + 1``) the last IS bar's decision fills at the first OOS bar.

Alignment (``align``):

- ``"data"`` (default): the first OOS round starts at ``start_ns + warmup_ns + lookback_ns``,
  i.e. right after the first full warm-up + lookback; later rounds follow every ``round_ns``.
- ``"week"``: OOS boundaries are Mondays 00:00 UTC plus multiples of ``round_ns``; the first
  round is the first such boundary with a full warm-up + lookback before it. Use it for
  weekly tournaments that should run Monday to Monday.
- an ``int``: an anchor time in ns; OOS boundaries are ``anchor + k * round_ns``.

Only full rounds are produced: a round whose OOS window would end after ``end_ns`` (default:
the close of the last bar) is dropped, as is a round with no OOS bar or no IS bar (a gap in
the data). ``Round.index`` counts the rounds kept, from 0.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Literal

import numpy as np

from quantarena.data.intervals import interval_ns

__all__ = ["MONDAY_ANCHOR_NS", "Round", "duration_ns", "walk_forward"]

DAY_NS = 86_400 * 1_000_000_000
#: 1970-01-05 00:00 UTC, the first Monday after the epoch: the anchor of ``align="week"``.
MONDAY_ANCHOR_NS = 4 * DAY_NS

Duration = str | int | _dt.timedelta | np.integer


@dataclass(frozen=True)
class Round:
    """One walk-forward round.

    Index fields are bar positions in the ``ts`` passed to :func:`walk_forward`, half-open
    (``ts[is_start:is_end]`` are the in-sample bars). ``*_ns`` fields are the window
    boundaries as times (int64 ns UTC, half-open); a window's bars are exactly those whose
    open time lies in ``[start_ns, end_ns)``.
    """

    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int
    warmup_start: int
    warmup_start_ns: int
    is_start_ns: int
    oos_start_ns: int
    oos_end_ns: int

    @property
    def is_slice(self) -> slice:
        """In-sample bars: ``ts[is_slice]``."""
        return slice(self.is_start, self.is_end)

    @property
    def oos_slice(self) -> slice:
        """Out-of-sample bars: ``ts[oos_slice]``."""
        return slice(self.oos_start, self.oos_end)

    @property
    def history_slice(self) -> slice:
        """Warm-up plus in-sample bars, the history an agent may see before the round."""
        return slice(self.warmup_start, self.is_end)

    @property
    def n_is(self) -> int:
        return self.is_end - self.is_start

    @property
    def n_oos(self) -> int:
        return self.oos_end - self.oos_start


def duration_ns(value: Duration, *, name: str = "duration", allow_zero: bool = False) -> int:
    """A duration in ns from ``"7d"``, ``"3w"`` (21 days), ``"4h"``, ``"90m"``, an int (ns)
    or a :class:`datetime.timedelta`. ``0`` / ``"0"`` are accepted only with ``allow_zero``."""
    if isinstance(value, _dt.timedelta):
        ns = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        ns = int(value)
    elif isinstance(value, str) and value.strip() == "0":
        ns = 0
    elif isinstance(value, str):
        try:
            ns = interval_ns(value)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    else:
        raise ValueError(
            f"{name}: expected a duration like '7d', '3w', '4h' or an int of ns, got {value!r}"
        )
    if ns < 0 or (ns == 0 and not allow_zero):
        need = "zero or positive" if allow_zero else "positive"
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return ns


def _check_ts(ts: np.ndarray) -> np.ndarray:
    arr = np.asarray(ts)
    if arr.ndim != 1:
        raise ValueError(f"ts must be 1-D (bar open times), got shape {arr.shape}")
    if arr.dtype.kind == "M":
        arr = arr.astype("datetime64[ns]").view(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"ts must be int64 ns since the epoch, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size > 1:
        bad = np.flatnonzero(np.diff(arr) <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(
                f"ts must be strictly increasing: ts[{i}]={arr[i]} <= ts[{i - 1}]={arr[i - 1]}"
                " — sort the bars and drop duplicates first"
            )
    return arr


def walk_forward(
    ts: np.ndarray,
    round_ns: Duration = "7d",
    lookback_ns: Duration = "21d",
    warmup_ns: Duration = 0,
    start_ns: int | None = None,
    end_ns: int | None = None,
    align: Literal["data", "week"] | int = "data",
) -> list[Round]:
    """Split bar times ``ts`` into walk-forward rounds (see the module docstring).

    Args:
        ts: ``(T,)`` bar open times, int64 ns UTC (or datetime64), strictly increasing.
        round_ns: OOS length per round (``"7d"``, ``"1w"``, ns int, timedelta).
        lookback_ns: in-sample length immediately before each OOS window.
        warmup_ns: extra history before the in-sample window (indicator warm-up); ``0``
            for none.
        start_ns: earliest time the schedule may use (the first warm-up starts here);
            default ``ts[0]``.
        end_ns: exclusive end of usable time; default the close of the last bar,
            ``ts[-1] + bar`` where ``bar`` is the smallest spacing in ``ts``.
        align: ``"data"``, ``"week"`` (Mondays 00:00 UTC) or an int anchor in ns.

    Returns:
        The full rounds, in time order, consecutive OOS windows touching end to start.
    """
    t = _check_ts(ts)
    rnd = duration_ns(round_ns, name="round_ns")
    look = duration_ns(lookback_ns, name="lookback_ns")
    warm = duration_ns(warmup_ns, name="warmup_ns", allow_zero=True)
    if t.size == 0:
        return []
    start = int(t[0]) if start_ns is None else int(start_ns)
    if end_ns is None:
        bar = int(np.diff(t).min()) if t.size > 1 else 1
        end = int(t[-1]) + bar
    else:
        end = int(end_ns)
    if end <= start:
        raise ValueError(f"end_ns ({end}) must be after start_ns ({start})")

    first = start + warm + look
    if align == "data":
        anchor = first
    elif align == "week":
        anchor = MONDAY_ANCHOR_NS
    elif isinstance(align, (int, np.integer)) and not isinstance(align, bool):
        anchor = int(align)
    else:
        raise ValueError(f"align must be 'data', 'week' or an int anchor in ns, got {align!r}")
    k0 = -((anchor - first) // rnd)  # smallest k with anchor + k * rnd >= first
    oos0 = anchor + k0 * rnd
    n = (end - oos0) // rnd  # number of full rounds
    if n <= 0:
        return []
    oos_starts = oos0 + rnd * np.arange(n, dtype=np.int64)
    oos_ends = oos_starts + rnd
    is_starts = oos_starts - look
    warm_starts = is_starts - warm
    ss = np.searchsorted
    i_oos0 = ss(t, oos_starts, side="left")
    i_oos1 = ss(t, oos_ends, side="left")
    i_is0 = ss(t, is_starts, side="left")
    i_warm = ss(t, warm_starts, side="left")

    rounds: list[Round] = []
    for j in range(int(n)):
        if i_oos1[j] <= i_oos0[j] or i_oos0[j] <= i_is0[j]:
            continue  # no OOS bar or no IS bar in this window: a data gap
        rounds.append(
            Round(
                index=len(rounds),
                is_start=int(i_is0[j]),
                is_end=int(i_oos0[j]),
                oos_start=int(i_oos0[j]),
                oos_end=int(i_oos1[j]),
                warmup_start=int(i_warm[j]),
                warmup_start_ns=int(warm_starts[j]),
                is_start_ns=int(is_starts[j]),
                oos_start_ns=int(oos_starts[j]),
                oos_end_ns=int(oos_ends[j]),
            )
        )
    return rounds
