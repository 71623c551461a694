"""Resample bars to a coarser interval, vectorised (``np.*.reduceat``).

Buckets are UTC-aligned: a source bar with open time ``ts`` falls in the bucket that
starts at ``floor((ts - origin) / to_ns) * to_ns + origin``. ``origin`` is the epoch
(1970-01-01 00:00 UTC), so ``1h`` buckets start on the hour and ``1d`` buckets at
00:00 UTC, except for whole weeks, which start on Monday 00:00 UTC (the epoch was a
Thursday; Binance's ``1w`` klines also open on Mondays).

Aggregation: open = first, high = max, low = min, close = last; volume and every
"extra" column (quote_volume, trades, taker_buy_volume) = sum. Buckets without any
source bar are not invented: the output only has buckets that hold data. A bucket
may hold fewer source bars than it could (a gap): :attr:`Resampled.count` says how
many it holds.

A source bar must lie wholly inside one bucket (``[ts, ts + from_ns)`` may not cross
a bucket boundary) and ``to_ns`` must be a whole multiple of ``from_ns``; otherwise
:func:`resample_bars` raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from quantarena.data.intervals import interval_ns, interval_str

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

DAY_NS = 86_400 * 1_000_000_000
WEEK_NS = 7 * DAY_NS
#: 1970-01-05 00:00 UTC, the first Monday after the epoch: the origin of weekly buckets.
MONDAY_ORIGIN_NS = 4 * DAY_NS

#: optional bar columns that are summed when resampling
SUM_COLUMNS: tuple[str, ...] = ("quote_volume", "trades", "taker_buy_volume")


def default_origin(to_ns: int) -> int:
    """The bucket origin used for ``to_ns``: Monday 00:00 UTC for whole weeks, else the epoch."""
    return MONDAY_ORIGIN_NS if to_ns % WEEK_NS == 0 else 0


def bucket_start(ts: np.ndarray, to_ns: int, origin_ns: int = 0) -> np.ndarray:
    """Start (ns, UTC) of the ``to_ns`` bucket holding each time in ``ts``."""
    ts = np.asarray(ts, dtype=np.int64)
    return (ts - origin_ns) // to_ns * to_ns + origin_ns


@dataclass
class Resampled:
    """Resampled bars. Arrays have the input's trailing shape: ``(B,)`` or ``(B, A)``.

    ``count`` is ``(B,)``: how many source bars each bucket holds.
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def _check_interval(from_ns: int, to_ns: int) -> None:
    if to_ns < from_ns or to_ns % from_ns != 0:
        raise ValueError(
            f"cannot resample {interval_str(from_ns)} bars to {interval_str(to_ns)}: "
            f"the target interval must be a whole multiple of {interval_str(from_ns)}"
        )


