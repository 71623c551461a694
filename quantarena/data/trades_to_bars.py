"""Build bars from trades: time bars, volume bars and dollar bars.

Every builder returns a table in :data:`~quantarena.data.schema.BAR_SCHEMA` whose
``ts`` is the bar's OPEN time, and fills:

* open / high / low / close: first / max / min / last trade price,
* volume = sum of qty (base units), quote_volume = sum of price × qty,
* trades = number of trade rows (an aggregate trade counts once),
* taker_buy_volume = sum of qty of the trades whose aggressor bought (side = +1).

Time bars (:func:`time_bars`) put a trade at time ``t`` in the bucket
``floor(t / interval) * interval`` (UTC-aligned, like :mod:`~quantarena.data.resample`);
``ts`` is the bucket start and buckets without trades are not invented.

Volume bars (:func:`volume_bars`) and dollar bars (:func:`dollar_bars`) are built by
accumulating, from the first trade after the previous bar closed, base units (volume
bars) or quote units price × qty (dollar bars); **the trade at which the running sum
first reaches the threshold closes the bar and belongs to it, whole** (a large trade is
not split and its overshoot is not carried into the next bar, which starts again from
zero). Their ``ts`` is the time of the bar's first trade; ``with_close_ts=True`` adds a
``close_ts`` column (time of the closing trade): a strategy may act on such a bar only
after ``close_ts``. The trailing trades that do not reach the threshold form no bar
unless ``include_partial=True``. The running sums are differences of a float64
cumulative sum, so a bar whose sum lands on the threshold to within rounding (about
1e-16 relative to the cumulative total) may close one trade later or earlier than exact
decimal arithmetic would.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from quantarena.data.intervals import interval_ns
from quantarena.data.resample import bucket_start, group_starts
from quantarena.data.schema import BAR_SCHEMA


def _split_symbols(trades: Any) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Normalise trades (TradeArrays, LoadedData or a TRADE_SCHEMA table) to per-symbol
    arrays sorted by time."""
    table = getattr(trades, "table", None)
    if isinstance(trades, pa.Table) or isinstance(table, pa.Table):
        t = trades if isinstance(trades, pa.Table) else table
        sym = t.column("symbol").to_numpy(zero_copy_only=False).astype(str)
        out = []
        for s in sorted(set(sym.tolist())):
            rows = np.flatnonzero(sym == s)
            out.append(
                (
                    s,
                    {
                        "ts": t.column("ts").to_numpy()[rows],
                        "price": t.column("price").to_numpy()[rows],
                        "qty": t.column("qty").to_numpy()[rows],
                        "side": t.column("side").to_numpy()[rows],
                    },
                )
            )
        return [(s, _sorted(a)) for s, a in out]
    try:
        arrays = {k: np.asarray(getattr(trades, k)) for k in ("ts", "price", "qty", "side")}
    except AttributeError:
        raise TypeError(
            "trades must be a TradeArrays (quantarena.data.read.load_trades), a LoadedData "
            "or a pyarrow Table in TRADE_SCHEMA"
        ) from None
    return [(str(getattr(trades, "symbol", "") or ""), _sorted(arrays))]


def _sorted(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    ts = a["ts"].astype(np.int64, copy=False)
    if ts.size > 1 and np.any(ts[1:] < ts[:-1]):
        order = np.argsort(ts, kind="stable")
        a = {k: v[order] for k, v in a.items()}
    return {
        "ts": a["ts"].astype(np.int64, copy=False),
        "price": a["price"].astype(np.float64, copy=False),
        "qty": a["qty"].astype(np.float64, copy=False),
        "side": a["side"].astype(np.int8, copy=False),
    }


def _aggregate(
    symbol: str,
    a: dict[str, np.ndarray],
    starts: np.ndarray,
    stop: int,
    bar_ts: np.ndarray,
    with_close_ts: bool,
) -> pa.Table:
    """Bars over trade groups ``[starts[k], starts[k+1])``, the last ending at ``stop``."""
    n_bars = starts.size
    ts, price, qty, side = a["ts"][:stop], a["price"][:stop], a["qty"][:stop], a["side"][:stop]
    if n_bars == 0:
        t = BAR_SCHEMA.empty_table()
        return t.append_column("close_ts", pa.array([], pa.int64())) if with_close_ts else t
    ends = np.append(starts[1:], stop) - 1
    cols: dict[str, Any] = {
        "symbol": pa.array([symbol] * n_bars, pa.string()),
        "ts": bar_ts,
        "open": price[starts],
        "high": np.maximum.reduceat(price, starts),
        "low": np.minimum.reduceat(price, starts),
        "close": price[ends],
        "volume": np.add.reduceat(qty, starts),
        "quote_volume": np.add.reduceat(price * qty, starts),
        "trades": np.diff(np.append(starts, stop)).astype(np.int64),
        "taker_buy_volume": np.add.reduceat(np.where(side > 0, qty, 0.0), starts),
    }
    table = pa.table(cols, schema=BAR_SCHEMA)
    if with_close_ts:
        table = table.append_column("close_ts", pa.array(ts[ends], pa.int64()))
    return table


def _concat(tables: list[pa.Table], with_close_ts: bool) -> pa.Table:
    if tables:
        return pa.concat_tables(tables)
    t = BAR_SCHEMA.empty_table()
    return t.append_column("close_ts", pa.array([], pa.int64())) if with_close_ts else t


def time_bars(trades: Any, interval: int | str, *, with_close_ts: bool = False) -> pa.Table:
    """Time bars of length ``interval`` (e.g. ``"1m"``) from trades; see the module doc."""
    step = interval_ns(interval)
    out = []
    for symbol, a in _split_symbols(trades):
        b = bucket_start(a["ts"], step)
        starts = group_starts(b)
        out.append(_aggregate(symbol, a, starts, a["ts"].size, b[starts], with_close_ts))
    return _concat(out, with_close_ts)


def _threshold_starts(amount: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Start indices of threshold bars over per-trade ``amount`` and the index where the
    trailing (incomplete) trades begin."""
    n = amount.size
    cum = np.cumsum(amount)
    starts: list[int] = []
    i, base = 0, 0.0
    while i < n:
        j = int(np.searchsorted(cum, base + threshold, side="left"))
        if j >= n:
            break
        starts.append(i)
        base = float(cum[j])
        i = j + 1
    return np.asarray(starts, dtype=np.int64), i


def _threshold_bars(
    trades: Any, threshold: float, dollars: bool, include_partial: bool, with_close_ts: bool
) -> pa.Table:
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    out = []
    for symbol, a in _split_symbols(trades):
        amount = a["price"] * a["qty"] if dollars else a["qty"]
        starts, stop = _threshold_starts(amount, float(threshold))
        if include_partial and stop < amount.size:
            starts, stop = np.append(starts, stop), amount.size
        out.append(_aggregate(symbol, a, starts, stop, a["ts"][starts], with_close_ts))
    return _concat(out, with_close_ts)


def volume_bars(
    trades: Any, threshold: float, *, include_partial: bool = False, with_close_ts: bool = False
) -> pa.Table:
    """Volume bars: a bar closes at the trade where the base-asset quantity accumulated
    since the previous bar reaches ``threshold`` (that trade included); see the module doc."""
    return _threshold_bars(trades, threshold, False, include_partial, with_close_ts)


def dollar_bars(
    trades: Any, threshold: float, *, include_partial: bool = False, with_close_ts: bool = False
) -> pa.Table:
    """Dollar bars: like :func:`volume_bars` with price × qty (quote units) accumulated."""
    return _threshold_bars(trades, threshold, True, include_partial, with_close_ts)
