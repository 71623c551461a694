"""Fused signal + replay against the block path, and against a hand-fused kernel.

1. **One tournament round per agent**: each of the tournament benchmark's 8 agents
   (:data:`benchmarks.bench_tournament.KINDS`, 1,000 sets sampled from its grid) replays a
   round of 1-minute bars — 3 weeks in sample, then 1 week out of sample from the
   in-sample decision (``from_prior_close``) — with 5 bps fees and 1 bp slippage, through
   :class:`~quantarena.strategies.runner.PopulationRun` with ``fuse=False`` (the agent's
   target blocks built, then replayed: the path before fusion) and ``fuse=True``, in the
   same process, on the same indicators. The two must agree bit for bit (checked).
2. **Against a hand-fused kernel**: the engine benchmark's grid (long-only SMA crossover,
   625 sets × 200,000 bars, 10 bps fees) through ``run_population`` (fused and blocks),
   and through a minimal Numba kernel written for this one rule (crossover read from the
   same moving averages, fill at the next open with fees, equity, Sharpe accumulators and
   nothing else): the floor for this grid on this machine.

Wall and CPU seconds (all threads) are printed: on a shared machine the CPU figure is the
steadier one. ``python -m benchmarks.bench_fused`` or ``python -m benchmarks.run --only fused``.
"""

from __future__ import annotations

import time
from typing import Any

import numba as nb
import numpy as np

ROUND_BARS = (21 + 7) * 1440
WARMUP = 1440
POPULATION = 1000


def _timed(fn: Any, repeat: int = 2) -> tuple[float, float, Any]:
    """Best (wall s, CPU s) over ``repeat`` runs, and the last result."""
    best = (np.inf, np.inf)
    out = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, (time.perf_counter() - w, time.process_time() - c))
    return best[0], best[1], out


def _round_bars() -> Any:
    from quantarena.data.panel import BarPanel
    from quantarena.data.synthetic import synthetic_bars

    n = ROUND_BARS + WARMUP
    t = synthetic_bars(1, n, "1m", seed=11).to_pandas()
    return BarPanel.from_arrays(
        t["ts"].to_numpy(np.int64),
        t["open"].to_numpy(),
        t["high"].to_numpy(),
        t["low"].to_numpy(),
        t["close"].to_numpy(),
        t["volume"].to_numpy(),
        symbols=["SYN"],
    )


def _population(agent: Any, spec: dict, n: int, seed: int = 1) -> dict:
    grid = agent.grid(**spec)
    P = len(next(iter(grid.values())))
    idx = np.sort(np.random.default_rng(seed).choice(P, size=min(n, P), replace=False))
    return {k: np.asarray(v)[idx] for k, v in grid.items()}


def _round(agent: Any, bars: Any, pop: dict, costs: Any, fuse: bool, source: Any) -> tuple:
    from quantarena.strategies.runner import PopulationRun

    run = PopulationRun(agent, bars, pop, costs=costs, backend="cpu", fuse=fuse, source=source)
    is_end = WARMUP + 21 * 1440
    is_res = run.replay(slice(WARMUP, is_end))
    best = int(np.nanargmax(is_res.metrics["sharpe"]))
    oos = run.replay(slice(is_end, bars.n_bars), start=is_res.account(best), from_prior_close=True)
    return is_res, oos


def agent_rounds(console: Any) -> list[dict]:
    from benchmarks.bench_tournament import KINDS
    from quantarena.engine import Costs, Fees, Slippage
    from quantarena.strategies import get_agent

    bars = _round_bars()
    costs = Costs(fees=Fees(taker_bps=5.0), slippage=Slippage(bps=1.0))
    rows = []
    tot = {"blocks": 0.0, "fused": 0.0}
    for label, kind, spec in KINDS:
        agent = get_agent(kind)
        pop = _population(agent, spec, POPULATION)
        P = len(next(iter(pop.values())))
        w, c, _ = _timed(lambda a=agent, p=pop: a.source(bars, p), repeat=1)
        t_ind = w
        figures = {}
        results = {}
        for fuse in (False, True):
            # a fresh source each time: path-dependent agents start from bar 0 alike
            _round(agent, bars, pop, costs, fuse, agent.source(bars, pop))  # warm-up
            srcs = [agent.source(bars, pop) for _ in range(2)]
            it = iter(srcs)
            w, c, res = _timed(
                lambda a=agent, p=pop, f=fuse, s=it: _round(a, bars, p, costs, f, next(s))
            )
            figures[fuse] = (w, c)
            results[fuse] = res
        for a, b in zip(results[True], results[False], strict=True):
            for k in a.metrics:
                np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
        updates = (ROUND_BARS) * P
        (wb, cb), (wf, cf) = figures[False], figures[True]
        tot["blocks"] += wb
        tot["fused"] += wf
        console.print(
            f"{label:11s} {P:5d} sets: indicators {t_ind:.3f} s; round replay blocks "
            f"{wb:.3f} s (cpu {cb:.2f}) → fused {wf:.3f} s (cpu {cf:.2f}): {wb / wf:.1f}×, "
            f"{updates / wf / 1e6:.0f} M updates/s"
        )
        rows.append(
            {
                "benchmark": f"round replay {label} ({P} sets × {ROUND_BARS:,} 1m bars)",
                "blocks_s": wb,
                "fused_s": wf,
                "blocks_cpu_s": cb,
                "fused_cpu_s": cf,
                "speedup": wb / wf,
                "indicators_s": t_ind,
            }
        )
    console.print(
        f"8 agents, one round: blocks {tot['blocks']:.2f} s → fused {tot['fused']:.2f} s "
        f"({tot['blocks'] / tot['fused']:.1f}×); × 52 rounds ≈ {52 * tot['fused']:.0f} s of "
        "replay (wall, this machine now)"
    )
    return rows


