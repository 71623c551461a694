"""The streaming path of the agent contract: warm up on history, then one bar at a time.

An agent's vectorised path (:meth:`~.base.Agent.positions`) turns a whole panel into target
weights. Its streaming path (:meth:`~.base.Agent.stream`) is an :class:`AgentStream` fed one
bar at a time (:meth:`AgentStream.step`): each call returns the ``(A, P)`` float32 target
weights decided at that bar's close, exactly (bit for bit) the row the vectorised path gives
for the same bar when the stream was fed the same bars from the panel's first bar on.

Exactness comes from carrying the vectorised kernels' own state (:mod:`.kernels`): the
running sums, the periodic exact recompute every ``max(1024, w)`` bars, the centring value of
the SMA, the hysteresis position — and doing the same float64 operations in the same order.
Work per bar is ``O(W)`` (one update per distinct window) plus an ``O(w)`` recompute every
``max(1024, w)`` bars and, for channel extremes, an ``O(w)`` scan: ``O(window)`` at worst,
never a pass over the history. Memory is one ring of the last ``max(window) + 1`` rows.

Bars are counted from the first bar the stream sees (``t = 0``): a stream and a backtest agree
when the stream's history starts where the backtest's panel starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from quantarena.data.panel import BarPanel

__all__ = [
    "AgentStream",
    "ChannelStream",
    "EMAStream",
    "FeatureStream",
    "MomentsStream",
    "Ring",
    "SMAStream",
]

_NAN = float("nan")


def _finite(v: float) -> bool:
    return not (math.isnan(v) or math.isinf(v))


class Ring:
    """The last ``size`` rows of a ``(C,)`` series, addressed by absolute bar index."""

    def __init__(self, size: int, n_cols: int) -> None:
        self.size = max(1, int(size))
        self.buf = np.full((self.size, int(n_cols)), np.nan)
        self.t = -1  # index of the newest row

    def push(self, row: np.ndarray) -> None:
        self.t += 1
        self.buf[self.t % self.size] = row

    def at(self, t: int, c: int) -> float:
        """Row ``t``'s value in column ``c`` (``t`` within the last ``size`` rows)."""
        if not self.t - self.size < t <= self.t:
            raise IndexError(
                f"bar {t} is outside the ring (bars {self.t - self.size + 1}..{self.t})"
            )
        return float(self.buf[t % self.size, c])

    def window(self, c: int, t_from: int, t_to: int) -> list[float]:
        """Column ``c``, bars ``t_from .. t_to`` inclusive, oldest first."""
        return [self.at(i, c) for i in range(t_from, t_to + 1)]


class SMAStream:
    """Simple moving averages of each column for each window, as ``kernels.sma_stack``."""

    def __init__(self, windows: Sequence[int], n_cols: int) -> None:
        self.w = [int(w) for w in windows]
        C, W = int(n_cols), len(self.w)
        self.C = C
        self.ring = Ring(max(self.w) + 1, C)
        self.x0: list[float | None] = [None] * C
        self.s = [[0.0] * W for _ in range(C)]
        self.bad = [[0] * W for _ in range(C)]
        self.fresh = [[True] * W for _ in range(C)]

    def update(self, x: np.ndarray) -> np.ndarray:
        """Push one row ``(C,)``; returns the ``(C, W)`` averages at this bar."""
        r = self.ring
        r.push(x)
        t = r.t
        out = np.empty((self.C, len(self.w)))
        for c in range(self.C):
            v = float(x[c])
            vok = _finite(v)
            if vok and self.x0[c] is None:
                self.x0[c] = v
            x0 = self.x0[c] if self.x0[c] is not None else 0.0
            s, bad, fresh = self.s[c], self.bad[c], self.fresh[c]
            for j, w in enumerate(self.w):
                if not vok:
                    bad[j] += 1
                if t >= w and not _finite(r.at(t - w, c)):
                    bad[j] -= 1
                if t < w - 1 or bad[j] > 0:
                    out[c, j] = _NAN
                    fresh[j] = True
                    continue
                if fresh[j] or t % max(1024, w) == 0:
                    acc = 0.0
                    for xi in r.window(c, t - w + 1, t):
                        acc += xi - x0
                    s[j] = acc
                    fresh[j] = False
                else:
                    s[j] += v - r.at(t - w, c)
                out[c, j] = s[j] / w + x0
        return out


