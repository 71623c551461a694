"""Walk-forward schedule: windows checked against brute-force masks over real bar times."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantarena.tournaments.schedule import MONDAY_ANCHOR_NS, Round, duration_ns, walk_forward

DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9


@pytest.fixture(scope="module")
def btc_ts(btc_1m_csv: Path) -> np.ndarray:
    df = pd.read_csv(btc_1m_csv, usecols=["timestamp"])
    ts = pd.to_datetime(df["timestamp"], format="%Y-%m-%d %H:%M:%S.%f", utc=True)
    return ts.to_numpy(dtype="datetime64[ns]").view(np.int64)


@pytest.fixture(scope="module")
def coinbase_ts(sample_dir: Path) -> np.ndarray:
    df = pd.read_csv(sample_dir / "Coinbase_BTCUSD_1h.csv", skiprows=1, usecols=["date"])
    ts = pd.to_datetime(df["date"], format="%Y-%m-%d %I-%p", utc=True).sort_values()
    return ts.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _check_against_masks(ts: np.ndarray, rounds: list[Round]) -> None:
    """Every window's bars are exactly the bars whose open time lies in it."""
    idx = np.arange(ts.size)
    for k, r in enumerate(rounds):
        assert r.index == k
        oos = idx[(ts >= r.oos_start_ns) & (ts < r.oos_end_ns)]
        ins = idx[(ts >= r.is_start_ns) & (ts < r.oos_start_ns)]
        warm = idx[(ts >= r.warmup_start_ns) & (ts < r.is_start_ns)]
        assert np.array_equal(np.arange(r.oos_start, r.oos_end), oos)
        assert np.array_equal(np.arange(r.is_start, r.is_end), ins)
        assert np.array_equal(np.arange(r.warmup_start, r.is_start), warm)
        # no OOS bar inside its own in-sample (or warm-up) window
        assert not set(oos) & set(range(r.warmup_start, r.is_end))
        assert r.n_oos > 0 and r.n_is > 0
        assert np.array_equal(ts[r.oos_slice], ts[oos])


def test_btc_minutes_weekly_rounds_match_calendar(btc_ts: np.ndarray) -> None:
    rounds = walk_forward(btc_ts, round_ns="7d", lookback_ns="7d")
    _check_against_masks(btc_ts, rounds)
    # independent calendar arithmetic: data 2021-12-31 23:01 → 2022-02-01 00:00 (last bar close)
    t0 = pd.Timestamp("2021-12-31 23:01", tz="UTC")
    first = t0 + pd.Timedelta(days=7)
    expected = [first + pd.Timedelta(days=7 * k) for k in range(3)]
    assert [pd.Timestamp(r.oos_start_ns, tz="UTC") for r in rounds] == expected
    # 7 days of 1-minute bars, no missing minutes in this file
    assert all(r.n_oos == 7 * 1440 and r.n_is == 7 * 1440 for r in rounds)
    # consecutive OOS rounds touch: the schedule covers time without gaps or overlap
    for a, b in zip(rounds, rounds[1:], strict=False):
        assert a.oos_end == b.oos_start and a.oos_end_ns == b.oos_start_ns
    # the in-sample window is the lookback immediately before its round
    for r in rounds:
        assert r.is_end == r.oos_start
        assert r.oos_start_ns - r.is_start_ns == 7 * DAY


def test_default_three_week_lookback(btc_ts: np.ndarray) -> None:
    rounds = walk_forward(btc_ts)  # 7d rounds, 21d lookback
    _check_against_masks(btc_ts, rounds)
    assert len(rounds) == 1  # 31 days of data: one full week after three weeks of lookback
    assert rounds[0].n_is == 21 * 1440


def test_warmup_precedes_lookback(btc_ts: np.ndarray) -> None:
    rounds = walk_forward(btc_ts, "7d", "7d", warmup_ns="2d")
    _check_against_masks(btc_ts, rounds)
    r0 = rounds[0]
    assert r0.warmup_start == 0
    assert r0.is_start - r0.warmup_start == 2 * 1440
    assert r0.oos_start_ns == btc_ts[0] + 9 * DAY
    assert len(rounds) == 3