# ------------------------------------------------------------------ the hand-fused floor


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _hand_fused(ma_tl, fi, si, op, cl, fee):  # pragma: no cover - compiled
    """Long-only SMA crossover at full size, filled at the next open with ``fee`` (a
    fraction of notional); per set: (sum r, sum r², final equity)."""
    P = fi.shape[0]
    T = cl.shape[0]
    out = np.zeros((P, 3))
    for p in nb.prange(P):
        f = ma_tl[fi[p]]
        s = ma_tl[si[p]]
        cash = 1.0
        sh = 0.0
        eprev = 1.0
        pend = 0.0
        last = 0.0
        sr = 0.0
        sr2 = 0.0
        for t in range(T):
            if pend != last:
                px = op[t]
                ef = cash + sh * px
                dsh = pend * ef / px - sh
                cash -= dsh * px + abs(dsh) * px * fee
                sh += dsh
                last = pend
            eq = cash + sh * cl[t]
            r = (eq - eprev) / eprev
            sr += r
            sr2 += r * r
            eprev = eq
            pend = 1.0 if f[t] > s[t] else 0.0
        out[p, 0] = sr
        out[p, 1] = sr2
        out[p, 2] = eprev
    return out


def hand_fused(console: Any) -> list[dict]:
    from benchmarks.bench_engine import FAST, FEE_BPS, N_BARS, SLOW, synthetic_frame
    from quantarena.engine import Costs, Fees
    from quantarena.engine import fused as R
    from quantarena.engine.api import load_bars_any
    from quantarena.strategies import get_agent
    from quantarena.strategies.runner import run_population

    panel = load_bars_any(synthetic_frame())
    agent = get_agent("momentum", max_position=1.0, long_only=True)
    params = agent.grid(fast=FAST, slow=SLOW)
    P = len(params["fast"])
    updates = N_BARS * P
    costs = Costs(fees=Fees(taker_bps=FEE_BPS))
    src = agent.source(panel, params)
    ma_tl = R.time_last(src.state["ma"])[0]
    src.state["ma_tl"] = ma_tl[None]
    op = np.ascontiguousarray(panel.open[:, 0])
    cl = np.ascontiguousarray(panel.close[:, 0])
    fi, si = src.state["fi"], src.state["si"]
    _hand_fused(ma_tl[:, :1000], fi, si, op[:1000], cl[:1000], FEE_BPS * 1e-4)
    run_population(agent, panel.select(slice(0, 3000)), params, costs=costs, backend="cpu")
    run_population(agent, panel.select(slice(0, 3000)), params, costs=costs, fuse=False)

    wh, ch, hand = _timed(lambda: _hand_fused(ma_tl, fi, si, op, cl, FEE_BPS * 1e-4), 3)
    wf, cf, res = _timed(lambda: run_population(agent, panel, params, source=src, costs=costs), 3)
    wb, cb, _ = _timed(lambda: run_population(agent, panel, params, source=src, costs=costs,
                                              fuse=False), 3)  # fmt: skip
    # same orders, same costs: the final equities agree to rounding
    eq_q = 1.0 + res.metrics["total_return"]
    agree = float(np.max(np.abs(eq_q - hand[:, 2]) / hand[:, 2]))
    console.print(
        f"SMA crossover {P} sets × {N_BARS:,} bars: hand-fused kernel {wh:.3f} s (cpu "
        f"{ch:.2f}); quantarena fused {wf:.3f} s (cpu {cf:.2f}) = {wf / wh:.2f}× the hand "
        f"kernel; blocks {wb:.3f} s (cpu {cb:.2f}) = {wb / wh:.2f}×; max relative "
        f"difference of final equity vs the hand kernel {agree:.1e}"
    )
    return [
        {
            "benchmark": f"SMA crossover {P} sets × {N_BARS:,} bars, replay (indicators shared)",
            "hand_fused_s": wh,
            "fused_s": wf,
            "blocks_s": wb,
            "fused_vs_hand": wf / wh,
            "blocks_vs_hand": wb / wh,
            "fused_M_per_s": updates / wf / 1e6,
            "equity_rel_diff": agree,
        }
    ]


def run(console: Any) -> list[dict]:
    return hand_fused(console) + agent_rounds(console)


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
