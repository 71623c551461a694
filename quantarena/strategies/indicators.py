"""Causal rolling indicators on ``(T, ...)`` arrays (time on axis 0), for numpy or cupy.

Conventions:

* Windows count in bars. Row ``t`` of a ``w``-bar indicator uses rows ``t-w+1 .. t`` only
  (never a later row): every function here is causal, so an agent built on them can't look
  ahead.
* Before a window is full, and whenever the window holds a NaN, the result is NaN; an agent
  maps NaN to a flat (0) position.
* Results are float64.

Precision: :class:`Rolling` (the xp path) uses *blocked* prefix sums. The series is centred on its first finite
value (a causal choice) and the prefix sums restart every ``block`` rows, so rounding error
grows with the block length, not with ``T``; a window that straddles two blocks adds the
tail of the previous block. Rows are computed with the same operations whatever the
length of the array, so an indicator over ``x[:t+1]`` equals rows ``:t+1`` of the indicator
over ``x`` bit for bit (the look-ahead audit relies on that).

On the CPU (numpy) the stacked indicators (:func:`moving_averages`, :func:`rolling_stds`,
:func:`rolling_maxes`, :func:`rolling_mins`) are Numba kernels (:mod:`.kernels`), parallel
over (column, window) pairs: rolling moments by add/remove updates with an exact recompute
every ``max(1024, w)`` rows, so the drift stays bounded. With cupy the SMA and std use the
blocked prefix sums of :class:`Rolling` on the device; rolling max/min (van Herk /
Gil-Werman, exact) and the EMA (a sequential recursion) run on the host and the result is
moved to the device, once per indicator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_BLOCK = 4096
#: the most elements one batched step of :meth:`RollingSums.windows` materialises per array
#: (bars × windows × columns; 2^24 float64 = 128 MiB)
STACK_ELEMENTS = 1 << 24


def is_cupy(xp: Any) -> bool:
    """True when ``xp`` is the cupy module."""
    return getattr(xp, "__name__", "") == "cupy"


def to_numpy(a: Any) -> np.ndarray:
    """A host numpy copy (or view) of a numpy/cupy array."""
    if hasattr(a, "get") and not isinstance(a, np.ndarray):
        return a.get()
    return np.asarray(a)


def _first_finite(x: Any, xp: Any) -> Any:
    """Per column (axis 0 = time), the first finite value (0 where none)."""
    finite = xp.isfinite(x)
    first = xp.argmax(finite.astype(xp.int8), axis=0)
    vals = xp.take_along_axis(x, first[None, ...], axis=0)[0]
    return xp.where(xp.isfinite(vals), vals, 0.0)


class RollingSums:
    """Blocked prefix sums of ``x`` along axis 0, from which any window ``w <= block`` gives
    the rolling sum over rows ``t-w+1 .. t`` in O(T).

    ``x`` must be finite (zero-fill NaN first and count them separately).
    """

    def __init__(self, x: Any, xp: Any = np, block: int = DEFAULT_BLOCK) -> None:
        self.xp = xp
        self.T = int(x.shape[0])
        self.block = int(block)
        K = self.block
        nb = max(1, -(-self.T // K))
        pad = nb * K - self.T
        xf = x.astype(xp.float64, copy=False)
        if pad:
            xf = xp.concatenate([xf, xp.zeros((pad,) + tuple(x.shape[1:]), dtype=xp.float64)])
        blocks = xp.cumsum(xf.reshape((nb, K) + tuple(x.shape[1:])), axis=1)
        self.prefix = blocks.reshape((nb * K,) + tuple(x.shape[1:]))[: self.T]
        prev = xp.zeros_like(blocks[:, -1])
        if nb > 1:
            prev[1:] = blocks[:-1, -1]
        self.prev_total = prev  # (nb, ...): total of the previous block, 0 for the first

    def window(self, w: int) -> Any:
        """Rolling sum over ``w`` rows, float64, NaN in rows ``t < w-1``."""
        xp = self.xp
        w = int(w)
        if w < 1:
            raise ValueError(f"window must be at least 1 bar, got {w}")
        if w > self.block:
            raise ValueError(f"window {w} is longer than the prefix-sum block {self.block}")
        out = xp.full(self.prefix.shape, xp.nan, dtype=xp.float64)
        if w > self.T:
            return out
        t = xp.arange(w - 1, self.T)
        j = t - w
        b = t // self.block
        same = j >= b * self.block
        cj = self.prefix[xp.maximum(j, 0)]
        shape = (-1,) + (1,) * (self.prefix.ndim - 1)
        cj = xp.where((j >= 0).reshape(shape), cj, 0.0)
        ct = self.prefix[w - 1 :]
        cross = ct + self.prev_total[b] - cj
        out[w - 1 :] = xp.where(same.reshape(shape), ct - cj, cross)
        return out

    def windows(self, ws: Sequence[int]) -> Any:
        """Rolling sums for every window of ``ws`` at once, ``(T, ..., W)`` float64: each
        element computed with the operations of :meth:`window` (equal to it bit for bit), in
        a fixed number of array operations per chunk of windows instead of a few per window
        (on a GPU: a handful of kernel launches for the whole stack). Chunks hold at most
        :data:`STACK_ELEMENTS` elements of ``(T, window, ...)``."""
        xp = self.xp
        wsa = np.asarray(ws, dtype=np.int64).reshape(-1)
        if wsa.size and int(wsa.min()) < 1:
            raise ValueError(f"window must be at least 1 bar, got {int(wsa.min())}")
        if wsa.size and int(wsa.max()) > self.block:
            raise ValueError(
                f"window {int(wsa.max())} is longer than the prefix-sum block {self.block}"
            )
        cols = int(np.prod(self.prefix.shape[1:], dtype=np.int64))
        step = max(1, STACK_ELEMENTS // max(1, self.T * cols))
        parts = [self._windows(wsa[i : i + step]) for i in range(0, wsa.size, step)]
        if len(parts) == 1:
            return parts[0]
        return xp.concatenate(parts, axis=-1)

    def _windows(self, wsa: np.ndarray) -> Any:
        xp = self.xp
        extra = (1,) * (self.prefix.ndim - 1)
        w = xp.asarray(wsa)[None, :]  # (1, W)
        t = xp.arange(self.T, dtype=xp.int64)[:, None]  # (T, 1)
        j = t - w  # (T, W): the row before the window
        b = t // self.block
        same = (j >= b * self.block).reshape(j.shape + extra)
        cj = self.prefix[xp.maximum(j, 0)]  # (T, W, ...)
        cj = xp.where((j >= 0).reshape(j.shape + extra), cj, 0.0)
        ct = self.prefix[:, None]  # (T, 1, ...)
        cross = ct + self.prev_total[b[:, 0]][:, None] - cj
        out = xp.where(same, ct - cj, cross)
        out = xp.where((t >= w - 1).reshape(j.shape + extra), out, xp.nan)
        return xp.moveaxis(out, 1, -1)


def _block_for(windows: Sequence[int]) -> int:
    m = max((int(w) for w in windows), default=1)
    return max(DEFAULT_BLOCK, 1 << (m - 1).bit_length())


class Rolling:
    """Shared rolling statistics of one series for many windows: the prefix sums are built
    once and each window costs one O(T) pass.

    ``mean(w)``, ``std(w, ddof)``, ``count_ok(w)`` (True where the window is full of finite
    values).
    """

    def __init__(self, x: Any, xp: Any = np, windows: Sequence[int] = (), block: int | None = None):
        self.xp = xp
        x = xp.asarray(x, dtype=xp.float64)
        finite = xp.isfinite(x)
        self.center = _first_finite(x, xp)
        xc = xp.where(finite, x - self.center, 0.0)
        blk = block or _block_for(windows)
        self._s1 = RollingSums(xc, xp, blk)
        self._s2: RollingSums | None = None
        self._same: RollingSums | None = None
        self._xc = xc
        self._cnt = RollingSums(finite.astype(xp.float64), xp, blk)
        self.block = blk

    def count_ok(self, w: int) -> Any:
        c = self._cnt.window(w)
        return c == float(w)  # NaN rows compare False

    def sum(self, w: int) -> Any:
        xp = self.xp
        s = self._s1.window(w) + float(w) * self.center
        return xp.where(self.count_ok(w), s, xp.nan)

    def mean(self, w: int) -> Any:
        xp = self.xp
        m = self._s1.window(w) / float(w) + self.center
        return xp.where(self.count_ok(w), m, xp.nan)

    def _last(self, a: Any) -> Any:
        """``a`` (per column, or a scalar) broadcastable against a ``(T, ..., W)`` stack."""
        return a[..., None] if getattr(a, "ndim", 0) else a

    def means(self, ws: Sequence[int]) -> Any:
        """:meth:`mean` of every window of ``ws``, ``(T, ..., W)``, bit for bit, in a few
        array operations for the whole stack."""
        xp = self.xp
        wf = xp.asarray(np.asarray(ws, dtype=np.float64).reshape(-1))
        m = self._s1.windows(ws) / wf + self._last(self.center)
        return xp.where(self._cnt.windows(ws) == wf, m, xp.nan)

    def stds(self, ws: Sequence[int], ddof: int = 0) -> Any:
        """:meth:`std` of every window of ``ws``, ``(T, ..., W)``, bit for bit."""
        xp = self.xp
        wsa = np.asarray(ws, dtype=np.int64).reshape(-1)
        if wsa.size and int((wsa - ddof).min()) <= 0:
            raise ValueError(f"window {int(wsa[(wsa - ddof).argmin()])} too short for ddof={ddof}")
        if self._s2 is None:
            self._s2 = RollingSums(self._xc * self._xc, xp, self.block)
        wf = xp.asarray(wsa.astype(np.float64))
        s1 = self._s1.windows(wsa)
        s2 = self._s2.windows(wsa)
        var = (s2 - s1 * s1 / wf) / xp.asarray((wsa - ddof).astype(np.float64))
        var = xp.maximum(var, 0.0)
        if (wsa > 1).any():  # a window of identical values has std exactly 0
            if self._same is None:
                same = xp.zeros(self._xc.shape, dtype=xp.float64)
                same[1:] = self._xc[1:] == self._xc[:-1]
                self._same = RollingSums(same, xp, self.block)
            prev = np.maximum(wsa - 1, 1)
            flat = self._same.windows(prev) == xp.asarray(prev.astype(np.float64))
            var = xp.where(flat & xp.asarray(wsa > 1), 0.0, var)
        return xp.where(self._cnt.windows(wsa) == wf, xp.sqrt(var), xp.nan)

    def std(self, w: int, ddof: int = 0) -> Any:
        xp = self.xp
        if w - ddof <= 0:
            raise ValueError(f"window {w} too short for ddof={ddof}")
        if self._s2 is None:
            self._s2 = RollingSums(self._xc * self._xc, xp, self.block)
        s1 = self._s1.window(w)
        s2 = self._s2.window(w)
        var = (s2 - s1 * s1 / float(w)) / float(w - ddof)
        var = xp.maximum(var, 0.0)
        if w > 1:  # a window of identical values has std exactly 0
            if self._same is None:
                same = xp.zeros(self._xc.shape, dtype=xp.float64)
                same[1:] = self._xc[1:] == self._xc[:-1]
                self._same = RollingSums(same, xp, self.block)
            var = xp.where(self._same.window(w - 1) == float(w - 1), 0.0, var)
        return xp.where(self.count_ok(w), xp.sqrt(var), xp.nan)


def readonly_view(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only view (no copy). Inputs of the compiled indicator kernels go in
    read-only, so each kernel compiles once whether the data came from this process (writable)
    or from Ray's object store (read-only)."""
    v = a.view()
    v.flags.writeable = False
    return v


