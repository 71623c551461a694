"""Batched tuning on real bars: one model fit and one engine call per batch.

Work: tune ``momentum`` (fast 2..200, slow 10..1000, SMA; the default costs, fills at the next
bar's open) on the first 30,000 real FTX BTC-PERP 1-minute bars of ``data/sample``, 512 trials.

* speed: the batch TPE (``--sampler tpe``) with ``batch=256`` against the same sampler with
  ``batch=1`` (one fit and one engine call per trial), and Optuna's own TPE
  (``optuna-tpe``: multivariate, constant liar, refits on every ``ask``) at both widths, plus
  CMA-ES, QMC and random at 256. Goal: batch 256 ≥ 10× faster than batch 1.
* quality: the best value found by the batch TPE at batch 256 against Optuna's TPE at batch 256
  (same budget, same batches), paired by seed: mean difference ± 1 s.e. and a two-sided sign
  test, on two problems — the momentum Sharpe above, and the Hartmann-6 function (6 floats in
  [0, 1], maximise −H6, optimum 3.32237) so the sampler is not tuned to one landscape. Goal: no
  worse. Seeds: ``QA_TUNING_SEEDS`` (default 3, to keep the suite short; Optuna's TPE costs
  ≈ 10 s a seed) or ``python -m benchmarks.bench_tuning --seeds 100``.

Reported per case: wall time (the fastest of ``QA_TUNING_REPEATS`` runs, default 2), the
process's CPU time in that run (all threads; steadier than wall on a shared machine),
trials/s, engine calls and the engine's share of the time (the rest is the sampler's
ask/tell). The engine (one call on all the bars, 256 sets) and every timed sampler and width
(a short run each on 2,000 bars) are warmed up first, so no case pays the first call's
imports, Numba cache loads and first touches of the big arrays.
``python -m benchmarks.bench_tuning`` or ``python -m benchmarks.run --only tuning``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "sample" / "btc-perp-20211231-20220201_1m.csv"
N_BARS = 30_000
SPACE = {"fast": "2:200", "slow": "10:1000", "ma": "sma"}
N_TRIALS = 512
QUALITY_SEEDS = int(os.environ.get("QA_TUNING_SEEDS", "3"))
#: each speed case runs this many times and reports its fastest run, so no case's figure
#: depends on what ran before it (allocator and page-cache state, other jobs' bursts)
REPEATS = int(os.environ.get("QA_TUNING_REPEATS", "2"))
QUALITY_ONLY = False  # --quality-only: skip the speed cases

# Hartmann-6 (Surjanovic & Bingham's library): maximise sum_i c_i exp(-sum_j a_ij (x_j - p_ij)^2)
H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
H6_C = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x: np.ndarray) -> np.ndarray:
    """−H6 of points ``x`` (n, 6) in [0, 1]^6 (maximum 3.32237)."""
    inner = ((x[:, None, :] - H6_P[None]) ** 2 * H6_A[None]).sum(axis=2)
    return (H6_C[None] * np.exp(-inner)).sum(axis=1)


def _hartmann_best(sampler: str, seed: int) -> float:
    """Best −H6 found in ``N_TRIALS`` trials at batch 256."""
    from quantarena.strategies.params import Float
    from quantarena.training.tuning import create_study, run_batches

    space = {f"x{i}": Float(0.0, 1.0) for i in range(6)}

    def evaluate(pop: Any) -> dict[str, np.ndarray]:
        x = np.stack([np.asarray(pop[f"x{i}"], dtype=float) for i in range(6)], axis=1)
        return {"sharpe": hartmann6(x)}

    study = create_study(sampler=sampler, seed=seed, batch=256)
    run_batches(study, evaluate, space, n_trials=N_TRIALS, batch=256)
    return float(study.best_value)


def paired(ours: list[float], ref: list[float]) -> dict[str, float]:
    """Paired-by-seed comparison of ``ours`` − ``ref``: mean, 1 s.e., wins/losses and the
    two-sided sign-test p-value (ties dropped)."""
    from scipy.stats import binomtest

    d = np.asarray(ours, dtype=float) - np.asarray(ref, dtype=float)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    return {
        "mean": float(d.mean()),
        "se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan"),
        "wins": wins,
        "losses": losses,
        "sign_p": float(binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0,
    }


def _case(bars: Any, agent: Any, sampler: str, batch: int, seed: int = 7) -> dict:
    import optuna

    from quantarena.engine.costs import DEFAULT_COSTS
    from quantarena.training.samplers import restrict_space
    from quantarena.training.tuning import create_study, evaluate_population, run_batches

    sp = restrict_space(agent.space, SPACE)
    engine = [0.0]

    def evaluate(pop: Any) -> Any:
        t = time.perf_counter()
        out = evaluate_population(bars, agent, pop, DEFAULT_COSTS, backend="auto")
        engine[0] += time.perf_counter() - t
        return out

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_study(sampler=sampler, seed=seed, batch=batch)
    t0, c0 = time.perf_counter(), time.process_time()
    _, stats = run_batches(study, evaluate, sp, n_trials=N_TRIALS, batch=batch, valid=agent.valid)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "case": f"{sampler}, batch {batch}",
        "trials": stats.asked,
        "engine_calls": stats.simulations,
        "wall_s": wall,
        "cpu_s": cpu,
        "trials_per_s": stats.asked / wall,
        "engine_share": engine[0] / wall,
        "best_sharpe": float(study.best_value),
    }


def _warm_up_samplers(bars: Any, agent: Any) -> None:
    """One short tuning run per sampler and width on a few bars, so that no timed case pays
    the first call's imports and Numba cache loads (the first case would pay them alone)."""
    import optuna

    from quantarena.training.samplers import restrict_space
    from quantarena.training.tuning import create_study, evaluate_population, run_batches

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sp = restrict_space(agent.space, SPACE)
    cases = [("tpe", 256, 512), ("tpe", 1, 12), ("optuna-tpe", 256, 12), ("optuna-tpe", 1, 12)]
    cases += [(s, 256, 512) for s in ("cmaes", "qmc", "random")]
    for sampler, batch, n in cases:  # the timed cases' samplers and widths
        study = create_study(sampler=sampler, seed=0, batch=batch)
        run_batches(
            study,
            lambda pop: evaluate_population(bars, agent, pop),
            sp,
            n_trials=n,
            batch=batch,
            valid=agent.valid,
        )


