"""Validation of loaded rows, put in canonical order: the rules every file must pass.

Loaders parse a file into :class:`RawRows` (columns in file order) and call :func:`finish`,
which

1. checks values, vectorised (the offending row is looked up only after a check fails):
   bars need finite prices > 0, ``low <= high``, open and close inside ``[low, high]`` (relative
   tolerance 1e-9), volume >= 0; trades need price > 0 and qty > 0;
2. orders rows by (symbol, ts): time must not go backwards inside a symbol, except in a symbol
   whose rows are wholly newest-first, which are reversed (and a note says so);
3. drops exact duplicate bars (same symbol and ts, same values: noted) and rejects conflicting
   ones (:class:`DuplicateTimestampError`); trades may share a timestamp;
4. detects the bar interval (the most common positive ts step), reports gaps (never filled
   silently) and, with ``fill="ffill"``, inserts the missing bars (OHLC = previous close,
   volumes 0).

Errors are the typed errors of :mod:`quantarena.data.errors`; their row numbers are 1-based
line numbers of the source file (header and comment lines counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quantarena.data.errors import (
    DuplicateTimestampError,
    EmptyFileError,
    TimeOrderError,
    ValidationError,
)
from quantarena.data.intervals import interval_str
from quantarena.data.schema import BAR_SCHEMA, OHLC, TRADE_SCHEMA, Kind

PRICE_RTOL = 1e-9
FILL_POLICIES: tuple[str, ...] = ("none", "ffill")
_BAR_OPTIONAL = ("quote_volume", "trades", "taker_buy_volume")


@dataclass(frozen=True)
class GapReport:
    """Missing bars in a series of bar open times.

    ``count_missing``: bars absent between the first and the last bar; ``largest_ns``: the
    longest stretch without bars, in ns (``step - interval`` of the largest step, so one missing
    1m bar is 60e9); ``n_gaps``: how many places bars are missing.
    """

    count_missing: int
    largest_ns: int
    n_gaps: int

    def __add__(self, other: GapReport) -> GapReport:
        return GapReport(
            self.count_missing + other.count_missing,
            max(self.largest_ns, other.largest_ns),
            self.n_gaps + other.n_gaps,
        )


NO_GAPS = GapReport(0, 0, 0)


def find_gaps(ts: np.ndarray, interval_ns: int) -> GapReport:
    """Gaps in ``ts`` (int64 ns bar open times, ascending, one symbol) for bars of ``interval_ns``.

    A step ``d > interval_ns`` between consecutive bars misses ``ceil(d / interval_ns) - 1`` bars
    (exact multiples: ``d / interval_ns - 1``).
    """
    if interval_ns <= 0:
        raise ValueError(f"interval_ns must be positive, got {interval_ns}")
    ts = np.asarray(ts, dtype=np.int64)
    if ts.size < 2:
        return NO_GAPS
    d = np.diff(ts)
    big = d > interval_ns
    if not big.any():
        return NO_GAPS
    dg = d[big]
    missing = (dg - 1) // interval_ns
    return GapReport(int(missing.sum()), int(dg.max() - interval_ns), int(big.sum()))


def detect_interval(ts: np.ndarray, same_symbol: np.ndarray | None = None) -> int | None:
    """The most common positive step of ``ts`` (sorted per symbol); None if there is none.

    ``same_symbol[i]`` tells whether rows i and i+1 belong to the same symbol (steps across
    symbols are ignored).
    """
    d = np.diff(np.asarray(ts, dtype=np.int64))
    keep = d > 0
    if same_symbol is not None:
        keep &= same_symbol
    d = d[keep]
    if d.size == 0:
        return None
    guess = d[d.size // 2]
    if 2 * int(np.count_nonzero(d == guess)) > d.size:
        return int(guess)
    vals, counts = np.unique(d, return_counts=True)
    return int(vals[np.argmax(counts)])  # ties: the smallest step


@dataclass
class RawRows:
    """Rows of one file as parsed, in file order, before validation.

    ``ts`` int64 ns; ``values`` the required numeric columns (bars: open, high, low, close,
    volume as float64; trades: price, qty float64, side int8); ``optional`` nullable columns
    (bars: quote_volume, trades, taker_buy_volume; trades: trade_id) as Arrow arrays, absent =
    all null. ``codes[i]`` indexes ``symbols`` (None: every row is ``symbols[0]``). ``locate``
    maps a row index to the 1-based source line; ``fields`` maps canonical names to the
    file's column names for error messages.
    """

    kind: Kind
    ts: np.ndarray
    values: dict[str, np.ndarray]
    symbols: list[str]
    path: str
    locate: Callable[[int], int]
    codes: np.ndarray | None = None
    optional: dict[str, pa.Array] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def field_name(self, canonical: str) -> str:
        return self.fields.get(canonical, canonical)

    def take(self, idx: np.ndarray) -> RawRows:
        """These rows reordered/subset by ``idx``; error rows still point at the source lines."""
        idx = np.asarray(idx, dtype=np.int64)
        base = self.locate

        def locate(i: int) -> int:
            return base(int(idx[i]))

        return RawRows(
            self.kind,
            self.ts[idx],
            {k: v[idx] for k, v in self.values.items()},
            list(self.symbols),
            self.path,
            locate,
            codes=None if self.codes is None else self.codes[idx],
            optional={k: a.take(pa.array(idx)) for k, a in self.optional.items()},
            fields=dict(self.fields),
            notes=list(self.notes),
        )


def fmt_ts(ns: int) -> str:
    """``ns`` since the epoch as ``YYYY-MM-DD HH:MM:SS[.fff]`` UTC."""
    s = str(np.datetime64(int(ns), "ns"))
    s = s.replace("T", " ")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def fmt_span(ns: int) -> str:
    """A duration in ns as a short interval string (``15m``, ``3d``, ``90s``)."""
    return interval_str(int(ns)) if ns > 0 else "0s"


# ----------------------------------------------------------------------------------------
# 1. values


def check_values(raw: RawRows) -> None:
    """Raise :class:`ValidationError` for the first (in file order) row that breaks a value rule."""
    problems: list[tuple[int, str, str]] = []  # (row index, field, reason)

    def first(mask: np.ndarray, fld: str, reason: Callable[[int], str]) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            problems.append((i, fld, reason(i)))

    v = raw.values
    if raw.kind == "bars":
        o, h, lo, c_ = v["open"], v["high"], v["low"], v["close"]
        # fast path: one combined mask; the rules below run only to name the first bad row
        hi_t, lo_t = h * (1 + PRICE_RTOL), lo * (1 - PRICE_RTOL)
        ok = (lo > 0) & (h >= lo) & (o >= lo_t) & (o <= hi_t) & (c_ >= lo_t) & (c_ <= hi_t)
        ok &= (v["volume"] >= 0) & np.isfinite(h) & np.isfinite(v["volume"])
        if not ok.all():
            for c in OHLC:
                x = v[c]
                first(~(x > 0) | np.isinf(x), c, lambda i, x=x, c=c: _bad_price(c, x[i]))
            first(h < lo, "high", lambda i: f"high {_num(h[i])} < low {_num(lo[i])}")
            for name, x in (("open", o), ("close", c_)):
                first(
                    (x > hi_t) | (x < lo_t),
                    name,
                    lambda i, x=x, name=name: (
                        f"{name} {_num(x[i])} outside [low {_num(lo[i])}, high {_num(h[i])}]"
                    ),
                )
            vol = v["volume"]
            first(
                ~(vol >= 0) | np.isinf(vol),
                "volume",
                lambda i: _bad_amount("volume", vol[i], allow_zero=True),
            )
        for name in ("quote_volume", "taker_buy_volume", "trades"):
            arr = raw.optional.get(name)
            if arr is None or arr.null_count == len(arr):
                continue
            if pc.min(arr).as_py() >= 0:
                continue
            x = arr.to_numpy(zero_copy_only=False).astype(np.float64)
            first(x < 0, name, lambda i, x=x, name=name: f"{name} {_num(x[i])} is negative")
    else:
        for name in ("price", "qty"):
            x = v[name]
            first(~(x > 0) | np.isinf(x), name, lambda i, x=x, name=name: _bad_amount(name, x[i]))
    if problems:
        i, fld, reason = min(problems, key=lambda p: p[0])
        raise ValidationError(
            reason,
            path=raw.path,
            row=raw.locate(i),
            field=raw.field_name(fld),
            hint="fix or drop the row, then ingest again",
        )


def _num(x: object) -> str:
    """A number for a message: ``101.5``, not ``np.float64(101.5)``."""
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return repr(x)
    return repr(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)


def _bad_price(name: str, x: float) -> str:
    if np.isnan(x):
        return f"{name} is missing or NaN"
    if np.isinf(x):
        return f"{name} is infinite"
    return f"{name} {_num(x)} is not positive"


def _bad_amount(name: str, x: float, allow_zero: bool = False) -> str:
    if np.isnan(x):
        return f"{name} is missing or NaN"
    if np.isinf(x):
        return f"{name} is infinite"
    return f"{name} {_num(x)} is negative" if allow_zero else f"{name} {_num(x)} is not positive"


# ----------------------------------------------------------------------------------------
# 2. order


def order_rows(raw: RawRows) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """Return ``(index, codes, notes)``: row indices putting the rows in (symbol, ts) order
    (None when already in order), the symbol codes in that order (symbols sorted by name), and
    notes. Raises :class:`TimeOrderError` where time goes backwards in a symbol that is not
    wholly newest-first.
    """
    ts = raw.ts
    notes: list[str] = []
    if raw.codes is None or len(raw.symbols) == 1:
        d = np.diff(ts)
        if d.size == 0 or not (d < 0).any():
            return None, None, notes
        if not (d > 0).any():
            notes.append("file was newest-first; sorted")
            return np.arange(len(ts) - 1, -1, -1), None, notes
        j = int(np.argmax(d < 0))
        _raise_backwards(raw, j, j + 1)
    # several symbols: group them (stable), names in alphabetical order
    names = raw.symbols
    rank = np.argsort(np.argsort(np.asarray(names, dtype=object), kind="stable"))
    codes = rank.astype(np.int32)[raw.codes]
    perm = np.argsort(codes, kind="stable")
    cg = codes[perm]
    tg = ts[perm]
    d = np.diff(tg)
    same = cg[1:] == cg[:-1]
    neg = (d < 0) & same
    if not neg.any():
        if np.array_equal(perm, np.arange(len(perm))):
            return None, codes, notes
        return perm, codes[perm], notes
    pos = (d > 0) & same
    bounds = np.flatnonzero(np.r_[True, ~same, True])  # group starts ... end
    reversed_syms: list[str] = []
    worst: tuple[int, int, int] | None = None  # (file row of the later one, prev idx, idx)
    pieces = []
    sorted_names = sorted(names)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        seg = perm[a:b]
        if b - a > 1 and neg[a : b - 1].any():
            if not pos[a : b - 1].any():
                seg = seg[::-1]
                reversed_syms.append(sorted_names[cg[a]])
            else:
                j = a + int(np.argmax(neg[a : b - 1]))
                cand = (int(perm[j + 1]), int(perm[j]), int(perm[j + 1]))
                if worst is None or cand[0] < worst[0]:
                    worst = cand
        pieces.append(seg)
    if worst is not None:
        _raise_backwards(raw, worst[1], worst[2])
    who = (
        "file was" if len(reversed_syms) == len(names) else f"{', '.join(reversed_syms)}: rows were"
    )
    notes.append(f"{who} newest-first; sorted")
    idx = np.concatenate(pieces)
    return idx, codes[idx], notes


def _raise_backwards(raw: RawRows, prev: int, cur: int) -> None:
    sym = ""
    if raw.codes is not None and len(raw.symbols) > 1:
        sym = f" ({raw.symbols[raw.codes[cur]]})"
    raise TimeOrderError(
        f"time goes backwards{sym}: {fmt_ts(raw.ts[cur])} comes after {fmt_ts(raw.ts[prev])} "
        f"(row {raw.locate(prev)})",
        path=raw.path,
        row=raw.locate(cur),
        field=raw.field_name("ts"),
        hint="keep rows in time order (oldest first, or the whole file newest-first), "
        "or fix the row",
    )


# ----------------------------------------------------------------------------------------
# 3. duplicates


def drop_duplicates(
    raw: RawRows, idx: np.ndarray, codes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Drop bars repeating the previous bar exactly (same symbol, ts and values); raise
    :class:`DuplicateTimestampError` where the values differ. ``idx`` orders the rows."""
    ts = raw.ts[idx]
    d = np.diff(ts)
    dup = d == 0
    if codes is not None:
        dup &= codes[1:] == codes[:-1]
    if not dup.any():
        return idx, codes, []
    j = np.flatnonzero(dup)  # row j+1 repeats row j (sorted order)
    a, b = idx[j], idx[j + 1]
    differs = np.zeros(j.size, dtype=bool)
    first_field = np.full(j.size, "", dtype=object)
    cols: list[tuple[str, np.ndarray]] = [(k, v) for k, v in raw.values.items()]
    for k, arr in raw.optional.items():
        cols.append((k, arr.to_numpy(zero_copy_only=False).astype(np.float64)))
    for name, x in cols:
        xa, xb = x[a], x[b]
        ne = ~((xa == xb) | (np.isnan(xa) & np.isnan(xb)))
        first_field[ne & ~differs] = name
        differs |= ne
    if differs.any():
        # report the conflict that comes first in the file
        k = np.flatnonzero(differs)
        later = np.maximum(a[k], b[k])
        m = int(np.argmin(later))
        ia, ib = int(min(a[k[m]], b[k[m]])), int(later[m])
        name = str(first_field[k[m]])
        x = dict(cols)[name]
        raise DuplicateTimestampError(
            f"two rows at {fmt_ts(raw.ts[ib])} differ: {name} {_num(x[ia])} (row {raw.locate(ia)}) "
            f"vs {_num(x[ib])}",
            path=raw.path,
            row=raw.locate(ib),
            field=raw.field_name(name),
            hint="keep one of the two rows, then ingest again",
        )
    keep = np.ones(idx.size, dtype=bool)
    keep[j + 1] = False
    note = f"dropped {j.size} exact duplicate row{'s' if j.size != 1 else ''}"
    return idx[keep], (codes[keep] if codes is not None else None), [note]