def test_week_alignment_on_coinbase_hours(coinbase_ts: np.ndarray) -> None:
    rounds = walk_forward(coinbase_ts, "1w", "3w", align="week")
    _check_against_masks(coinbase_ts, rounds)
    starts = [pd.Timestamp(r.oos_start_ns, tz="UTC") for r in rounds]
    assert all(s.day_of_week == 0 and s.hour == 0 and s.minute == 0 for s in starts)
    t0 = pd.Timestamp(coinbase_ts[0], tz="UTC")
    # the first Monday with three full weeks of history before it
    need = t0 + pd.Timedelta(weeks=3)
    first_monday = need.normalize() + pd.Timedelta(days=(7 - need.day_of_week) % 7)
    if first_monday < need:
        first_monday += pd.Timedelta(days=7)
    assert starts[0] == first_monday
    # last full week ends by the close of the last hourly bar
    end = pd.Timestamp(coinbase_ts[-1], tz="UTC") + pd.Timedelta(hours=1)
    assert pd.Timestamp(rounds[-1].oos_end_ns, tz="UTC") <= end
    assert pd.Timestamp(rounds[-1].oos_end_ns, tz="UTC") + pd.Timedelta(weeks=1) > end
    assert len(rounds) == (end - first_monday) // pd.Timedelta(weeks=1)
    assert all(r.n_oos == 168 and r.n_is == 3 * 168 for r in rounds)


def test_int_anchor_and_start_end(coinbase_ts: np.ndarray) -> None:
    start = int(coinbase_ts[1000])
    end = int(coinbase_ts[3000])
    anchor = MONDAY_ANCHOR_NS + 12 * HOUR  # Mondays at noon
    rounds = walk_forward(coinbase_ts, "2d", "5d", start_ns=start, end_ns=end, align=anchor)
    _check_against_masks(coinbase_ts, rounds)
    assert all((r.oos_start_ns - anchor) % (2 * DAY) == 0 for r in rounds)
    assert rounds[0].is_start >= 1000 and rounds[-1].oos_end <= 3000
    assert rounds[0].is_start_ns >= start


def test_gap_in_data_skips_empty_rounds(coinbase_ts: np.ndarray) -> None:
    # cut 30 days out of the real hourly series: rounds inside the hole have no OOS bars
    cut = (coinbase_ts >= coinbase_ts[2000]) & (coinbase_ts < coinbase_ts[2000] + 30 * DAY)
    ts = coinbase_ts[~cut][:5000]
    rounds = walk_forward(ts, "7d", "7d")
    _check_against_masks(ts, rounds)
    full = walk_forward(ts, "7d", "7d", end_ns=int(ts[-1]) + HOUR)
    assert len(full) == len(rounds)
    spans = np.diff([r.oos_start_ns for r in rounds])
    assert spans.max() > 7 * DAY  # some weeks were dropped, indices stayed consecutive


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 400), min_size=2, max_size=300),
    rnd=st.integers(10, 300),
    look=st.integers(10, 600),
    warm=st.integers(0, 200),
    align=st.sampled_from(["data", "week", 7]),
)
def test_property_windows_match_bruteforce(
    gaps: list[int], rnd: int, look: int, warm: int, align: str | int
) -> None:
    unit = 60 * 10**9
    ts = 1_600_000_000 * 10**9 + np.cumsum(np.array(gaps, dtype=np.int64) * unit)
    rounds = walk_forward(ts, rnd * unit, look * unit, warm * unit, align=align)
    _check_against_masks(ts, rounds)
    for a, b in zip(rounds, rounds[1:], strict=False):
        assert (b.oos_start_ns - a.oos_start_ns) % (rnd * unit) == 0
        assert b.oos_start >= a.oos_end
    end = int(ts[-1]) + int(np.diff(ts).min())
    assert all(r.oos_end_ns <= end for r in rounds)


def test_durations() -> None:
    assert duration_ns("3w") == 21 * DAY
    assert duration_ns("7d") == 7 * DAY
    assert duration_ns("4h") == 4 * HOUR
    assert duration_ns(dt.timedelta(days=2, hours=3)) == 2 * DAY + 3 * HOUR
    assert duration_ns(np.int64(5)) == 5
    assert duration_ns("0", allow_zero=True) == 0
    with pytest.raises(ValueError, match="lookback_ns must be positive"):
        duration_ns(0, name="lookback_ns")
    with pytest.raises(ValueError, match="round_ns: unknown interval"):
        duration_ns("7 days", name="round_ns")
    a = walk_forward(np.arange(0, 40 * DAY, HOUR, dtype=np.int64), "1w", "3w")
    b = walk_forward(np.arange(0, 40 * DAY, HOUR, dtype=np.int64), 7 * DAY, 21 * DAY)
    assert a == b and len(a) == 2


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"strictly increasing: ts\[2\]"):
        walk_forward(np.array([0, 10, 5, 20], dtype=np.int64), 1, 1)
    with pytest.raises(ValueError, match="1-D"):
        walk_forward(np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="int64 ns"):
        walk_forward(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="align"):
        walk_forward(np.arange(10, dtype=np.int64), 2, 2, align="month")  # type: ignore[arg-type]
    assert walk_forward(np.array([], dtype=np.int64)) == []
    # too short for one full round: no rounds, no error
    assert walk_forward(np.arange(0, 10 * DAY, HOUR, dtype=np.int64), "7d", "7d") == []
