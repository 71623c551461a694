"""Validation rules, gap reports and the ffill policy, on hand-made rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantarena.data.errors import (
    DuplicateTimestampError,
    EmptyFileError,
    TimeOrderError,
    ValidationError,
)
from quantarena.data.schema import BAR_SCHEMA
from quantarena.data.validate import (
    GapReport,
    RawRows,
    detect_interval,
    find_gaps,
    finish,
)

M = 60 * 10**9


def bars(ts, close=None, symbols=("X",), codes=None, **over) -> RawRows:
    ts = np.asarray(ts, dtype=np.int64)
    n = ts.size
    c = np.asarray(close if close is not None else np.arange(n) + 100.0, dtype=float)
    values = {"open": c.copy(), "high": c + 1, "low": c - 1, "close": c, "volume": np.ones(n)}
    values.update({k: np.asarray(v, dtype=float) for k, v in over.items()})
    return RawRows(
        "bars",
        ts,
        values,
        list(symbols),
        "mem.csv",
        lambda i: i + 2,  # a header line, then data
        codes=None if codes is None else np.asarray(codes, dtype=np.int32),
        optional={"trades": pa.array(np.arange(n), pa.int64())},
    )


def test_find_gaps_hand_made() -> None:
    ts = np.array([0, 1, 2, 5, 6, 10, 11]) * M  # missing 3,4 and 7,8,9
    assert find_gaps(ts, M) == GapReport(count_missing=5, largest_ns=3 * M, n_gaps=2)
    assert find_gaps(ts[:3], M) == GapReport(0, 0, 0)
    assert find_gaps(np.array([0]), M) == GapReport(0, 0, 0)
    # a step that is not a multiple of the interval: bars at 0 and 2.5m miss slots 1m and 2m
    assert find_gaps(np.array([0, 150 * 10**9]), M) == GapReport(2, 90 * 10**9, 1)
    with pytest.raises(ValueError):
        find_gaps(ts, 0)


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 400), min_size=1, max_size=120), st.sampled_from([1, 5, 60]))
def test_find_gaps_matches_set_difference(slots: set[int], step_s: int) -> None:
    interval = step_s * 10**9
    ts = np.array(sorted(slots), dtype=np.int64) * interval + 1_700_000_000 * 10**9
    rep = find_gaps(ts, interval)
    full = set(range(min(slots), max(slots) + 1))
    missing = sorted(full - slots)
    assert rep.count_missing == len(missing)
    # runs of consecutive missing slots
    runs = []
    for s in missing:
        if runs and runs[-1][1] == s - 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    assert rep.n_gaps == len(runs)
    assert rep.largest_ns == max((b - a + 1 for a, b in runs), default=0) * interval


def test_detect_interval() -> None:
    assert detect_interval(np.array([0, 5, 10, 20, 25]) * M) == 5 * M
    assert detect_interval(np.array([0])) is None
    assert detect_interval(np.array([3, 3, 3])) is None
    # steps across symbols are ignored
    ts = np.array([0, 60, 120, 0, 3600]) * 10**9
    same = np.array([True, True, False, True])
    assert detect_interval(ts, same) == 60 * 10**9


def test_finish_in_order_passes_values_through() -> None:
    raw = bars(np.arange(5) * M)
    table, interval, notes = finish(raw)
    assert table.schema.equals(BAR_SCHEMA)
    assert interval == M and notes == []
    assert table.column("close").to_pylist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert table.column("trades").to_pylist() == [0, 1, 2, 3, 4]
    assert table.column("quote_volume").null_count == 5


def test_tolerance_on_open_close() -> None:
    c = np.full(3, 100.0)
    ok = bars(np.arange(3) * M, close=c, high=c, open=c * (1 + 5e-10))
    finish(ok)  # within 1e-9 relative
    bad = bars(np.arange(3) * M, close=c, high=c, open=c * (1 + 1e-8))
    with pytest.raises(ValidationError) as e:
        finish(bad)
    assert "row 2" in str(e.value) and "'open'" in str(e.value)


def test_earliest_bad_row_is_reported() -> None:
    raw = bars(np.arange(6) * M)
    raw.values["volume"][4] = -1.0
    raw.values["high"][2] = 0.5  # high < low (and < open) on an earlier row
    with pytest.raises(ValidationError) as e:
        finish(raw)
    assert "row 4" in str(e.value)


def test_multi_symbol_order_newest_first_per_symbol() -> None:
    # B is oldest-first, A newest-first, rows interleaved
    ts = np.array([0, 2, 1, 1, 2, 0]) * M
    codes = [0, 1, 1, 0, 0, 1]  # symbols[0] = "B", symbols[1] = "A"
    raw = bars(ts, symbols=("B", "A"), codes=codes)
    table, interval, notes = finish(raw)
    assert table.column("symbol").to_pylist() == ["A"] * 3 + ["B"] * 3
    assert table.column("ts").to_pylist() == [0, M, 2 * M] * 2
    # A's rows in file order were 1,2,5 (closes 101,102,105): reversed
    assert table.column("close").to_pylist()[:3] == [105.0, 102.0, 101.0]
    assert notes == ["A: rows were newest-first; sorted"]
    assert interval == M


def test_multi_symbol_backwards_is_an_error() -> None:
    ts = np.array([0, 0, 2, 1, 1, 2]) * M
    raw = bars(ts, symbols=("A", "B"), codes=[0, 1, 0, 0, 1, 1])
    with pytest.raises(TimeOrderError) as e:
        finish(raw)
    assert "row 5" in str(e.value) and "(A)" in str(e.value)


def test_duplicates() -> None:
    raw = bars(np.array([0, 1, 1, 2]) * M, close=[100, 101, 101, 102])
    raw.optional["trades"] = pa.array([0, 1, 1, 2], pa.int64())
    table, _, notes = finish(raw)
    assert table.num_rows == 3 and notes == ["dropped 1 exact duplicate row"]
    raw2 = bars(np.array([0, 1, 1, 2]) * M, close=[100, 101, 101, 102])  # trades 1 vs 2 differ
    with pytest.raises(DuplicateTimestampError) as e:
        finish(raw2)
    assert "row 4" in str(e.value) and "'trades'" in str(e.value)


def test_ffill_multi_symbol() -> None:
    ts = np.array([0, 3, 4, 0, 1, 3]) * M
    raw = bars(ts, symbols=("A", "B"), codes=[0, 0, 0, 1, 1, 1], close=[10, 13, 14, 20, 21, 23])
    table, interval, notes = finish(raw, fill="ffill")
    assert interval == M
    assert "gaps: 3 missing bars in 2 places, largest 2m (interval 1m)" in notes
    t = table.to_pydict()
    assert t["symbol"] == ["A"] * 5 + ["B"] * 4
    assert t["ts"] == [0, M, 2 * M, 3 * M, 4 * M, 0, M, 2 * M, 3 * M]
    assert t["close"] == [10, 10, 10, 13, 14, 20, 21, 21, 23]
    assert t["open"][1:3] == [10, 10] and t["high"][7] == 21 and t["low"][7] == 21
    assert t["volume"] == [1, 0, 0, 1, 1, 1, 1, 0, 1]
    assert t["trades"] == [0, 0, 0, 1, 2, 3, 4, 0, 5]  # inserted bars: no trades
    assert t["quote_volume"] == [None] * 9  # a column the source lacks stays null
    # the unfilled table has no inserted rows
    plain, _, _ = finish(raw)
    assert plain.num_rows == 6


def test_empty_rows() -> None:
    with pytest.raises(EmptyFileError):
        finish(bars(np.array([], dtype=np.int64)))


def test_unknown_fill_policy() -> None:
    with pytest.raises(ValueError):
        finish(bars(np.arange(3) * M), fill="bfill")