def _host2d(x: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    h = np.ascontiguousarray(to_numpy(x), dtype=np.float64)
    return readonly_view(h.reshape(h.shape[0], -1)), h.shape


def _windows(windows: Sequence[int] | int) -> np.ndarray:
    ws = np.atleast_1d(np.asarray(windows, dtype=np.int64))
    if ws.size == 0:
        raise ValueError("no windows given")
    if (ws < 1).any():
        raise ValueError(f"windows must be at least 1 bar, got {int(ws.min())}")
    return ws


def _finish(out: np.ndarray, shape: tuple[int, ...], xp: Any) -> Any:
    out = out.reshape(shape + (out.shape[-1],))
    return xp.asarray(out) if is_cupy(xp) else out


def moving_averages(x: Any, windows: Sequence[int] | int, xp: Any = np, kind: str = "sma") -> Any:
    """Moving averages of ``x`` (T, ...) for each window, stacked on a new last axis:
    ``(T, ..., W)`` float64. ``kind``: ``"sma"`` (simple) or ``"ema"`` (see :func:`ema`)."""
    ws = _windows(windows)
    if kind not in ("sma", "ema"):
        raise ValueError(f"unknown moving average {kind!r}: use 'sma' or 'ema'")
    if is_cupy(xp) and kind == "sma":
        return xp.ascontiguousarray(Rolling(x, xp, ws.tolist()).means(ws))
    from quantarena.strategies import kernels

    h, shape = _host2d(x)
    out = np.empty(h.shape + (ws.size,))
    if kind == "sma":
        kernels.sma_stack(h, ws, out)
    else:
        kernels.ema_stack(h, ws, out)
    return _finish(out, shape, xp)


def moving_averages_time_last(
    x: Any, windows: Sequence[int] | int, kind: str = "sma"
) -> np.ndarray:
    """The CPU's :func:`moving_averages` of ``x`` (T,) or (T, C) in the fused kernels'
    time-last layout: C-contiguous float64 ``(C, W, T)`` (``C = 1`` for a 1-D ``x``), equal bit
    for bit to ``moving_averages(x, windows)`` transposed, without the transpose (each
    (column, window) row is written in one pass)."""
    ws = _windows(windows)
    if kind not in ("sma", "ema"):
        raise ValueError(f"unknown moving average {kind!r}: use 'sma' or 'ema'")
    from quantarena.strategies import kernels

    h, _ = _host2d(x)
    out = np.empty((h.shape[1], ws.size, h.shape[0]))
    (kernels.sma_time_last if kind == "sma" else kernels.ema_time_last)(h, ws, out)
    return out


def rolling_stds(x: Any, windows: Sequence[int] | int, xp: Any = np, ddof: int = 0) -> Any:
    """Rolling standard deviations for each window, ``(T, ..., W)``; ``ddof=0`` is the
    population std (Bollinger convention), pandas' ``rolling().std()`` is ``ddof=1``. A window
    of identical values gives exactly 0."""
    ws = _windows(windows)
    if is_cupy(xp):
        return xp.ascontiguousarray(Rolling(x, xp, ws.tolist()).stds(ws, ddof))
    from quantarena.strategies import kernels

    h, shape = _host2d(x)
    mean = np.empty(h.shape + (ws.size,))
    std = np.empty_like(mean)
    kernels.rolling_moments(h, ws, int(ddof), True, mean, std)
    return _finish(std, shape, xp)


def rolling_zscores(x: Any, windows: Sequence[int] | int, xp: Any = np, ddof: int = 0) -> Any:
    """``(x - rolling mean) / rolling std`` for each window, ``(T, ..., W)``; NaN before the
    window is full and where the std is 0 (a flat window has no z-score)."""
    ws = _windows(windows)
    if is_cupy(xp):
        xd = xp.asarray(x, dtype=xp.float64)
        r = Rolling(xd, xp, ws.tolist())
        sd, m = r.stds(ws, ddof), r.means(ws)
        z = xp.where(sd > 0, (xd[..., None] - m) / xp.where(sd > 0, sd, 1.0), xp.nan)
        return xp.ascontiguousarray(z)
    from quantarena.strategies import kernels

    h, shape = _host2d(x)
    mean = np.empty(h.shape + (ws.size,))
    std = np.empty_like(mean)
    kernels.rolling_moments(h, ws, int(ddof), True, mean, std)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, (h[:, :, None] - mean) / std, np.nan)
    return _finish(z, shape, xp)


