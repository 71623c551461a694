"""Torch training time of the ML agent: seconds per refit on a 5,000-bar window.

Real FTX BTC-PERP 1-minute bars (data/sample). For the MLP and the GRU (hidden 32, a window
of 16 feature vectors, 12 features, batch 256, 10 epochs, early stopping off so every refit
runs all epochs), one refit = train on the 5,000 samples before the refit bar (4,000 train +
1,000 validation) and predict the next 1,000 bars in one batch. Then a whole rolling run:
15,000 bars, refits every 1,000 bars after a 5,000-bar lookback (10 refits). Training runs
single-threaded on the CPU (the determinism setting of ``fit_model``). On a machine where
CuPy sees a GPU the same is repeated with the features on the device (DLPack into torch).

``python -m benchmarks.bench_ml`` or ``python -m benchmarks.run --only ml``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from quantarena.data.panel import BarPanel

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "btc-perp-20211231-20220201_1m.csv"
LOOKBACK = 5000
EVERY = 1000
EPOCHS = 10


def _bars(n: int) -> BarPanel:
    import pandas as pd

    df = pd.read_csv(SAMPLE, parse_dates=["timestamp"]).set_index("timestamp").iloc[:n]
    return BarPanel.from_frame(df, symbol="BTC-PERP")


def _gpu_xp():
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() > 0:
            return cp
    except Exception:
        return None
    return None


def _cases(model: str) -> dict:
    return {"model": model, "hidden": 32, "window": 16, "lookback": str(LOOKBACK),
            "retrain_every": str(EVERY), "epochs": EPOCHS, "patience": 100, "lr": 1e-3}  # fmt: skip


def run(console) -> list[dict]:
    from quantarena.strategies.ml import MLAgent
    from quantarena.strategies.ml import rolling as R

    bars = _bars(LOOKBACK + 10_000)
    rows: list[dict] = []
    backends = [("cpu", np)]
    cp = _gpu_xp()
    if cp is not None:
        backends.append(("gpu", cp))
    for label, xp in backends:
        ag = MLAgent()
        data = ag.prepare(bars, xp)
        for model in ("mlp", "gru"):
            cfg = ag.configs(ag.grid(**_cases(model)), bars.interval_ns)[0]
            R.fit_at(data, cfg, 0, 600, seed=0)  # warm up (first-call allocations, cuDNN)
            times = []
            for rep in range(2):
                r = LOOKBACK + rep * EVERY
                t0 = time.perf_counter()
                fit = R.fit_at(data, cfg, *R.train_rows(r, cfg.lookback), seed=rep)
                if xp is not np:
                    xp.cuda.Device().synchronize()
                times.append(time.perf_counter() - t0)
            import torch

            from quantarena.strategies.ml.models import predict

            Xb = data.windows(cfg.window)[
                LOOKBACK - cfg.window + 1 : LOOKBACK + EVERY - cfg.window + 1
            ]
            t0 = time.perf_counter()
            predict(fit.model, Xb.reshape(EVERY, cfg.window, -1))
            if xp is not np:
                torch.cuda.synchronize()
            t_pred = time.perf_counter() - t0
            sec = min(times)
            rows.append(
                {
                    "case": f"{model} refit, {LOOKBACK:,}-bar window ({label})",
                    "seconds": sec,
                    "s/epoch": sec / max(fit.epochs_run, 1),
                    "samples/s (train)": fit.n_train * fit.epochs_run / sec,
                    "predict 1,000 bars (s)": t_pred,
                }
            )
            console.print(rows[-1])
            t0 = time.perf_counter()
            ag.positions(bars, ag.grid(**_cases(model)), xp)
            wall = time.perf_counter() - t0
            n_refits = len(ag.last_refits[0])
            rows.append(
                {
                    "case": f"{model} rolling run: {bars.n_bars:,} bars, {n_refits} refits ({label})",
                    "seconds": wall,
                    "s/refit": wall / max(n_refits, 1),
                }
            )
            console.print(rows[-1])
    return rows


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
