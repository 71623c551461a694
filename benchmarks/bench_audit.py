"""Time of the look-ahead audit per shipped agent on the bundled 45,031 BTC-PERP minute bars.

For each array agent (its default grid): the whole audit (every-bar check over the last 5,000
bars + truncate / perturb at 6 cuts + stream), the every-bar check alone, and the slow
definition it replaces — for each of the same 5,000 cuts ``c``, the positions on every prefix
``bars[:c+1]`` against the full run — timed on 50 cuts and scaled to 5,000 (both on the
every-bar check's parameter sets, Numba on one thread as in the check). For these shipped
agents the every-bar check is the incremental stream pass (docs/agents.md).

``python -m benchmarks.bench_audit`` or ``python -m benchmarks.run --only audit``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "btc-perp-20211231-20220201_1m.csv"
AGENTS = ["breakout", "buy_hold", "mean_reversion", "momentum", "vol_target"]
BRUTE_SAMPLE = 50


def run(console) -> list[dict]:
    from quantarena.engine.api import load_bars_any
    from quantarena.strategies.audit import (
        EVERY_BAR_PARAMS,
        EVERY_BAR_SPAN,
        _one_thread,
        audit,
        spread_indices,
    )
    from quantarena.strategies.params import take
    from quantarena.strategies.registry import get_agent

    bars = load_bars_any(SAMPLE)
    T = bars.n_bars
    rows = []
    for name in AGENTS:
        ag = get_agent(name)
        audit(ag, bars.select(slice(0, 1000)))  # compile the kernels
        t = time.perf_counter()
        res = audit(ag, bars)
        whole = time.perf_counter() - t
        t = time.perf_counter()
        audit(ag, bars, checks=("every_bar",))
        every = time.perf_counter() - t
        pop = ag.grid()
        pop = take(pop, spread_indices(len(next(iter(pop.values()))), EVERY_BAR_PARAMS))
        full = np.asarray(ag.positions(bars, pop))
        cuts = np.linspace(T - EVERY_BAR_SPAN, T - 2, BRUTE_SAMPLE).astype(int)
        t = time.perf_counter()
        with _one_thread():  # as the every-bar check runs
            for c in cuts:
                head = np.asarray(ag.positions(bars.select(slice(0, c + 1)), pop))
                assert np.allclose(head[c], full[c], atol=1e-7, equal_nan=True)
        brute = (time.perf_counter() - t) / BRUTE_SAMPLE * EVERY_BAR_SPAN
        rows.append(
            {
                "agent": f"{name} ({res.n_params} sets)",
                "audit (s)": whole,
                "every-bar check (s)": every,
                "every prefix, same cuts (s, est.)": brute,
                "speed-up": brute / every,
                "verdict": res.verdict,
            }
        )
        console.print(rows[-1])
    return rows


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
