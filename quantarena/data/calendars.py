"""Trading calendars: how many bars make a year, and how many calendar days a record spans.

The one source of truth for annualisation (periods per year) in the project: the engine's
metrics, the backtest API and CLI, and the tournament all take their year from here.

A calendar is named by a string:

* ``"24/7"`` — a market that never closes (crypto): a year is 365 days of bars,
  ``bars_per_year = 365 · 1 day / interval`` (525,600 one-minute bars, 8,760 hourly, 365 daily).
* an ISO 10383 exchange code understood by ``exchange_calendars`` (``"XNYS"``, ``"XNAS"``,
  ``"XLON"``, ``"XTKS"``, ...): a year is the exchange's sessions. With ``D`` the trading days
  per year and ``L`` the trading time of a regular session (open to close less a lunch break;
  early closes excluded):

  ============================  =================================================
  bar interval                  bars per year
  ============================  =================================================
  shorter than a day            ``D · ceil(L / interval)``, per part of the session around
                                a lunch break (XNYS 1m: 252 · 390 = 98,280; 1h: 252 · 7 =
                                1,764, the last bar of a session being half)
  ``k`` days, k < 7             ``D / k`` (XNYS 1d: 252)
  a week or longer              ``365 · 1 day / interval`` (weeks run through holidays)
  ============================  =================================================

  ``D`` is the mean number of sessions per year over the ten reference years 2015–2024,
  rounded to a whole day (XNYS: 252, XLON: 253, XTKS: 244), so a calendar's year never
  depends on the day the code runs nor on the span of the data. ``L`` is the most common
  session length in those years (XNYS 6.5 h).

Calendar days (:func:`calendar_days`) are elapsed time, whatever the calendar: from the open of
the first bar to the end of the last (its open time plus the bar length), in 86,400-second days.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np

from quantarena.data.intervals import interval_ns

__all__ = [
    "ALWAYS_OPEN",
    "bars_per_year",
    "calendar_days",
    "check_calendar",
    "guess_calendar",
    "session_length_ns",
    "trading_days_per_year",
]

#: the name of the calendar of a market that never closes (crypto)
ALWAYS_OPEN = "24/7"
DAYS_PER_YEAR_24_7 = 365.0
NS_PER_DAY = 86_400 * 1_000_000_000
REFERENCE_YEARS = (2015, 2024)  # inclusive: the years that define an exchange's year
_ALIASES = {"24/7": ALWAYS_OPEN, "24x7": ALWAYS_OPEN, "crypto": ALWAYS_OPEN}


def check_calendar(name: str) -> str:
    """The canonical name of calendar ``name`` (``"24/7"`` or an exchange code, upper case).

    Raises:
        ValueError: not ``"24/7"`` nor a calendar ``exchange_calendars`` knows (one line,
            with what to use instead).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"calendar must be a name such as '24/7' or 'XNYS', got {name!r}")
    key = name.strip()
    if key.lower() in _ALIASES:
        return _ALIASES[key.lower()]
    import exchange_calendars as xcals

    names = set(xcals.get_calendar_names(include_aliases=True))
    if key.upper() in names:
        return key.upper()
    if key in names:
        return key
    raise ValueError(
        f"unknown calendar {name!r}: use '24/7' (crypto) or an exchange code of "
        "exchange_calendars such as XNYS, XNAS, XLON, XTKS, XHKG"
    )


@functools.lru_cache(maxsize=64)
def _exchange_year(name: str) -> tuple[float, tuple[int, ...]]:
    """(trading days per year, the regular session's trading segments in ns) of exchange
    calendar ``name``: one segment, or two around a lunch break."""
    import exchange_calendars as xcals
    import pandas as pd

    y0, y1 = REFERENCE_YEARS
    start, end = pd.Timestamp(f"{y0}-01-01"), pd.Timestamp(f"{y1}-12-31")
    with warnings.catch_warnings():  # deprecations inside exchange_calendars, not ours
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar(name, start=start, end=end)
    sched = cal.schedule.loc[start:end]
    if len(sched) == 0:
        raise ValueError(f"calendar {name!r} has no sessions in {y0}-{y1}")
    days = float(round(sched.groupby(sched.index.year).size().mean()))

    def ns(a: pd.Series, b: pd.Series) -> np.ndarray:
        return (b - a).to_numpy().astype("timedelta64[ns]").astype(np.int64)

    has_break = sched["break_start"].notna().to_numpy()
    am = np.where(has_break, ns(sched["open"], sched["break_start"].fillna(sched["close"])), 0)
    pm = np.where(has_break, ns(sched["break_end"].fillna(sched["open"]), sched["close"]), 0)
    whole = ns(sched["open"], sched["close"])
    segs = np.stack([np.where(has_break, am, whole), pm], axis=1)
    rows, counts = np.unique(segs, axis=0, return_counts=True)
    regular = rows[np.argmax(counts)]
    return days, tuple(int(x) for x in regular if x > 0)


def trading_days_per_year(calendar: str) -> float:
    """Days with a session in a year: 365 for ``"24/7"``, else the exchange's sessions per
    year (mean over 2015–2024, rounded: XNYS 252)."""
    cal = check_calendar(calendar)
    return DAYS_PER_YEAR_24_7 if cal == ALWAYS_OPEN else _exchange_year(cal)[0]


def session_length_ns(calendar: str) -> int:
    """Trading time of a regular session in ns: a whole day for ``"24/7"``, else the
    exchange's most common open-to-close span less any lunch break (XNYS: 6.5 h)."""
    cal = check_calendar(calendar)
    return NS_PER_DAY if cal == ALWAYS_OPEN else sum(_exchange_year(cal)[1])


def bars_per_year(calendar: str, interval: str | int) -> float:
    """Bars of length ``interval`` in a year of ``calendar`` (see the module docstring):
    the periods per year that annualise Sharpe ratios and volatility and turn a bar count into
    years (CAGR, annual turnover)."""
    ns = interval_ns(interval)
    cal = check_calendar(calendar)
    if cal == ALWAYS_OPEN or ns >= 7 * NS_PER_DAY:
        return DAYS_PER_YEAR_24_7 * NS_PER_DAY / ns
    days, segments = _exchange_year(cal)
    if ns >= NS_PER_DAY:
        return days * NS_PER_DAY / ns
    return days * sum(math.ceil(seg / ns) for seg in segments)


def calendar_days(ts: Sequence[int] | np.ndarray, bar_ns: int | None = None) -> float:
    """Calendar days from the open of the first bar of ``ts`` (ns UTC, sorted) to the end of
    the last (``ts[-1] + bar_ns``). ``bar_ns`` defaults to the median spacing of ``ts``
    (0 for a single bar). 0 for no bars."""
    t = np.asarray(ts, dtype=np.int64)
    if t.size == 0:
        return 0.0
    if bar_ns is None:
        bar_ns = int(np.median(np.diff(t))) if t.size > 1 else 0
    return float(t[-1] + int(bar_ns) - t[0]) / NS_PER_DAY


def guess_calendar(ts: Sequence[int] | np.ndarray) -> str:
    """``"24/7"`` unless the bars span at least a week (and ten bars) with none opening on a
    Saturday or Sunday (UTC): then ``"XNYS"`` (a weekday-only market; name the exchange in
    the configuration to be exact)."""
    t = np.asarray(ts, dtype=np.int64)
    if t.size < 10 or t[-1] - t[0] < 7 * NS_PER_DAY:
        return ALWAYS_OPEN
    weekday = (t // NS_PER_DAY + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    return ALWAYS_OPEN if np.any(weekday >= 5) else "XNYS"