def _extremes(x: Any, windows: Sequence[int] | int, xp: Any, take_max: bool) -> Any:
    from quantarena.strategies import kernels

    ws = _windows(windows)
    h, shape = _host2d(x)
    out = np.empty(h.shape + (ws.size,))
    kernels.extreme_stack(h, ws, take_max, out)
    return _finish(out, shape, xp)


def rolling_maxes(x: Any, windows: Sequence[int] | int, xp: Any = np) -> Any:
    """Highest value over rows ``t-w+1 .. t`` for each window, ``(T, ..., W)`` (exact)."""
    return _extremes(x, windows, xp, True)


def rolling_mins(x: Any, windows: Sequence[int] | int, xp: Any = np) -> Any:
    """Lowest value over rows ``t-w+1 .. t`` for each window, ``(T, ..., W)`` (exact)."""
    return _extremes(x, windows, xp, False)


def rolling_sum(x: Any, w: int, xp: Any = np) -> Any:
    """Sum of rows ``t-w+1 .. t`` (NaN before the window is full or if it holds a NaN)."""
    return Rolling(x, xp, [w]).sum(w)


def rolling_mean(x: Any, w: int, xp: Any = np) -> Any:
    """Simple moving average over ``w`` bars."""
    return moving_averages(x, [w], xp, "sma")[..., 0]


