"""Batched tuning on real bars: one model fit and one engine call per batch.

Work: tune ``momentum`` (fast 2..200, slow 10..1000, SMA; the default costs, fills at the next
bar's open) on the first 30,000 real FTX BTC-PERP 1-minute bars of ``data/sample``, 512 trials.

* speed: the batch TPE (``--sampler tpe``) with ``batch=256`` against the same sampler with
  ``batch=1`` (one fit and one engine call per trial), and Optuna's own TPE
  (``optuna-tpe``: multivariate, constant liar, refits on every ``ask``) at both widths, plus
  CMA-ES, QMC and random at 256. Goal: batch 256 ≥ 10× faster than batch 1.
* quality: the best Sharpe found by the batch TPE at batch 256 against Optuna's TPE at batch 256
  (same budget, same batches), averaged over seeds. Goal: no worse.

Reported per case: wall time, trials/s, engine calls and the engine's share of the time (the
rest is the sampler's ask/tell). Numba is warmed up first. ``python -m benchmarks.bench_tuning``
or ``python -m benchmarks.run --only tuning``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "sample" / "btc-perp-20211231-20220201_1m.csv"
N_BARS = 30_000
SPACE = {"fast": "2:200", "slow": "10:1000", "ma": "sma"}
N_TRIALS = 512
QUALITY_SEEDS = 10


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
    t0 = time.perf_counter()
    _, stats = run_batches(study, evaluate, sp, n_trials=N_TRIALS, batch=batch, valid=agent.valid)
    wall = time.perf_counter() - t0
    return {
        "case": f"{sampler}, batch {batch}",
        "trials": stats.asked,
        "engine_calls": stats.simulations,
        "wall_s": wall,
        "trials_per_s": stats.asked / wall,
        "engine_share": engine[0] / wall,
        "best_sharpe": float(study.best_value),
    }


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
    warm = {"fast": np.array([5, 6]), "slow": np.array([50, 60]), "ma": np.array(["sma"] * 2)}
    evaluate_population(bars.select(slice(0, 5000)), agent, warm)  # numba warm-up

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
    for sampler, batch in cases:
        r = _case(bars, agent, sampler, batch)
        console.print(
            f"  {r['case']:<22} {r['trials']:>5} trials in {r['wall_s']:6.2f} s → "
            f"{r['trials_per_s']:8.1f} trials/s; {r['engine_calls']} engine calls, "
            f"engine {100 * r['engine_share']:.0f}% of the time; best Sharpe "
            f"{r['best_sharpe']:.2f}"
        )
        rows.append(r)
    by = {r["case"]: r for r in rows}
    for s in ("tpe", "optuna-tpe"):
        sp = by[f"{s}, batch 256"]["trials_per_s"] / by[f"{s}, batch 1"]["trials_per_s"]
        by[f"{s}, batch 256"]["speedup_vs_batch1"] = sp
        console.print(f"  → {s}: batch 256 is {sp:.1f}× faster than batch 1")

    best: dict[str, list[float]] = {"tpe": [], "optuna-tpe": []}
    for seed in range(QUALITY_SEEDS):
        for s in best:
            best[s].append(_case(bars, agent, s, 256, seed=seed)["best_sharpe"])
    for s, vals in best.items():
        console.print(
            f"  quality over {QUALITY_SEEDS} seeds, {s} batch 256: mean best Sharpe "
            f"{np.mean(vals):.3f} (min {np.min(vals):.3f}, max {np.max(vals):.3f})"
        )
        rows.append(
            {
                "case": f"{s}, batch 256, best Sharpe over {QUALITY_SEEDS} seeds",
                "best_sharpe": float(np.mean(vals)),
                "best_sharpe_min": float(np.min(vals)),
                "best_sharpe_max": float(np.max(vals)),
            }
        )
    diff = np.asarray(best["tpe"]) - np.asarray(best["optuna-tpe"])  # paired by seed
    se = float(np.std(diff, ddof=1) / np.sqrt(len(diff)))
    console.print(
        f"  batch TPE − Optuna's TPE, paired by seed: {np.mean(diff):+.3f} ± {se:.3f} (1 s.e.)"
    )
    rows.append(
        {
            "case": "batch TPE − Optuna TPE, best Sharpe, paired",
            "best_sharpe": float(np.mean(diff)),
            "best_sharpe_se": se,
        }
    )
    for r in rows:
        r["backend"] = be
        r["bars"] = bars.n_bars
    return rows


if __name__ == "__main__":
    from rich.console import Console

    out = run(Console())
    print(json.dumps(out, indent=2, default=str))
