"""The simulate kernel alone: bar-parameter updates per second with a streaming source.

500 parameter sets x 200,000 one-minute bars of a synthetic random walk; the position
source serves precomputed (block, P) weight blocks (so signal cost is ~0 and the figure is
the kernel's; the weights change every ~50 bars), 10 bps fees + 2 bps slippage. Besides the
wall-clock rate, the rate per core from the process's CPU time is printed: on a shared
machine it is the steadier figure (x cores = the rate with the cores to itself). Peer: vectorbt's ``Portfolio.from_orders``
(targetpercent, the same orders) on a slice of the population.

``python -m benchmarks.bench_engine_kernel`` or ``python -m benchmarks.run --only kernel``.
"""

from __future__ import annotations

import time

import numpy as np

from quantarena.data.panel import BarPanel
from quantarena.engine import Costs, Stops, simulate

N_BARS = 200_000
N_PARAMS = 500
BLOCK = 4096


def _panel(n: int, seed: int = 7) -> BarPanel:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 8e-4, n)))
    open_ = np.empty(n)
    open_[0] = close[0]
    open_[1:] = close[:-1]
    spread = np.abs(rng.normal(0.0, 5e-4, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    vol = rng.uniform(5.0, 50.0, n)
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000 + 1_600_000_000_000_000_000
    return BarPanel.from_arrays(ts, open_, high, low, close, vol, symbols=["SYN"])


class _BlockSource:
    """Cycles through a few precomputed (BLOCK, P) blocks of +-1 / 0 weights."""

    def __init__(self, n_params: int, seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        self.n_params = n_params
        # a weight that changes about every 50 bars: realistic trade frequency
        steps = rng.random((4, BLOCK, n_params)) < 0.02
        lvl = np.cumsum(steps, axis=1) % 3 - 1.0
        self.blocks = np.ascontiguousarray(lvl)

    def __call__(self, t0: int, t1: int) -> np.ndarray:
        b = self.blocks[(t0 // BLOCK) % 4]
        return b[: t1 - t0]


def _time(fn, repeat: int = 3) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds of all threads) over ``repeat`` runs."""
    best = (np.inf, np.inf)
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w, time.process_time() - c))
    return best


def run(console) -> list[dict]:
    bars = _panel(N_BARS)
    src = _BlockSource(N_PARAMS)
    costs = Costs.default()
    updates = N_BARS * N_PARAMS
    rows = []
    simulate(bars.select(slice(0, 5000)), _BlockSource(8), costs, backend="cpu")  # compile / load
    simulate(
        bars.select(slice(0, 5000)), _BlockSource(8), costs, backend="cpu",
        stops=Stops(stop_loss=0.02, trailing=0.03),
    )  # fmt: skip
    f32 = _BlockSource(N_PARAMS)
    f32.blocks = f32.blocks.astype(np.float32)
    for label, source, kw in (
        ("simulate, fees+slippage", src, {}),
        ("simulate, float32 weights", f32, {}),
        ("simulate, + stop-loss & trailing", src, {"stops": Stops(stop_loss=0.02, trailing=0.03)}),
    ):
        wall, cpu = _time(
            lambda s=source, kw=kw: simulate(bars, s, costs, backend="cpu", block=BLOCK, **kw)
        )
        rows.append(
            {
                "case": f"{label} ({N_PARAMS} params x {N_BARS:,} bars)",
                "seconds": wall,
                "M updates/s": updates / wall / 1e6,
                "M updates/s per core (CPU time)": updates / cpu / 1e6,
            }
        )
        console.print(rows[-1])
    # peer: vectorbt from_orders on the same orders, a slice of the population
    try:
        import pandas as pd
        import vectorbt as vbt
    except ImportError:  # pragma: no cover
        return rows
    n_peer = 50
    w = np.concatenate(
        [src(t0, min(N_BARS, t0 + BLOCK))[:, :n_peer] for t0 in range(0, N_BARS, BLOCK)]
    )
    prev = np.vstack([np.zeros((1, n_peer)), w[:-1]])
    size = np.where(w != prev, w, np.nan)
    size = np.vstack([np.full((1, n_peer), np.nan), size[:-1]])
    idx = pd.date_range("2020-09-13", periods=N_BARS, freq="1min")
    close = pd.Series(bars.close[:, 0], index=idx)
    open_ = pd.Series(bars.open[:, 0], index=idx)

    def peer() -> None:
        vbt.Portfolio.from_orders(
            close=close, size=size, size_type="targetpercent", price=open_, direction="both",
            init_cash=1.0, fees=10e-4, slippage=2e-4, freq="1min",
        ).total_return()  # fmt: skip

    peer()
    sec, cpu = _time(peer, repeat=1)
    rows.append(
        {
            "case": f"vectorbt from_orders ({n_peer} params x {N_BARS:,} bars)",
            "seconds": sec,
            "M updates/s": n_peer * N_BARS / sec / 1e6,
            "M updates/s per core (CPU time)": n_peer * N_BARS / cpu / 1e6,
        }
    )
    console.print(rows[-1])
    return rows


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
