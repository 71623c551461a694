"""Causal features for the ML agents, computed on the array backend ``xp`` (numpy or cupy).

Every feature is a ``(T, A)`` column; :func:`compute_features` stacks them into
``(T, A, F)`` float64 (time, asset, feature). Row ``t`` uses bars ``0..t`` only (the
rolling helpers of :mod:`quantarena.strategies.indicators` are causal and give bit-for-bit
the same rows on any prefix of the data), and is NaN until its window is full.

Features (names as in :attr:`FeatureSpec.names`):

* ``ret_k`` — the ``k``-bar log return ``log(close[t] / close[t-k])`` for each ``k`` in
  ``lags`` (1, 2, 4, 8, 16, 32 by default);
* ``vol_w`` — rolling volatility: the population std (ddof 0) of the 1-bar log returns
  over the last ``w`` bars, per bar (not annualised);
* ``rsi_w`` — RSI on simple (not Wilder) averages: ``100 * G / (G + L)`` with ``G``, ``L``
  the ``w``-bar means of the positive / negative close-to-close changes; 50 for a flat window;
* ``volz_w`` — volume z-score: ``(v - mean) / std`` (ddof 0) of ``log1p(volume)`` over
  ``w`` bars; 0 where the window's volume is constant;
* ``dist_w`` — distance from the moving average: ``log(close / SMA_w(close))``.

:func:`next_returns` is the label, not a feature: the log return of the NEXT bar,
``log(close[t+1] / close[t])``, known only at the close of bar ``t+1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from quantarena.strategies.indicators import lag, moving_averages, rolling_stds, rolling_zscores

__all__ = ["DEFAULT_SPEC", "FeatureSpec", "compute_features", "next_returns"]


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to compute; windows and lags count in bars."""

    lags: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    vol_windows: tuple[int, ...] = (16, 64)
    rsi_window: int = 14
    volume_window: int = 64
    ma_windows: tuple[int, ...] = (16, 64)

    def __post_init__(self) -> None:
        for name in ("lags", "vol_windows", "ma_windows"):
            vals = getattr(self, name)
            if not vals or any(int(v) < 1 for v in vals):
                raise ValueError(f"FeatureSpec.{name} must be positive bar counts, got {vals}")
        for name in ("rsi_window", "volume_window"):
            if int(getattr(self, name)) < 2:
                raise ValueError(f"FeatureSpec.{name} must be at least 2 bars")

    @property
    def names(self) -> list[str]:
        """Feature names, in the order of the last axis of :func:`compute_features`."""
        return (
            [f"ret_{k}" for k in self.lags]
            + [f"vol_{w}" for w in self.vol_windows]
            + [f"rsi_{self.rsi_window}"]
            + [f"volz_{self.volume_window}"]
            + [f"dist_{w}" for w in self.ma_windows]
        )

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def warmup(self) -> int:
        """Bars before every feature is defined (the first full row is ``warmup``)."""
        return max(
            max(self.lags),
            max(self.vol_windows),  # returns start at row 1, std needs w of them
            self.rsi_window,
            self.volume_window - 1,
            max(self.ma_windows) - 1,
        )


DEFAULT_SPEC = FeatureSpec()


def compute_features(
    close: Any, volume: Any | None = None, xp: Any = np, spec: FeatureSpec = DEFAULT_SPEC
) -> Any:
    """The ``(T, A, F)`` float64 feature array of ``close`` (and ``volume``), on ``xp``.

    Args:
        close: ``(T,)`` or ``(T, A)`` close prices (a 1-D input gives ``A = 1``).
        volume: same shape as ``close``; None → the volume z-score is NaN.
        xp: numpy or cupy; the result lives on its device.
        spec: the features (see the module docstring for their definitions).
    """
    c = xp.asarray(close, dtype=xp.float64)
    if c.ndim == 1:
        c = c[:, None]
    if c.ndim != 2:
        raise ValueError(f"close must be (T,) or (T, A), got shape {tuple(c.shape)}")
    with np.errstate(divide="ignore", invalid="ignore"):
        logc = xp.log(c)
        cols: list[Any] = [logc - lag(logc, int(k), xp) for k in spec.lags]
        r1 = logc - lag(logc, 1, xp)
        vols = rolling_stds(r1, [int(w) for w in spec.vol_windows], xp)
        cols += [vols[..., j] for j in range(vols.shape[-1])]

        change = c - lag(c, 1, xp)
        gains = xp.where(change > 0, change, 0.0)
        losses = xp.where(change < 0, -change, 0.0)
        nan_change = ~xp.isfinite(change)
        gains = xp.where(nan_change, xp.nan, gains)
        losses = xp.where(nan_change, xp.nan, losses)
        g = moving_averages(gains, [int(spec.rsi_window)], xp)[..., 0]
        lo = moving_averages(losses, [int(spec.rsi_window)], xp)[..., 0]
        total = g + lo
        rsi = xp.where(total > 0, 100.0 * g / xp.where(total > 0, total, 1.0), 50.0)
        cols.append(xp.where(xp.isfinite(total), rsi, xp.nan))

        if volume is None:
            cols.append(xp.full(c.shape, xp.nan))
        else:
            v = xp.asarray(volume, dtype=xp.float64)
            v = v[:, None] if v.ndim == 1 else v
            if v.shape != c.shape:
                raise ValueError(f"volume shape {tuple(v.shape)} differs from close {c.shape}")
            lv = xp.log1p(xp.where(v >= 0, v, xp.nan))
            z = rolling_zscores(lv, [int(spec.volume_window)], xp)[..., 0]
            sd = rolling_stds(lv, [int(spec.volume_window)], xp)[..., 0]
            cols.append(xp.where(sd == 0, 0.0, z))  # a constant-volume window: z = 0

        mas = moving_averages(c, [int(w) for w in spec.ma_windows], xp)
        cols += [logc - xp.log(mas[..., j]) for j in range(mas.shape[-1])]
    return xp.ascontiguousarray(xp.stack(cols, axis=-1))


def next_returns(close: Any, xp: Any = np) -> Any:
    """The LABEL of bar ``t``: ``log(close[t+1] / close[t])``, ``(T, A)`` float64, NaN in the
    last row. It reads bar ``t+1``: use row ``t`` for training only once bar ``t+1`` has
    closed (see :mod:`quantarena.strategies.ml.rolling`)."""
    c = xp.asarray(close, dtype=xp.float64)
    if c.ndim == 1:
        c = c[:, None]
    out = xp.full(c.shape, xp.nan, dtype=xp.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:-1] = xp.log(c[1:] / c[:-1])
    return out
