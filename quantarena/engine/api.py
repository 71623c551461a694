"""Bars from whatever the user has: :func:`load_bars_any` turns a :class:`BarPanel`, a
DataFrame, a data file or a store directory into the panel the engine replays.

The one-call backtest that uses it lives in :mod:`quantarena.backtest` (above the agents:
the engine imports no strategy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantarena.data.panel import BarPanel

_TIME_COLUMNS = ("ts", "timestamp", "time", "date", "datetime", "open_time")


# ------------------------------------------------------------------------------ bars input


def _panel_from_frame(df: pd.DataFrame, symbol: str | None) -> BarPanel:
    frame = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"bars DataFrame lacks column {missing[0]!r}: it needs open, high, low, close "
            "(and volume) with a DatetimeIndex or a ts/timestamp column"
        )
    if "symbol" in frame.columns:
        syms = sorted(frame["symbol"].astype(str).unique())
        if len(syms) > 1:
            if symbol is None:
                raise ValueError(f"the bars hold symbols {', '.join(syms)}: pass symbol=")
            frame = frame[frame["symbol"].astype(str) == symbol]
            if frame.empty:
                raise ValueError(
                    f"symbol {symbol!r} not in the bars: choose from {', '.join(syms)}"
                )
    if "ts" in frame.columns and np.issubdtype(frame["ts"].dtype, np.integer):
        ts = frame["ts"].to_numpy(np.int64)
    else:
        tcol = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
        if tcol is not None:
            idx = pd.DatetimeIndex(pd.to_datetime(frame[tcol], utc=True))
        elif isinstance(frame.index, pd.DatetimeIndex):
            idx = frame.index
            idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        else:
            raise ValueError(
                "bars DataFrame has no time: give it a DatetimeIndex or a ts/timestamp column"
            )
        ts = idx.as_unit("ns").asi8
    order = np.argsort(ts, kind="stable")
    if not np.array_equal(order, np.arange(ts.size)):
        frame = frame.iloc[order]
        ts = ts[order]
    if ts.size > 1 and (np.diff(ts) <= 0).any():
        i = int(np.flatnonzero(np.diff(ts) <= 0)[0]) + 1
        raise ValueError(f"bars DataFrame row {i}: duplicate timestamp — drop duplicates first")
    out = frame.assign(ts=ts)[
        ["ts", "open", "high", "low", "close"] + (["volume"] if "volume" in frame.columns else [])
    ]
    name = symbol or (str(frame["symbol"].iloc[0]) if "symbol" in frame.columns else "ASSET")
    return BarPanel.from_frame(out.reset_index(drop=True), symbol=name)


def _norm_symbol(s: str) -> str:
    return "".join(ch for ch in s.upper() if ch.isalnum())


def _panel_from_file(
    path: Path,
    symbol: str | None,
    interval: str | None = None,
    *,
    mapping: dict[str, str] | None = None,
    format: str = "auto",
) -> BarPanel:
    from quantarena.data.errors import DataError
    from quantarena.data.intervals import interval_ns, interval_str
    from quantarena.data.loaders import load_file
    from quantarena.data.read import align, resample_columns

    try:
        loaded = load_file(path, format, mapping=mapping)
    except DataError as exc:
        if getattr(exc, "field", None) != "symbol":
            raise
        # a file that names no symbol: use the one given, else the file's stem
        loaded = load_file(
            path, format, mapping=mapping, symbol=_norm_symbol(symbol or path.stem) or "ASSET"
        )
        symbol = None
    if loaded.kind != "bars":
        raise ValueError(f"{path}: holds {loaded.kind}, not bars — make bars from it first")
    table = loaded.table
    syms = loaded.symbols
    if symbol is not None and len(syms) > 1:
        match = [s for s in syms if _norm_symbol(s) == _norm_symbol(symbol)]
        if not match:
            raise ValueError(
                f"{path}: symbol {symbol!r} not in the file: it holds {', '.join(syms)}"
            )
        syms = match
    import pyarrow.compute as pc

    per = []
    for s in syms:
        sub = table.filter(pc.equal(table.column("symbol"), s))
        per.append(
            {
                k: sub.column(k)
                .to_numpy(zero_copy_only=False)
                .astype(np.int64 if k == "ts" else np.float64)
                for k in ("ts", "open", "high", "low", "close", "volume")
            }
        )
    step = loaded.interval_ns
    if step is None:
        d = np.diff(per[0]["ts"])
        step = int(np.median(d)) if d.size else 60_000_000_000
    step = int(step)
    if interval is not None and interval_ns(interval) != step:
        # the same resampling as a store read: whole multiples of the file's interval only
        target = interval_ns(interval)
        if target % step:
            raise ValueError(
                f"cannot make {interval_str(target)} bars from {path.name}: it holds "
                f"{interval_str(step)} bars (resampling goes only to whole multiples of them)"
            )
        per = [resample_columns(p, step, target) for p in per]
        step = target
    return align(per, syms, step)


def load_bars_any(
    bars: BarPanel | pd.DataFrame | str | Path,
    symbol: str | None = None,
    start: Any = None,
    end: Any = None,
    interval: str | None = None,
    *,
    mapping: dict[str, str] | None = None,
    format: str = "auto",
) -> BarPanel:
    """A :class:`BarPanel` from a panel, a DataFrame (OHLCV with a DatetimeIndex or a
    ts/timestamp column), a data file (any layout :func:`~quantarena.data.loaders.load_file`
    reads; ``format`` and the column ``mapping`` as there) or a store directory (``symbol``
    picks the symbols); then cut to ``[start, end)``.

    ``interval`` resamples a store's or a file's bars to a whole multiple of their interval
    (:mod:`quantarena.data.resample`); a panel or DataFrame must already be at it. A range
    without bars raises :class:`~quantarena.data.errors.EmptyRangeError` naming the span
    the data holds."""
    from quantarena.data.read import no_bars_error, timestamp_ns

    holder = "the bars"
    if isinstance(bars, BarPanel):
        panel = bars if symbol is None or bars.n_assets == 1 else bars.asset(symbol)
    elif isinstance(bars, pd.DataFrame):
        panel = _panel_from_frame(bars, symbol)
    elif isinstance(bars, str | Path):
        path = Path(bars)
        if path.is_dir():
            from quantarena.data.read import load_bars

            syms = None if symbol is None else [s.strip() for s in symbol.split(",")]
            return load_bars(path, syms, start, end, interval)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or store directory")
        panel = _panel_from_file(path, symbol, interval, mapping=mapping, format=format)
        holder = f"the file {path.name}"
    else:
        raise ValueError(
            f"bars must be a BarPanel, a DataFrame, a file or a store path, not {type(bars).__name__}"
        )
    if interval is not None:
        from quantarena.data.intervals import interval_ns

        if interval_ns(interval) != panel.interval_ns:
            raise ValueError(
                f"interval {interval!r}: the bars are {panel.interval_ns // 10**9}s bars; "
                "resample them (quantarena.data.resample) or ingest them into a store"
            )
    whole = panel
    lo, hi = timestamp_ns(start), timestamp_ns(end)
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"end ({end}) must come after start ({start})")
    if lo is not None or hi is not None:
        panel = panel.between(lo, hi)
    if panel.n_bars == 0:
        first = int(whole.ts[0]) if whole.n_bars else None
        last = int(whole.ts[-1]) if whole.n_bars else None
        raise no_bars_error(list(panel.symbols), lo, hi, first, last, holder)
    return panel
