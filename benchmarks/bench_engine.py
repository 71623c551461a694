"""End to end: a moving-average-crossover grid, quantarena vs vectorbt.

Work (the same for both tools): 625 parameter sets (fast = 4..100 step 4 × slow = 110..350
step 10) of a long-only MA crossover at full size over 200,000 one-minute bars of a seeded
geometric random walk; indicators, positions, simulation with 10 bps fees (signals at the
close of bar t, filled at the open of t+1), Sharpe of every set.

* in-process: quantarena ``indicators → streaming signal → simulate`` (Numba warmed up
  first; the cold compile is measured separately in a fresh interpreter with an empty Numba
  cache) vs vectorbt ``MA.run`` → ``fast > slow`` → ``Portfolio.from_signals(fees=0.001)`` →
  ``sharpe_ratio()`` on a 25-set slice, extrapolated linearly to 625 (said in the output);
  the two Sharpe ratios of the slice are compared as a sanity check.
* whole command: ``python -m quantarena backtest --file …`` in a subprocess (interpreter
  start, imports, CSV load, run; second run, Numba cache warm) vs a vectorbt script doing
  the same in a subprocess on the 25-set slice, its compute time extrapolated to 625.

``python -m benchmarks.bench_engine`` or ``python -m benchmarks.run --only engine``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
N_BARS = 200_000
FAST = "4:100:4"
SLOW = "110:350:10"
FEE_BPS = 10.0
VBT_SETS = 25
SEED = 7


def synthetic_frame(n: int = N_BARS, seed: int = SEED):
    """One-minute OHLCV bars of a geometric random walk (pandas DataFrame, UTC index)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 8e-4, n)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0.0, 5e-4, n)) * close
    idx = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.uniform(5.0, 50.0, n),
        },
        index=idx,
    )


def _quantarena_run(panel: Any, agent: Any, params: dict, costs: Any) -> tuple[float, float, Any]:
    from quantarena.engine import simulate
    from quantarena.strategies.base import AgentSource

    t0 = time.perf_counter()
    state = agent.indicators(panel, params, np)
    t1 = time.perf_counter()
    src = AgentSource(agent, state, params, np, panel.n_bars, panel.n_assets)
    res = simulate(panel, src, costs, max_position=agent.max_position)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0, res


def _vbt_run(vbt: Any, df: Any, fast: list[int], slow: list[int]) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    c, o = df["close"], df["open"]
    f = vbt.MA.run(c, window=fast, short_name="fast").ma.to_numpy()
    s = vbt.MA.run(c, window=slow, short_name="slow").ma.to_numpy()
    long = f > s
    prev = np.vstack([np.zeros((1, long.shape[1]), bool), long[:-1]])
    entries, exits = long & ~prev, ~long & prev
    # decided at the close of bar t, filled at the open of bar t+1
    e1 = np.vstack([np.zeros((1, long.shape[1]), bool), entries[:-1]])
    x1 = np.vstack([np.zeros((1, long.shape[1]), bool), exits[:-1]])
    pf = vbt.Portfolio.from_signals(
        c, e1, x1, price=o, fees=FEE_BPS / 1e4, init_cash=1.0, freq="1min"
    )
    sharpe = np.asarray(pf.sharpe_ratio(), dtype=float)
    return time.perf_counter() - t0, sharpe


_COLD = textwrap.dedent("""
    import time, numpy as np
    t = time.perf_counter()
    from benchmarks.bench_engine import synthetic_frame
    from quantarena.engine import Costs, Fees, simulate
    from quantarena.engine.api import load_bars_any
    from quantarena.strategies import get_agent
    panel = load_bars_any(synthetic_frame(5000))
    ag = get_agent("momentum", max_position=1.0, long_only=True)
    p = ag.grid(fast="4:20:4", slow="30,40")
    simulate(panel, ag.source(panel, p), Costs(fees=Fees(taker_bps=10)), max_position=1.0)
    print(time.perf_counter() - t)
""")

