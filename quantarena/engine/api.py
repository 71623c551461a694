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


def _panel_from_file(path: Path, symbol: str | None) -> BarPanel:
    from quantarena.data.errors import DataError
    from quantarena.data.loaders import load_file
    from quantarena.data.read import align

    try:
        loaded = load_file(path)
    except DataError as exc:
        if getattr(exc, "field", None) != "symbol":
            raise
        # a file that names no symbol: use the one given, else the file's stem
        loaded = load_file(path, symbol=_norm_symbol(symbol or path.stem) or "ASSET")
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
    interval = loaded.interval_ns
    if interval is None:
        d = np.diff(per[0]["ts"])
        interval = int(np.median(d)) if d.size else 60_000_000_000
    return align(per, syms, int(interval))


def load_bars_any(
    bars: BarPanel | pd.DataFrame | str | Path,
    symbol: str | None = None,
    start: Any = None,
    end: Any = None,
    interval: str | None = None,
) -> BarPanel:
    """A :class:`BarPanel` from a panel, a DataFrame (OHLCV with a DatetimeIndex or a
    ts/timestamp column), a data file (any layout :func:`~quantarena.data.loaders.load_file`
    reads) or a store directory (``symbol`` picks the symbols); then cut to ``[start, end)``."""
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
        panel = _panel_from_file(path, symbol)
    else:
        raise ValueError(
            f"bars must be a BarPanel, a DataFrame, a file or a store path, not {type(bars).__name__}"
        )
    if start is not None or end is not None:
        from quantarena.data.read import timestamp_ns

        panel = panel.between(timestamp_ns(start), timestamp_ns(end))
    if interval is not None:
        from quantarena.data.intervals import interval_ns

        if interval_ns(interval) != panel.interval_ns:
            raise ValueError(
                f"interval {interval!r}: the bars are {panel.interval_ns // 10**9}s bars; "
                "resample them (quantarena.data.resample) or ingest them into a store"
            )
    if panel.n_bars == 0:
        raise ValueError("no bars in the requested range")
    return panel
