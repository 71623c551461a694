"""Turning file timestamps into int64 nanoseconds since the epoch, UTC.

* Epoch numbers: the unit is told by magnitude, element by element, so a file whose rows
  switch from milliseconds to microseconds (Binance spot, 2025-01-01) still converts:
  ``|x| < 1e11`` seconds, ``< 1e14`` milliseconds, ``< 1e17`` microseconds, else nanoseconds
  (1e11 s is the year 5138; 1e14 ms is 5138 too, and so on).
* Strings: ISO 8601 (``2021-12-31 23:01:00.000000``, ``2021-12-31T23:01:00Z``, with an offset,
  or a bare date); naive times are UTC. Epoch numbers written as text are accepted too.
* Arrow timestamps (any unit, with or without a zone), dates: converted exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quantarena.data.errors import ParseError

_UNITS = (("s", 1_000_000_000), ("ms", 1_000_000), ("µs", 1_000), ("ns", 1))
_LIMITS = (1e11, 1e14, 1e17)
_INTEGER_TEXT = re.compile(r"^-?\d+(\.\d+)?$")


def epoch_to_ns(
    values: np.ndarray,
    *,
    path: str | None = None,
    field: str | None = None,
    locate: Callable[[int], int] | None = None,
) -> tuple[np.ndarray, str]:
    """Convert epoch numbers (int or float) to int64 ns, choosing the unit by magnitude.

    Returns the ns array and a note naming the unit(s) found (e.g. ``"milliseconds"``).
    A number whose time falls outside int64 nanoseconds (before 1677 or after 2262), or a
    NaN or infinite float, raises :class:`ParseError` naming the row (via ``locate``).
    """
    v = np.asarray(values)
    if v.size == 0:
        return v.astype(np.int64), "none"
    a = np.abs(v)
    idx = np.searchsorted(np.asarray(_LIMITS), a, side="right")
    mult = np.asarray([u[1] for u in _UNITS], dtype=np.int64)[idx]
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~np.isfinite(a) if np.issubdtype(v.dtype, np.floating) else np.zeros(v.shape, bool)
        bad |= a.astype(np.float64) * mult >= _MAX_NS
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ParseError(
            f"time {v[i].item()!r} is not between 1677 and 2262 (as epoch "
            f"{_UNIT_WORDS[min(int(idx[i]), 3)]})",
            path=path,
            row=locate(i) if locate is not None else None,
            field=field,
            hint="fix or drop the row",
        )
    lo, hi = a.min(), a.max()
    if _unit_index(lo) == _unit_index(hi):
        i = _unit_index(hi)
        return _scale(v, _UNITS[i][1]), _UNIT_WORDS[i]
    if np.issubdtype(v.dtype, np.integer):
        out = v.astype(np.int64) * mult
    else:
        out = np.round(v * mult).astype(np.int64)
    found = sorted(set(np.unique(idx).tolist()))
    return out, "mixed " + " and ".join(_UNIT_WORDS[i] for i in found)


#: int64 nanoseconds reach 2262-04-11; times at or beyond (in magnitude) do not fit
_MAX_NS = float(np.iinfo(np.int64).max) - 1024.0


_UNIT_WORDS = ("seconds", "milliseconds", "microseconds", "nanoseconds")


def _unit_index(x: float) -> int:
    for i, lim in enumerate(_LIMITS):
        if x < lim:
            return i
    return 3


def _scale(v: np.ndarray, mult: int) -> np.ndarray:
    if np.issubdtype(v.dtype, np.integer):
        return v.astype(np.int64, copy=False) * np.int64(mult) if mult != 1 else v.astype(np.int64)
    return np.round(v * mult).astype(np.int64)


def arrow_time_to_ns(
    arr: pa.Array | pa.ChunkedArray,
    *,
    field: str,
    path: str,
    locate: Callable[[int], int],
    formats: Sequence[str] = (),
) -> tuple[np.ndarray, str | None]:
    """Convert an Arrow column holding times (timestamp, date, number or string) to int64 ns UTC.

    ``formats`` are extra ``strptime`` formats tried on strings before ISO 8601 (e.g.
    ``"%Y-%m-%d %I-%p"`` for CryptoDataDownload). Returns ``(ns, note)``; the note names the
    epoch unit when the column held numbers. Raises :class:`ParseError` naming the first row
    whose text is not a time.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if arr.null_count:
        i = _first_null(arr)
        raise ParseError(
            "time is missing", path=path, row=locate(i), field=field, hint="fill or drop the row"
        )
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        try:
            ns = arr.cast(pa.timestamp("ns", tz=getattr(t, "tz", None)))
        except pa.ArrowInvalid:  # a time that int64 nanoseconds cannot hold
            return _arrow_out_of_range(arr, path=path, field=field, locate=locate)
        return ns.cast(pa.int64()).to_numpy(zero_copy_only=False), None
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        v = arr.to_numpy(zero_copy_only=False)
        if pa.types.is_floating(t) and not np.all(np.isfinite(v)):
            i = int(np.flatnonzero(~np.isfinite(v))[0])
            raise ParseError(
                f"time {float(v[i])!r} is not a number",
                path=path,
                row=locate(i),
                field=field,
                hint="fix or drop the row",
            )
        ns, unit = epoch_to_ns(v, path=path, field=field, locate=locate)
        return ns, f"timestamps in {unit}"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return parse_time_strings(arr, field=field, path=path, locate=locate, formats=formats)
    raise ParseError(
        f"column type {t} is not a time",
        path=path,
        field=field,
        hint="pass a mapping to a time column",
    )


