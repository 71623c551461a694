"""An aligned panel of bars: the engine's input.

A :class:`BarPanel` holds, for ``T`` bar times and ``A`` assets, arrays shaped
``(T, A)`` (``ts`` is ``(T,)``). Where an asset has no bar at a time, ``mask`` is
False and its prices hold the last known close (or NaN before its first bar),
volume 0: the engine never trades a masked cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class BarPanel:
    """Time × assets arrays of OHLCV bars.

    Attributes:
        ts: ``(T,)`` int64 bar open times, ns since the epoch, UTC, strictly increasing.
        symbols: the ``A`` asset names, in column order.
        open, high, low, close, volume: ``(T, A)`` float64 arrays.
        mask: ``(T, A)`` bool, True where the asset really had a bar.
        interval_ns: bar length in ns.
        extra: optional further ``(T, A)`` columns (quote_volume, trades, taker_buy_volume).
    """

    ts: np.ndarray
    symbols: list[str]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    mask: np.ndarray
    interval_ns: int
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_bars(self) -> int:
        return int(self.ts.shape[0])

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    def __len__(self) -> int:
        return self.n_bars

    def asset(self, symbol: str) -> BarPanel:
        """The one-asset panel of ``symbol`` (arrays stay ``(T, 1)``)."""
        j = self.symbols.index(symbol)
        return self.select(slice(None), [j])

    def select(self, rows: Any = slice(None), cols: Any = slice(None)) -> BarPanel:
        """A sub-panel by time rows (slice or index array) and asset columns."""
        cols_idx = np.arange(self.n_assets)[cols]
        cols_idx = np.atleast_1d(cols_idx)

        def take(a: np.ndarray) -> np.ndarray:
            return a[rows][:, cols_idx]

        return BarPanel(
            ts=self.ts[rows],
            symbols=[self.symbols[j] for j in cols_idx],
            open=take(self.open),
            high=take(self.high),
            low=take(self.low),
            close=take(self.close),
            volume=take(self.volume),
            mask=take(self.mask),
            interval_ns=self.interval_ns,
            extra={k: take(v) for k, v in self.extra.items()},
        )

    def between(self, start_ns: int | None = None, end_ns: int | None = None) -> BarPanel:
        """Bars with ``start_ns <= ts < end_ns``."""
        lo = 0 if start_ns is None else int(np.searchsorted(self.ts, start_ns, "left"))
        hi = self.n_bars if end_ns is None else int(np.searchsorted(self.ts, end_ns, "left"))
        return self.select(slice(lo, hi))

    @classmethod
    def from_arrays(
        cls,
        ts: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray | None = None,
        *,
        symbols: list[str] | None = None,
        interval_ns: int | None = None,
    ) -> BarPanel:
        """Build a panel from 1-D (one asset) or 2-D ``(T, A)`` arrays; no gaps assumed."""

        def as2d(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a, dtype=np.float64)
            return a[:, None] if a.ndim == 1 else a

        o, h, lo, c = (as2d(x) for x in (open, high, low, close))
        v = as2d(volume) if volume is not None else np.zeros_like(c)
        ts = np.asarray(ts, dtype=np.int64)
        if interval_ns is None:
            interval_ns = int(np.median(np.diff(ts))) if ts.size > 1 else 60_000_000_000
        n_assets = c.shape[1]
        return cls(
            ts=ts,
            symbols=symbols or [f"A{j}" for j in range(n_assets)],
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=v,
            mask=np.isfinite(c),
            interval_ns=int(interval_ns),
        )

    @classmethod
    def from_frame(
        cls, df: Any, symbol: str | None = None, interval_ns: int | None = None
    ) -> BarPanel:
        """One-asset panel from a DataFrame with ts (int64 ns) or a DatetimeIndex, and OHLCV."""
        import pandas as pd

        if "ts" in df.columns:
            ts = df["ts"].to_numpy(dtype=np.int64)
        else:
            ts = pd.DatetimeIndex(df.index).as_unit("ns").asi8
        vol = df["volume"].to_numpy() if "volume" in df.columns else None
        return cls.from_arrays(
            ts,
            df["open"].to_numpy(),
            df["high"].to_numpy(),
            df["low"].to_numpy(),
            df["close"].to_numpy(),
            vol,
            symbols=[
                symbol or str(df["symbol"].iloc[0]) if "symbol" in df.columns else symbol or "A0"
            ],
            interval_ns=interval_ns,
        )
