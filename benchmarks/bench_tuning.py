"""Batched Optuna tuning vs one trial at a time, on the same study setup.

Work: tune ``momentum`` (fast 2..200, slow 10..1000, SMA; 10 bps fees, fills at the next
bar's open) on 100,000 synthetic 1-minute bars (``synthetic_panel``, seed 7), seeded TPE
(multivariate, constant liar) and, for reference, the random sampler.

* batched: ``batch=256`` → one ``simulate`` call over 256 columns per batch;
* one at a time: ``batch=1`` → one ``simulate`` call per trial (what a plain
  ``study.optimize(objective)`` does), the same number of trials (512).

Reported per case: trials/s, engine calls, and the share of time spent in the engine (the
rest is Optuna's ask/tell: TPE's cost per ask grows with the number of trials). Numba is
warmed up first. ``python -m benchmarks.bench_tuning`` or
``python -m benchmarks.run --only tuning``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

N_BARS = 100_000
SEED = 7
SPACE = {"fast": "2:200", "slow": "10:1000", "ma": "sma"}
N_TRIALS = 512


def _case(bars: Any, agent: Any, costs: Any, sampler: str, batch: int, n_trials: int) -> dict:
    import optuna

    from quantarena.training.samplers import restrict_space
    from quantarena.training.tuning import create_study, evaluate_population, run_batches

    sp = restrict_space(agent.space, SPACE)
    engine = [0.0]

    def evaluate(pop: Any) -> Any:
        t = time.perf_counter()
        out = evaluate_population(bars, agent, pop, costs, backend="auto")
        engine[0] += time.perf_counter() - t
        return out

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_study(sampler=sampler, seed=SEED, batch=batch)
    t0 = time.perf_counter()
    _, stats = run_batches(study, evaluate, sp, n_trials=n_trials, batch=batch, valid=agent.valid)
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
    from quantarena.data.synthetic import synthetic_panel
    from quantarena.engine.backend import get_backend
    from quantarena.engine.costs import Costs, Fees
    from quantarena.strategies.registry import get_agent
    from quantarena.training.tuning import evaluate_population

    bars = synthetic_panel(1, N_BARS, "1m", seed=SEED)
    agent = get_agent("momentum", max_position=1.0)
    costs = Costs(fees=Fees(taker_bps=10.0))
    be = get_backend("auto").name
    console.print(
        f"tuning momentum on {N_BARS:,} synthetic 1m bars ({be}), space {SPACE}, 10 bps fees"
    )
    warm = {"fast": np.array([5, 6]), "slow": np.array([50, 60])}
    evaluate_population(bars.select(slice(0, 5000)), agent, warm, costs)  # numba warm-up

    rows = []
    for sampler in ("tpe", "random"):
        batched = _case(bars, agent, costs, sampler, 256, N_TRIALS)
        single = _case(bars, agent, costs, sampler, 1, N_TRIALS)  # same number of trials
        batched["speedup_vs_batch1"] = batched["trials_per_s"] / single["trials_per_s"]
        for r in (batched, single):
            console.print(
                f"  {r['case']:<18} {r['trials']:>5} trials in {r['wall_s']:6.2f} s → "
                f"{r['trials_per_s']:8.1f} trials/s; {r['engine_calls']} engine calls, "
                f"engine {100 * r['engine_share']:.0f}% of the time; best Sharpe "
                f"{r['best_sharpe']:.2f}"
            )
        console.print(f"  → batched is {batched['speedup_vs_batch1']:.1f}× faster ({sampler})")
        rows += [batched, single]
    for r in rows:
        r["backend"] = be
        r["bars"] = N_BARS
    return rows


if __name__ == "__main__":
    from rich.console import Console

    out = run(Console())
    print(json.dumps(out, indent=2, default=str))