def parse_time_strings(
    arr: pa.Array,
    *,
    field: str,
    path: str,
    locate: Callable[[int], int],
    formats: Sequence[str] = (),
) -> tuple[np.ndarray, str | None]:
    """Parse a string column of times to int64 ns UTC (see :func:`arrow_time_to_ns`)."""
    if len(arr) and _INTEGER_TEXT.match(str(arr[0].as_py()).strip()):
        # epoch numbers written as text
        for typ in (pa.int64(), pa.float64()):
            try:
                nums = pc.cast(pc.utf8_trim_whitespace(arr), typ)
            except pa.ArrowInvalid:
                continue
            ns, unit = epoch_to_ns(
                nums.to_numpy(zero_copy_only=False), path=path, field=field, locate=locate
            )
            return ns, f"timestamps in {unit}"
    if not formats:
        for typ in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
            try:  # the common case, without copying: clean ISO 8601
                return arr.cast(typ).cast(pa.int64()).to_numpy(zero_copy_only=False), None
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
    arr = pc.utf8_trim_whitespace(arr)
    for fmt in formats:
        try:
            out = pc.strptime(arr, format=fmt, unit="ns", error_is_null=False)
            return out.cast(pa.int64()).to_numpy(zero_copy_only=False), None
        except (pa.ArrowInvalid, NotImplementedError):
            continue
    for typ in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            return arr.cast(typ).cast(pa.int64()).to_numpy(zero_copy_only=False), None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    # slow path: pandas' ISO 8601 parser copes with mixed offsets; find the first bad row
    texts = arr.to_pandas()
    for fmt in [*formats, "ISO8601"]:
        parsed = pd.to_datetime(texts, format=fmt, utc=True, errors="coerce")
        bad = parsed.isna().to_numpy()
        if not bad.any():
            return _pandas_ns(parsed, texts, path=path, field=field, locate=locate), None
    # report the first row that none of the formats could read
    bad_all = np.ones(len(texts), dtype=bool)
    for fmt in [*formats, "ISO8601"]:
        bad_all &= pd.to_datetime(texts, format=fmt, utc=True, errors="coerce").isna().to_numpy()
    i = int(np.flatnonzero(bad_all)[0]) if bad_all.any() else 0
    if not bad_all.any():
        want = " or ".join([*formats, "ISO 8601"])
        raise ParseError(
            f"times mix several formats ({want})",
            path=path,
            field=field,
            hint="write all times in one format",
        )
    want = " or ".join([*formats, "ISO 8601"])
    raise ParseError(
        f"cannot read time {texts.iloc[i]!r} (expected {want})",
        path=path,
        row=locate(i),
        field=field,
        hint="fix or drop the row, or pass a mapping to the right time column",
    )


def _arrow_out_of_range(
    arr: pa.Array, *, path: str, field: str, locate: Callable[[int], int]
) -> tuple[np.ndarray, str | None]:
    """Raise :class:`ParseError` naming the first Arrow time outside 1677–2262."""
    lo = pa.scalar(pd.Timestamp.min.value, pa.timestamp("ns")).cast(pa.timestamp("us"))
    hi = pa.scalar(pd.Timestamp.max.value, pa.timestamp("ns")).cast(pa.timestamp("us"))
    as_us = arr.cast(pa.timestamp("us", tz=getattr(arr.type, "tz", None)), safe=False)
    if as_us.type.tz is not None:
        as_us = as_us.cast(pa.timestamp("us"))
    bad = pc.or_(pc.less(as_us, lo), pc.greater(as_us, hi)).to_numpy(zero_copy_only=False)
    i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
    raise ParseError(
        f"time {arr[i].as_py()!s} is not between 1677 and 2262",
        path=path,
        row=locate(i),
        field=field,
        hint="fix or drop the row",
    )


def _pandas_ns(
    parsed: pd.Series,
    texts: pd.Series,
    *,
    path: str,
    field: str,
    locate: Callable[[int], int],
) -> np.ndarray:
    """Parsed UTC times (any pandas unit) as int64 ns; a time outside 1677–2262 raises
    :class:`ParseError` naming its row."""
    naive = parsed.dt.tz_localize(None)
    lo, hi = pd.Timestamp.min, pd.Timestamp.max
    out_of_range = ((naive < lo) | (naive > hi)).to_numpy()
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise ParseError(
            f"time {texts.iloc[i]!r} is not between 1677 and 2262",
            path=path,
            row=locate(i),
            field=field,
            hint="fix or drop the row",
        )
    return naive.astype("datetime64[ns]").to_numpy().view(np.int64).copy()


def _first_null(arr: pa.Array) -> int:
    mask = pc.is_null(arr).to_numpy(zero_copy_only=False)
    return int(np.flatnonzero(mask)[0])