_VBT_SCRIPT = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import numpy as np, pandas as pd
    import vectorbt as vbt
    t1 = time.perf_counter()
    df = pd.read_csv(sys.argv[1], parse_dates=["timestamp"], index_col="timestamp")
    t2 = time.perf_counter()
    fast = [int(x) for x in sys.argv[2].split(",")]
    slow = [int(x) for x in sys.argv[3].split(",")]
    c, o = df["close"], df["open"]
    f = vbt.MA.run(c, window=fast).ma.to_numpy()
    s = vbt.MA.run(c, window=slow).ma.to_numpy()
    long = f > s
    prev = np.vstack([np.zeros((1, long.shape[1]), bool), long[:-1]])
    z = np.zeros((1, long.shape[1]), bool)
    e1 = np.vstack([z, (long & ~prev)[:-1]]); x1 = np.vstack([z, (~long & prev)[:-1]])
    pf = vbt.Portfolio.from_signals(c, e1, x1, price=o, fees=0.001, init_cash=1.0, freq="1min")
    sr = pf.sharpe_ratio()
    best = int(np.nanargmax(np.asarray(sr)))
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "compute_s": t3 - t2, "best": best}))
""")


def _wall(cmd: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… failed: {proc.stderr[-800:]}")
    return wall, proc


def run(console: Any) -> list[dict]:
    """Run the benchmark, print it, and return the table rows."""
    from quantarena.engine import Costs, Fees
    from quantarena.engine.api import load_bars_any
    from quantarena.strategies import get_agent

    rows: list[dict] = []
    df = synthetic_frame()
    panel = load_bars_any(df)
    agent = get_agent("momentum", max_position=1.0, long_only=True)
    params = agent.grid(fast=FAST, slow=SLOW)
    P = len(params["fast"])
    updates = N_BARS * P
    costs = Costs(fees=Fees(taker_bps=FEE_BPS))
    console.print(
        f"MA crossover: {P} sets × {N_BARS:,} bars = {updates / 1e6:.0f} M bar-parameter "
        f"updates, {FEE_BPS:g} bps fees"
    )

    # cold compile, in a fresh interpreter with an empty numba cache
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        cold, _ = _wall([sys.executable, "-c", _COLD], env)
        warm, _ = _wall([sys.executable, "-c", _COLD], env)
    console.print(
        f"numba cold start (compile all kernels): {cold:.1f} s; same script with the "
        f"cache warm: {warm:.1f} s → compile ≈ {cold - warm:.1f} s"
    )
    rows.append({"case": "cold start: compile (fresh numba cache)", "quantarena_s": cold - warm})

    # in-process, warmed up
    _quantarena_run(load_bars_any(df.iloc[:5000]), agent, params, costs)
    best = None
    for _ in range(3):
        t_ind, t_all, res = _quantarena_run(panel, agent, params, costs)
        if best is None or t_all < best[1]:
            best = (t_ind, t_all, res)
    t_ind, t_all, res = best
    qa_rate = updates / t_all
    console.print(
        f"quantarena in-process: {t_all:.3f} s (indicators {t_ind:.3f} s, signal + "
        f"simulate {t_all - t_ind:.3f} s) → {qa_rate / 1e6:.0f} M updates/s "
        f"(target ≥ 150 M/s)"
    )

    try:
        import vectorbt as vbt
    except ImportError:
        console.print("[yellow]vectorbt not installed: peer comparison skipped[/]")
        rows.append(
            {
                "case": "in-process, end to end",
                "sets": P,
                "bars": N_BARS,
                "quantarena_s": t_all,
                "quantarena_M_per_s": qa_rate / 1e6,
            }
        )
        return rows
    pick = np.linspace(0, P - 1, VBT_SETS).round().astype(int)
    fast = params["fast"][pick].tolist()
    slow = params["slow"][pick].tolist()
    _vbt_run(vbt, df.iloc[:3000], fast[:2], slow[:2])  # compile vectorbt's kernels first
    t_vbt, vbt_sharpe = _vbt_run(vbt, df, fast, slow)
    vbt_full = t_vbt * P / VBT_SETS
    vbt_rate = updates / vbt_full
    ours = res.metrics["sharpe"][pick]
    agree = float(np.nanmax(np.abs(ours - vbt_sharpe)))
    console.print(
        f"vectorbt in-process: {t_vbt:.2f} s for {VBT_SETS} sets → {vbt_full:.1f} s "
        f"extrapolated to {P} → {vbt_rate / 1e6:.2f} M updates/s; "
        f"ratio {qa_rate / vbt_rate:.0f}× (target ≥ 100×); "
        f"max |Sharpe difference| on the slice {agree:.3f}"
    )
    rows.append(
        {
            "case": "in-process, end to end",
            "sets": P,
            "bars": N_BARS,
            "quantarena_s": t_all,
            "quantarena_M_per_s": qa_rate / 1e6,
            "vectorbt_s": vbt_full,
            "vectorbt_M_per_s": vbt_rate / 1e6,
            "speedup": qa_rate / vbt_rate,
            "note": f"vectorbt timed on {VBT_SETS} sets, extrapolated; |ΔSharpe| ≤ {agree:.3f}",
        }
    )

    # the whole command, in subprocesses
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "SYNUSDT-1m-2024.csv"
        df.reset_index().assign(
            timestamp=lambda d: d["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
        ).to_csv(csv, index=False)
        cli = [
            sys.executable,
            "-m",
            "quantarena",
            "backtest",
            "--file",
            str(csv),
            "--agent",
            "momentum",
            "--param",
            f"fast={FAST}",
            "--param",
            f"slow={SLOW}",
            "--fee-bps",
            str(FEE_BPS),
            "--long-only",
            "--max-position",
            "1",
            "--json",
        ]
        _wall(cli)  # first run: numba's cache warm after it
        t_cli, proc = _wall(cli)
        n_cli = json.loads(proc.stdout)["n_params"]
        script = Path(tmp) / "vbt_script.py"
        script.write_text(_VBT_SCRIPT)
        vcmd = [
            sys.executable,
            str(script),
            str(csv),
            ",".join(map(str, fast)),
            ",".join(map(str, slow)),
        ]
        _wall(vcmd)  # vectorbt's own numba cache warm
        t_vs, vproc = _wall(vcmd)
        phases = json.loads(vproc.stdout)
        vbt_cli = t_vs + phases["compute_s"] * (P / VBT_SETS - 1)
    console.print(
        f"whole command: `quantarena backtest` {t_cli:.2f} s for {n_cli} sets; vectorbt "
        f"script {t_vs:.2f} s for {VBT_SETS} sets (import {phases['import_s']:.1f} s, "
        f"CSV {phases['load_s']:.1f} s, compute {phases['compute_s']:.1f} s) → "
        f"{vbt_cli:.1f} s extrapolated to {P}; ratio {vbt_cli / t_cli:.0f}× "
        f"(target ≥ 20×)"
    )
    rows.append(
        {
            "case": "whole command in a subprocess",
            "sets": P,
            "bars": N_BARS,
            "quantarena_s": t_cli,
            "vectorbt_s": vbt_cli,
            "speedup": vbt_cli / t_cli,
            "note": f"vectorbt compute on {VBT_SETS} sets extrapolated; start-up + CSV counted once",
        }
    )
    return rows


if __name__ == "__main__":
    from rich.console import Console

    out = run(Console())
    print(json.dumps(out, indent=2, default=str))