def rolling_std(x: Any, w: int, xp: Any = np, ddof: int = 0) -> Any:
    """Rolling standard deviation over ``w`` bars (see :func:`rolling_stds`)."""
    return rolling_stds(x, [w], xp, ddof)[..., 0]


def ema(x: Any, w: int, xp: Any = np) -> Any:
    """Exponential moving average, ``alpha = 2 / (w + 1)``, seeded (TA-Lib style) with the
    simple mean of the first ``w`` finite values at row ``w-1``; NaN before. A NaN input
    restarts the seeding."""
    return moving_averages(x, [w], xp, "ema")[..., 0]


def rolling_max(x: Any, w: int, xp: Any = np) -> Any:
    """Highest value over rows ``t-w+1 .. t`` (exact; NaN before the window is full)."""
    return rolling_maxes(x, [w], xp)[..., 0]


def rolling_min(x: Any, w: int, xp: Any = np) -> Any:
    """Lowest value over rows ``t-w+1 .. t`` (exact; NaN before the window is full)."""
    return rolling_mins(x, [w], xp)[..., 0]


def lag(x: Any, k: int, xp: Any = np) -> Any:
    """``x`` delayed by ``k >= 0`` rows (row ``t`` holds ``x[t-k]``; NaN in the first ``k``).
    A negative ``k`` would read the future and is refused."""
    k = int(k)
    if k < 0:
        raise ValueError(f"lag {k} < 0 would read future bars (look-ahead)")
    x = xp.asarray(x, dtype=xp.float64)
    if k == 0:
        return x.copy()
    out = xp.full(x.shape, xp.nan, dtype=xp.float64)
    if k < x.shape[0]:
        out[k:] = x[:-k]
    return out


def pct_change(x: Any, k: int, xp: Any = np) -> Any:
    """Simple return over ``k`` bars: ``x[t] / x[t-k] - 1`` (NaN in the first ``k`` rows)."""
    x = xp.asarray(x, dtype=xp.float64)
    return x / lag(x, k, xp) - 1.0


def log_returns(x: Any, xp: Any = np) -> Any:
    """One-bar log returns ``log(x[t] / x[t-1])`` (NaN in row 0)."""
    x = xp.asarray(x, dtype=xp.float64)
    return xp.log(x / lag(x, 1, xp))


def zscore(x: Any, w: int, xp: Any = np, ddof: int = 0) -> Any:
    """``(x - rolling_mean) / rolling_std`` over ``w`` bars; NaN where the std is 0."""
    return rolling_zscores(x, [w], xp, ddof)[..., 0]


def stack(columns: Sequence[Any], xp: Any = np) -> Any:
    """Stack per-window indicators ``(T, ...)`` along a new LAST axis → ``(T, ..., W)``,
    C-contiguous, so a bar's values for all windows sit side by side."""
    return xp.ascontiguousarray(xp.stack(list(columns), axis=-1))