def run(console: Any) -> list[dict]:
    """Run the benchmark, print it, and return the table rows."""
    from quantarena.engine.api import load_bars_any
    from quantarena.engine.backend import get_backend
    from quantarena.strategies.registry import get_agent
    from quantarena.training.tuning import evaluate_population

    bars = load_bars_any(DATA).select(slice(0, N_BARS))
    agent = get_agent("momentum", max_position=1.0)
    be = get_backend("auto").name
    console.print(
        f"tuning momentum on {bars.n_bars:,} real 1m BTC-PERP bars ({be}), space {SPACE}, "
        f"{N_TRIALS} trials, default costs"
    )
    # warm-up: the engine on all bars with a batch-wide population (Numba, first touches of
    # the big arrays), then each timed sampler and width on a few bars
    fast = np.arange(2, 258)
    warm = {"fast": fast, "slow": fast * 3 + 10, "ma": np.array(["sma"] * len(fast))}
    evaluate_population(bars, agent, warm)
    _warm_up_samplers(bars.select(slice(0, 2000)), agent)

    rows = []
    cases = [
        ("tpe", 256),
        ("tpe", 1),
        ("optuna-tpe", 256),
        ("optuna-tpe", 1),
        ("cmaes", 256),
        ("qmc", 256),
        ("random", 256),
    ]
    for sampler, batch in [] if QUALITY_ONLY else cases:
        runs = [_case(bars, agent, sampler, batch) for _ in range(REPEATS)]
        r = min(runs, key=lambda x: x["wall_s"])  # the same trials each time (seeded)
        r["repeats"] = REPEATS
        console.print(
            f"  {r['case']:<22} {r['trials']:>5} trials in {r['wall_s']:6.2f} s "
            f"({r['cpu_s']:.2f} CPU-s) → "
            f"{r['trials_per_s']:8.1f} trials/s; {r['engine_calls']} engine calls, "
            f"engine {100 * r['engine_share']:.0f}% of the time; best Sharpe "
            f"{r['best_sharpe']:.2f}"
        )
        rows.append(r)
    by = {r["case"]: r for r in rows}
    for s in [] if QUALITY_ONLY else ("tpe", "optuna-tpe"):
        sp = by[f"{s}, batch 256"]["trials_per_s"] / by[f"{s}, batch 1"]["trials_per_s"]
        cpu_sp = by[f"{s}, batch 1"]["cpu_s"] / by[f"{s}, batch 256"]["cpu_s"]
        by[f"{s}, batch 256"]["speedup_vs_batch1"] = sp
        by[f"{s}, batch 256"]["cpu_speedup_vs_batch1"] = cpu_sp
        console.print(
            f"  → {s}: batch 256 is {sp:.1f}× faster than batch 1 (CPU time: {cpu_sp:.1f}×)"
        )

    problems = {
        "momentum Sharpe": lambda smp, seed: _case(bars, agent, smp, 256, seed=seed)["best_sharpe"],
        "Hartmann-6": _hartmann_best,
    }
    for problem, best_of in problems.items():
        best = {
            s: [best_of(s, seed) for seed in range(QUALITY_SEEDS)] for s in ("tpe", "optuna-tpe")
        }
        for s, vals in best.items():
            rows.append(
                {
                    "case": f"{s}, batch 256, {problem}: mean best over {QUALITY_SEEDS} seeds",
                    "best": float(np.mean(vals)),
                    "best_min": float(np.min(vals)),
                    "best_max": float(np.max(vals)),
                }
            )
        cmp = paired(best["tpe"], best["optuna-tpe"])
        console.print(
            f"  {problem}, {QUALITY_SEEDS} seeds at batch 256: batch TPE {np.mean(best['tpe']):.3f}, "
            f"Optuna TPE {np.mean(best['optuna-tpe']):.3f}; paired by seed "
            f"{cmp['mean']:+.3f} ± {cmp['se']:.3f} (1 s.e.), batch TPE better in {cmp['wins']}, "
            f"worse in {cmp['losses']} (sign test p = {cmp['sign_p']:.3g})"
        )
        rows.append({"case": f"batch TPE − Optuna TPE, {problem}, paired", **cmp})
    for r in rows:
        r["backend"] = be
        r["bars"] = bars.n_bars
    return rows


if __name__ == "__main__":
    import argparse

    from rich.console import Console

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=QUALITY_SEEDS, help="seeds of the quality test")
    ap.add_argument("--quality-only", action="store_true", help="skip the speed cases")
    args = ap.parse_args()
    QUALITY_SEEDS = args.seeds
    QUALITY_ONLY = args.quality_only
    out = run(Console())
    print(json.dumps(out, indent=2, default=str))