# ----------------------------------------------------------------------------------------
# 4. gaps and fill


def _group_bounds(codes: np.ndarray | None, n: int) -> np.ndarray:
    if codes is None or n == 0:
        return np.array([0, n])
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.r_[0, change, n]


def gap_report(ts: np.ndarray, codes: np.ndarray | None, interval_ns: int) -> GapReport:
    """:func:`find_gaps` summed over the symbols of rows sorted by (symbol, ts)."""
    rep = NO_GAPS
    bounds = _group_bounds(codes, ts.size)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        rep = rep + find_gaps(ts[a:b], interval_ns)
    return rep


def ffill_positions(
    ts: np.ndarray, codes: np.ndarray | None, interval_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Missing bars of sorted rows: ``(source, new_ts)`` where ``source`` is the index of the bar
    before each missing one (whose close fills it) and ``new_ts`` its open time."""
    d = np.diff(ts)
    big = d > interval_ns
    if codes is not None:
        big &= codes[1:] == codes[:-1]
    j = np.flatnonzero(big)
    if j.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    k = (d[j] - 1) // interval_ns
    src = np.repeat(j, k)
    starts = np.cumsum(k) - k
    step = np.arange(src.size, dtype=np.int64) - np.repeat(starts, k) + 1
    return src, ts[src] + step * interval_ns


# ----------------------------------------------------------------------------------------
# 5. the whole path


def finish(raw: RawRows, fill: str = "none") -> tuple[pa.Table, int | None, list[str]]:
    """Validate ``raw`` and return ``(table, interval_ns, notes)`` with ``table`` in
    ``BAR_SCHEMA`` / ``TRADE_SCHEMA`` sorted by (symbol, ts). See the module docstring."""
    if fill not in FILL_POLICIES:
        raise ValueError(f"unknown fill policy {fill!r}: use one of {', '.join(FILL_POLICIES)}")
    if raw.kind not in ("bars", "trades"):
        # quotes and book rows are validated by their kind module
        raise ValueError(
            f"RawRows hold bars or trades, not {raw.kind!r}: use "
            "quantarena.data.kinds.base.finish_table for other kinds"
        )
    if len(raw) == 0:
        raise EmptyFileError("no data rows", path=raw.path, hint="check the file is complete")
    notes = list(raw.notes)
    check_values(raw)
    idx, codes, more = order_rows(raw)
    notes += more
    if raw.kind == "bars":
        base = idx if idx is not None else np.arange(len(raw))
        new_idx, codes2, more = drop_duplicates(raw, base, codes)
        if more:
            idx, codes = new_idx, codes2
            notes += more
    ts = raw.ts if idx is None else raw.ts[idx]
    multi = raw.codes is not None and len(raw.symbols) > 1
    symbols = sorted(raw.symbols) if multi else raw.symbols[:1]
    if not multi:
        codes = None
    cols: dict[str, np.ndarray | pa.Array] = {
        k: (v if idx is None else v[idx]) for k, v in raw.values.items()
    }
    opt: dict[str, pa.Array] = {
        k: (a if idx is None else a.take(pa.array(idx))) for k, a in raw.optional.items()
    }
    interval: int | None = None
    if raw.kind == "bars":
        same = None if codes is None else codes[1:] == codes[:-1]
        interval = detect_interval(ts, same)
        if interval is not None:
            rep = gap_report(ts, codes, interval)
            if rep.count_missing:
                notes.append(
                    f"gaps: {rep.count_missing} missing bar{'s' if rep.count_missing != 1 else ''}"
                    f" in {rep.n_gaps} place{'s' if rep.n_gaps != 1 else ''}, largest "
                    f"{fmt_span(rep.largest_ns)} (interval {fmt_span(interval)})"
                )
            if fill == "ffill" and rep.count_missing:
                limit = max(10 * ts.size, 1_000_000)
                if rep.count_missing > limit:
                    raise ValidationError(
                        f"ffill would insert {rep.count_missing} bars into {ts.size} "
                        f"(interval {fmt_span(interval)})",
                        path=raw.path,
                        hint="check the interval, or ingest without --fill",
                    )
                ts, codes, cols, opt = _ffill(ts, codes, cols, opt, interval)
                notes.append(
                    f"ffill: inserted {rep.count_missing} bars (OHLC = previous close, volume 0)"
                )
    table = _build_table(raw.kind, ts, codes, symbols, cols, opt)
    return table, interval, notes


def _ffill(ts, codes, cols, opt, interval):
    src, new_ts = ffill_positions(ts, codes, interval)
    n_new = src.size
    close = cols["close"][src]
    add = {c: close for c in OHLC}
    add["volume"] = np.zeros(n_new)
    all_ts = np.concatenate([ts, new_ts])
    if codes is not None:
        all_codes = np.concatenate([codes, codes[src]])
        order = np.lexsort((all_ts, all_codes))
        codes = all_codes[order]
    else:
        order = np.argsort(all_ts, kind="stable")
    cols = {k: np.concatenate([v, add[k]])[order] for k, v in cols.items()}
    new_opt = {}
    for k, a in opt.items():
        filler = (
            pa.nulls(n_new, a.type)
            if a.null_count == len(a)
            else pa.array(np.zeros(n_new), pa.float64()).cast(a.type)
        )
        new_opt[k] = pa.concat_arrays([a, filler]).take(pa.array(order))
    return all_ts[order], codes, cols, new_opt


def _build_table(kind, ts, codes, symbols, cols, opt) -> pa.Table:
    n = ts.size
    if codes is None:
        sym = pa.repeat(pa.scalar(symbols[0], pa.string()), n)
    else:
        sym = pa.array(np.asarray(symbols, dtype=object)).take(pa.array(codes))
    schema = BAR_SCHEMA if kind == "bars" else TRADE_SCHEMA
    arrays = []
    for f in schema:
        if f.name == "symbol":
            arrays.append(sym)
        elif f.name == "ts":
            arrays.append(pa.array(ts, pa.int64()))
        elif f.name in cols:
            arrays.append(pa.array(cols[f.name], f.type))
        elif f.name in opt:
            arrays.append(opt[f.name].cast(f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
