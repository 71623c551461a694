"""A whole tournament on the GPU equals the same tournament on the CPU.

The in-process path (no Ray, no MLflow): every agent's rounds, the ranking, the gates and the
allocation, once with ``backend="gpu"`` and once with ``backend="cpu"`` on the same real bars
(FTX BTC-PERP, 15m). Tolerance: a relative 1e-9 on every number of the leaderboard, the
portfolio and the capital weights; the same ranks, agents and gate verdicts. The replay is
exact to rounding; the agents' device indicators (blocked prefix sums) agree with the CPU's to
rounding, so only a comparison that ties to rounding could flip a weight (test_strategies
allows 1 in 10^4) — then this test fails and the GPU check's report shows what moved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
RTOL = 1e-9


def _config(out: Path):
    """Five agents (the path-dependent ones included), 3 weekly rounds, fees, slippage and
    stops."""
    from quantarena.config import TournamentConfig

    return TournamentConfig.from_dict({
        "name": "gpu-parity", "seed": 11,
        "data": {"files": [{"path": str(ROOT / "data/sample/btc-perp-20211231-20220201_1m.csv"),
                            "symbol": "BTCPERP"}],
                 "interval": "15m", "start": "2022-01-04", "end": "2022-02-01"},
        "schedule": {"round": "7d", "lookback": "5d", "warmup": "2d"},
        "agents": [
            {"name": "trend", "kind": "momentum",
             "params": {"fast": [4, 8, 12], "slow": [24, 48]}},
            {"name": "reversion", "kind": "mean_reversion",
             "params": {"window": [10, 20], "entry": [1.5, 2.0], "exit": 0.5}},
            {"name": "channel", "kind": "breakout",
             "params": {"window": [10, 20], "exit_window": [5, 10]}},
            {"name": "voltarget", "kind": "vol_target"},
            {"name": "hodl", "kind": "buy_hold"},
        ],
        "costs": {"fee_bps": 5, "slippage_bps": 1},
        "allocation": {"min_rounds": 1, "estimation_window": 4},
        "gates": {"min_sharpe": 0.0, "max_drawdown": 0.3, "min_win_rate": None,
                  "min_history_days": None, "min_paper_days": None},
        "tracking": {"output_dir": str(out)},
    })  # fmt: skip


def _frames_close(a: pd.DataFrame, b: pd.DataFrame, diff, tag: str) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b), tag
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if pd.api.types.is_numeric_dtype(a[col]) and not pd.api.types.is_bool_dtype(a[col]):
            diff(f"{tag}.{col}", x.astype(float), y.astype(float))
            np.testing.assert_allclose(
                y.astype(float), x.astype(float), rtol=RTOL, atol=1e-12, err_msg=f"{tag}.{col}"
            )
        else:
            assert (x == y).all(), f"{tag}.{col}: {x} vs {y}"


@pytest.mark.gpu
def test_in_process_tournament_on_the_gpu_equals_the_cpu_run(tmp_path: Path, max_abs_diff):
    from quantarena.actors.driver import run_in_process

    cpu = run_in_process(_config(tmp_path / "cpu"), log_mlflow=False, backend="cpu")
    gpu = run_in_process(_config(tmp_path / "gpu"), log_mlflow=False, backend="gpu")
    assert cpu["rounds"] == gpu["rounds"] >= 3
    lb_cpu, lb_gpu = pd.DataFrame(cpu["leaderboard"]), pd.DataFrame(gpu["leaderboard"])
    assert list(lb_cpu["agent"]) == list(lb_gpu["agent"])  # the same ranking
    assert lb_cpu["n_trades"].sum() > 0
    _frames_close(lb_cpu, lb_gpu, max_abs_diff, "tournament:leaderboard")
    _frames_close(
        pd.DataFrame(cpu["portfolio"]), pd.DataFrame(gpu["portfolio"]), max_abs_diff,
        "tournament:portfolio",
    )  # fmt: skip
    for m in ("kelly", "equal", "inverse_vol"):
        a = pd.read_csv(tmp_path / "cpu" / f"weights_{m}.csv")
        b = pd.read_csv(tmp_path / "gpu" / f"weights_{m}.csv")
        _frames_close(a, b, max_abs_diff, f"tournament:weights_{m}")