class EMAStream:
    """Exponential moving averages (alpha = 2/(w+1), SMA-seeded), as ``kernels.ema_stack``."""

    def __init__(self, windows: Sequence[int], n_cols: int) -> None:
        self.w = [int(w) for w in windows]
        self.C = int(n_cols)
        W = len(self.w)
        self.run = [[0] * W for _ in range(self.C)]
        self.acc = [[0.0] * W for _ in range(self.C)]
        self.e = [[_NAN] * W for _ in range(self.C)]

    def update(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((self.C, len(self.w)))
        for c in range(self.C):
            v = float(x[c])
            run, acc, e = self.run[c], self.acc[c], self.e[c]
            for j, w in enumerate(self.w):
                if not _finite(v):
                    run[j], acc[j], e[j] = 0, 0.0, _NAN
                    out[c, j] = _NAN
                elif run[j] < w:
                    run[j] += 1
                    acc[j] += v
                    if run[j] == w:
                        e[j] = acc[j] / w
                        out[c, j] = e[j]
                    else:
                        out[c, j] = _NAN
                else:
                    a = 2.0 / (w + 1.0)
                    e[j] = a * v + (1.0 - a) * e[j]
                    out[c, j] = e[j]
        return out


class MomentsStream:
    """Rolling mean and std (``ddof``) of each column for each window, as
    ``kernels.rolling_moments`` (add/remove updates, exact two-pass recompute every
    ``max(1024, w)`` bars, std exactly 0 over a run of identical values)."""

    def __init__(self, windows: Sequence[int], n_cols: int, ddof: int = 0) -> None:
        self.w = [int(w) for w in windows]
        self.C = int(n_cols)
        self.ddof = int(ddof)
        W = len(self.w)
        self.ring = Ring(max(self.w) + 1, self.C)
        self.same = [0] * self.C
        self.m = [[0.0] * W for _ in range(self.C)]
        self.m2 = [[0.0] * W for _ in range(self.C)]
        self.bad = [[0] * W for _ in range(self.C)]
        self.fresh = [[True] * W for _ in range(self.C)]

    def update(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Push one row ``(C,)``; returns ``(mean, std)``, each ``(C, W)``."""
        r = self.ring
        r.push(x)
        t = r.t
        W = len(self.w)
        mean = np.empty((self.C, W))
        std = np.empty((self.C, W))
        for c in range(self.C):
            v = float(x[c])
            vok = _finite(v)
            if t > 0 and v == r.at(t - 1, c):
                self.same[c] += 1
            else:
                self.same[c] = 1
            m, m2, bad, fresh = self.m[c], self.m2[c], self.bad[c], self.fresh[c]
            for j, w in enumerate(self.w):
                if not vok:
                    bad[j] += 1
                if t >= w and not _finite(r.at(t - w, c)):
                    bad[j] -= 1
                if t < w - 1 or bad[j] > 0:
                    mean[c, j] = _NAN
                    std[c, j] = _NAN
                    fresh[j] = True
                    continue
                if fresh[j] or t % max(1024, w) == 0:
                    vals = r.window(c, t - w + 1, t)
                    s = 0.0
                    for xi in vals:
                        s += xi
                    mm = s / w
                    mm2 = 0.0
                    for xi in vals:
                        d = xi - mm
                        mm2 += d * d
                    m[j], m2[j] = mm, mm2
                    fresh[j] = False
                else:
                    old = r.at(t - w, c)
                    m_new = m[j] + (v - old) / w
                    m2[j] = m2[j] + (v - old) * (v - m_new + old - m[j])
                    m[j] = m_new
                mean[c, j] = m[j]
                if w - self.ddof <= 0:
                    std[c, j] = _NAN
                elif self.same[c] >= w:
                    std[c, j] = 0.0
                else:
                    var = m2[j] / (w - self.ddof)
                    std[c, j] = math.sqrt(var) if var > 0.0 else 0.0
        return mean, std


class ChannelStream:
    """Highest high / lowest low of the PRIOR ``w`` bars (rows ``t-w .. t-1``) for each window,
    as ``lag(rolling_maxes(high), 1)`` / ``lag(rolling_mins(low), 1)``: NaN until ``w`` prior
    bars exist or while one of them is not finite. Max and min are exact, so an ``O(w)`` scan
    of the ring gives the vectorised values bit for bit."""

    def __init__(self, windows: Sequence[int], n_cols: int) -> None:
        self.w = [int(w) for w in windows]
        self.C = int(n_cols)
        self.size = max(1, max(self.w))
        self.k = np.asarray(self.w, dtype=np.int64) - 1  # row w-1 of a newest-first scan
        # each bar is written twice (rows i and i + size), so the last `size` bars are one
        # contiguous slice; bars before the first are NaN
        self.hi = np.full((2 * self.size, self.C), np.nan)
        self.lo = np.full((2 * self.size, self.C), np.nan)
        self.t = 0  # bars pushed so far = index of the bar being decided

    def update(self, high: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The channels at the coming bar (from the bars pushed so far), then push this bar.

        One newest-first scan of the last ``max(w)`` bars gives every window at once: the
        running max (min) over bars ``t-1 .. t-w`` and whether all of them are finite."""
        t, size = self.t, self.size
        end = t % size + size  # one past bar t-1 in the doubled buffer
        out = []
        for buf, acc in ((self.hi, np.maximum), (self.lo, np.minimum)):
            rows = buf[end - size : end][::-1]  # row k: bar t-1-k
            ok = np.logical_and.accumulate(np.isfinite(rows), axis=0)[self.k]
            out.append(np.where(ok, acc.accumulate(rows, axis=0)[self.k], np.nan).T)
        i = t % size
        self.hi[i] = self.hi[i + size] = high
        self.lo[i] = self.lo[i + size] = low
        self.t = t + 1
        return out[0], out[1]


def _row(v: Any, n_assets: int, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape[0] != n_assets:
        raise ValueError(
            f"bar field {name!r} has {a.shape[0]} values, expected {n_assets} (one per asset)"
        )
    return a


class AgentStream:
    """One agent and population fed one bar at a time (see the module docstring).

    Subclasses implement :meth:`_step`. Attributes: ``agent``, ``params``, ``n_assets`` (A),
    ``n_params`` (P), ``n_bars`` (bars seen so far), ``last`` (the latest ``(A, P)`` targets,
    None before the first bar).
    """

    def __init__(self, agent: Any, params: dict[str, np.ndarray], n_assets: int) -> None:
        from quantarena.strategies.params import n_params

        self.agent = agent
        self.params = params
        self.n_assets = int(n_assets)
        self.n_params = n_params(params)
        self.n_bars = 0
        self.last: np.ndarray | None = None

    def step(
        self,
        open: Any,  # noqa: A002 - the bar field's name
        high: Any,
        low: Any,
        close: Any,
        volume: Any = 0.0,
    ) -> np.ndarray:
        """Feed the next bar (each field a scalar or ``(A,)``; NaN = no bar for that asset) and
        return the ``(A, P)`` float32 target weights decided at its close."""
        A = self.n_assets
        f = [
            _row(v, A, k)
            for k, v in zip(("open", "high", "low", "close"), (open, high, low, close), strict=True)
        ]
        vol = np.broadcast_to(np.asarray(volume, dtype=np.float64), (A,))
        out = self._step(f[0], f[1], f[2], f[3], vol)
        self.n_bars += 1
        self.last = out
        return out

    def warm_up(self, bars: BarPanel) -> np.ndarray | None:
        """Feed every bar of ``bars`` (history) in order; returns the last targets."""
        if bars.n_assets != self.n_assets:
            raise ValueError(f"history has {bars.n_assets} assets, the stream {self.n_assets}")
        for t in range(bars.n_bars):
            self.step(bars.open[t], bars.high[t], bars.low[t], bars.close[t], bars.volume[t])
        return self.last

    def run(self, bars: BarPanel) -> np.ndarray:
        """All targets for ``bars`` fed one by one, ``(T, A, P)`` (tests, parity checks)."""
        out = np.empty((bars.n_bars, self.n_assets, self.n_params), np.float32)
        for t in range(bars.n_bars):
            out[t] = self.step(
                bars.open[t], bars.high[t], bars.low[t], bars.close[t], bars.volume[t]
            )
        return out

    def _step(
        self, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError


class FeatureStream:
    """The ML features (:func:`quantarena.strategies.ml.features.compute_features`) one bar at a
    time, each row equal to the vectorised row: log-return lags from a ring, rolling stds
    and z-scores from :class:`MomentsStream`, RSI and MA distances from :class:`SMAStream`."""

    def __init__(self, spec: Any, n_assets: int) -> None:
        self.spec = spec
        A = int(n_assets)
        self.A = A
        self.lags = [int(k) for k in spec.lags]
        self.logc = Ring(max(self.lags) + 1, A)
        self.prev_c = np.full(A, np.nan)
        self.vol = MomentsStream([int(w) for w in spec.vol_windows], A)
        self.rsi = SMAStream([int(spec.rsi_window)], 2 * A)  # gains | losses
        self.volz = MomentsStream([int(spec.volume_window)], A)
        self.ma = SMAStream([int(w) for w in spec.ma_windows], A)

    def update(self, c: np.ndarray, v: np.ndarray | None) -> np.ndarray:
        """Push one bar (``(A,)`` close and volume); returns its ``(A, F)`` features."""
        A = self.A
        cols: list[np.ndarray] = []
        with np.errstate(divide="ignore", invalid="ignore"):
            lc = np.log(np.asarray(c, np.float64).reshape(1, A))[0]
            r = self.logc
            t = r.t + 1
            r.push(lc)
            for k in self.lags:
                prev = np.array([r.at(t - k, a) if t >= k else np.nan for a in range(A)])
                cols.append(lc - prev)
            prev1 = np.array([r.at(t - 1, a) if t >= 1 else np.nan for a in range(A)])
            _, sd = self.vol.update(lc - prev1)
            cols += [sd[:, j] for j in range(sd.shape[1])]
            change = c - self.prev_c
            self.prev_c = np.asarray(c, np.float64).copy()
            gains = np.where(change > 0, change, 0.0)
            losses = np.where(change < 0, -change, 0.0)
            bad = ~np.isfinite(change)
            gains = np.where(bad, np.nan, gains)
            losses = np.where(bad, np.nan, losses)
            gl = self.rsi.update(np.concatenate([gains, losses]))[:, 0]
            g, lo = gl[:A], gl[A:]
            total = g + lo
            rsi = np.where(total > 0, 100.0 * g / np.where(total > 0, total, 1.0), 50.0)
            cols.append(np.where(np.isfinite(total), rsi, np.nan))
            if v is None:
                cols.append(np.full(A, np.nan))
            else:
                lv = np.log1p(np.where(v >= 0, v, np.nan))
                mean, std = self.volz.update(lv)
                z = np.where(std > 0, (lv[:, None] - mean) / std, np.nan)[:, 0]
                cols.append(np.where(std[:, 0] == 0, 0.0, z))
            mas = self.ma.update(np.asarray(c, np.float64))
            cols += [lc - np.log(mas[:, j]) for j in range(mas.shape[1])]
        return np.stack(cols, axis=-1)