def group_starts(keys: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values begins in the sorted 1-D ``keys``."""
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    flags = np.empty(n, dtype=bool)
    flags[0] = True
    np.not_equal(keys[1:], keys[:-1], out=flags[1:])
    return np.flatnonzero(flags)


def resample_bars(
    ts: np.ndarray,
    open: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    from_ns: int | str,
    to_ns: int | str,
    *,
    extra: dict[str, np.ndarray] | None = None,
    origin_ns: int | None = None,
) -> Resampled:
    """Aggregate bars of length ``from_ns`` into buckets of length ``to_ns``.

    Args:
        ts: ``(T,)`` int64 bar open times (ns, UTC), strictly increasing.
        open, high, low, close, volume: ``(T,)`` or ``(T, A)`` float arrays (2-D inputs
            must be complete: a NaN propagates into its bucket).
        from_ns, to_ns: source and target intervals (ns or strings like ``"1m"``);
            ``to_ns`` must be a whole multiple of ``from_ns``.
        extra: further columns to sum per bucket (e.g. quote_volume, trades).
        origin_ns: bucket origin; default :func:`default_origin` (epoch, or Monday for weeks).

    Returns:
        :class:`Resampled` whose ``ts`` are the bucket start times.
    """
    f_ns, t_ns = interval_ns(from_ns), interval_ns(to_ns)
    _check_interval(f_ns, t_ns)
    origin = default_origin(t_ns) if origin_ns is None else int(origin_ns)
    ts = np.asarray(ts, dtype=np.int64)
    n = ts.shape[0]
    if n > 1 and not np.all(ts[1:] > ts[:-1]):
        i = int(np.flatnonzero(ts[1:] <= ts[:-1])[0]) + 1
        raise ValueError(f"bar times must be strictly increasing (row {i} is not)")
    b = bucket_start(ts, t_ns, origin)
    if n and not np.array_equal(b, bucket_start(ts + (f_ns - 1), t_ns, origin)):
        i = int(np.flatnonzero(b != bucket_start(ts + (f_ns - 1), t_ns, origin))[0])
        raise ValueError(
            f"the {interval_str(f_ns)} bar at ts={int(ts[i])} crosses a "
            f"{interval_str(t_ns)} bucket boundary: its bars are not aligned to the target grid"
        )
    starts = group_starts(b)
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:] - 1
    if starts.size:
        ends[-1] = n - 1
    arrs = [np.asarray(a) for a in (open, high, low, close, volume)]
    for a in arrs:
        if a.shape[0] != n:
            raise ValueError(f"every array must have {n} rows (the length of ts), got {a.shape[0]}")
    o, h, lo, c, v = arrs

    def total(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        if not starts.size:
            return a[:0]
        return np.add.reduceat(a, starts, axis=0)

    if starts.size:
        hi_ = np.maximum.reduceat(h, starts, axis=0)
        lo_ = np.minimum.reduceat(lo, starts, axis=0)
    else:
        hi_, lo_ = h[:0], lo[:0]
    return Resampled(
        ts=b[starts],
        open=o[starts],
        high=hi_,
        low=lo_,
        close=c[ends],
        volume=total(v),
        count=np.diff(np.append(starts, n)).astype(np.int64),
        extra={k: total(x) for k, x in (extra or {}).items()},
    )


def _min_step(ts: np.ndarray) -> int:
    d = np.diff(ts)
    d = d[d > 0]
    if d.size == 0:
        raise ValueError("cannot infer the bar interval from fewer than 2 bars: pass from_=")
    return int(d.min())


def resample_table(table: pa.Table, to: int | str, *, from_: int | str | None = None) -> pa.Table:
    """Resample a table in :data:`~quantarena.data.schema.BAR_SCHEMA` (any number of
    symbols, each sorted by ts) to ``to``. Nulls in an optional column make that
    bucket's sum null. ``from_`` defaults to each symbol's smallest bar spacing."""
    import pyarrow as pa

    from quantarena.data.schema import BAR_SCHEMA

    table = table.select(list(BAR_SCHEMA.names)).cast(BAR_SCHEMA)
    t_ns = interval_ns(to)
    sym = table.column("symbol").to_numpy(zero_copy_only=False).astype(str)
    order = np.argsort(sym, kind="stable")
    if not np.array_equal(order, np.arange(order.size)):
        table = table.take(pa.array(order))
        sym = sym[order]
    bounds = np.append(group_starts(sym), sym.size)
    out: list[pa.Table] = []
    for lo_i, hi_i in zip(bounds[:-1], bounds[1:], strict=False):
        part = table.slice(int(lo_i), int(hi_i - lo_i))
        cols = {
            name: part.column(name).to_numpy().astype(np.float64, copy=False)
            if name != "ts"
            else part.column("ts").to_numpy()
            for name in ("ts", "open", "high", "low", "close", "volume")
        }
        extra = {
            name: np.asarray(part.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
            for name in SUM_COLUMNS
        }
        f_ns = interval_ns(from_) if from_ is not None else _min_step(cols["ts"])
        r = resample_bars(
            cols["ts"],
            cols["open"],
            cols["high"],
            cols["low"],
            cols["close"],
            cols["volume"],
            f_ns,
            t_ns,
            extra=extra,
        )
        nb = len(r)
        trades = r.extra["trades"]
        out.append(
            pa.table(
                {
                    "symbol": pa.array([str(sym[lo_i])] * nb, pa.string()),
                    "ts": r.ts,
                    "open": r.open,
                    "high": r.high,
                    "low": r.low,
                    "close": r.close,
                    "volume": r.volume,
                    "quote_volume": pa.array(
                        r.extra["quote_volume"], pa.float64(), from_pandas=True
                    ),
                    "trades": pa.array(
                        np.where(np.isnan(trades), 0, trades).astype(np.int64),
                        pa.int64(),
                        mask=np.isnan(trades),
                    ),
                    "taker_buy_volume": pa.array(
                        r.extra["taker_buy_volume"], pa.float64(), from_pandas=True
                    ),
                },
                schema=BAR_SCHEMA,
            )
        )
    if not out:
        return BAR_SCHEMA.empty_table()
    return pa.concat_tables(out)


def resample_frame(
    df: pd.DataFrame, to: int | str, *, from_: int | str | None = None
) -> pd.DataFrame:
    """Resample a bar DataFrame to ``to``.

    ``df`` has OHLCV columns, bar open times either in an int64-ns ``ts`` column or a
    ``DatetimeIndex``, and optionally a ``symbol`` column (each symbol is resampled on
    its own) and the summed columns quote_volume / trades / taker_buy_volume. The result
    has the same time representation (``ts`` column or a UTC ``DatetimeIndex`` named
    like the input's), sorted by symbol then time.
    """
    import pandas as pd

    t_ns = interval_ns(to)
    has_ts_col = "ts" in df.columns
    if has_ts_col:
        ts_all = df["ts"].to_numpy(dtype=np.int64)
    elif isinstance(df.index, pd.DatetimeIndex):
        idx = df.index if df.index.tz is not None else df.index.tz_localize("UTC")
        ts_all = idx.tz_convert("UTC").as_unit("ns").asi8
    else:
        raise ValueError("resample_frame needs a 'ts' column (int64 ns) or a DatetimeIndex")
    sums = [c for c in SUM_COLUMNS if c in df.columns]
    groups: list[tuple[Any, np.ndarray]]
    if "symbol" in df.columns:
        sym = df["symbol"].to_numpy()
        groups = [(s, np.flatnonzero(sym == s)) for s in sorted(pd.unique(sym))]
    else:
        groups = [(None, np.arange(len(df)))]
    frames = []
    for s, rows in groups:
        ts = ts_all[rows]
        order = np.argsort(ts, kind="stable")
        rows, ts = rows[order], ts[order]

        def col(name: str, rows: np.ndarray = rows) -> np.ndarray:
            return df[name].to_numpy(dtype=np.float64, na_value=np.nan)[rows]

        f_ns = interval_ns(from_) if from_ is not None else _min_step(ts)
        r = resample_bars(
            ts,
            col("open"),
            col("high"),
            col("low"),
            col("close"),
            col("volume"),
            f_ns,
            t_ns,
            extra={c: col(c) for c in sums},
        )
        data: dict[str, Any] = {}
        if s is not None:
            data["symbol"] = [s] * len(r)
        data["ts"] = r.ts
        data.update(open=r.open, high=r.high, low=r.low, close=r.close, volume=r.volume)
        data.update(r.extra)
        frames.append(pd.DataFrame(data))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["ts"])
    if not has_ts_col:
        name = df.index.name
        out.index = pd.DatetimeIndex(pd.to_datetime(out.pop("ts").to_numpy(), utc=True), name=name)
    return out
