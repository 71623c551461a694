"""Issue 'Training': tuned classic agents and a torch ML agent inside a real tournament."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantarena.config import TournamentConfig

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "sample" / "btc-perp-20211231-20220201_1m.csv"


def _cfg(tmp_path: Path) -> TournamentConfig:
    return TournamentConfig.from_dict(
        {
            "name": "train-small",
            "seed": 3,
            "data": {
                "files": [{"path": str(BTC), "symbol": "BTCPERP"}],
                "interval": "15m",
                "start": "2022-01-08",
            },
            "schedule": {"round": "7d", "lookback": "4d", "warmup": "1d"},
            "agents": [
                {
                    "name": "trend-tuned",
                    "kind": "momentum",
                    "params": {"fast": "2:20:1", "slow": "10:80:2"},
                    "tuning": {"sampler": "tpe", "trials": 48, "batch": 24, "oos_top": 6},
                },
                {
                    "name": "learner",
                    "kind": "ml",
                    "params": {
                        "model": ["mlp"],
                        "hidden": [8],
                        "window": [4],
                        "lookback": ["2d"],
                        "retrain_every": ["1d"],
                        "epochs": [3],
                    },
                },
            ],
            "costs": {"fee_bps": 2, "slippage_bps": 0},
            "allocation": {"min_rounds": 1},
            # every gate off: both agents "pass", so the learner's latest model is registered
            "gates": {
                "min_sharpe": None,
                "max_drawdown": None,
                "min_win_rate": None,
                "min_history_days": None,
                "min_paper_days": None,
            },
            "tracking": {"output_dir": str(tmp_path / "out")},
        }
    )


def test_tuned_and_ml_agents_run_a_tournament_and_log_models(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from quantarena.actors.driver import run_in_process

    cfg = _cfg(tmp_path)
    summary = run_in_process(cfg, log_mlflow=True, backend="cpu")
    rounds = summary["rounds"]
    assert rounds >= 2
    board = {r["agent"]: r for r in summary["leaderboard"]}
    assert set(board) == {"trend-tuned", "learner"}

    client = MlflowClient(tracking_uri=cfg.tracking.mlflow_uri)
    exp = client.get_experiment_by_name("train-small")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    # the tuned agent: trials really evaluated per round feed n_trials (48 asked, a few may be
    # pruned as invalid fast >= slow, and duplicates are replayed once)
    n_trials = client.get_metric_history(runs["trend-tuned"].info.run_id, "n_trials")
    assert len(n_trials) == rounds and all(0 < m.value <= 48 for m in n_trials)
    # the learner: one model per round on its run, the latest registered (gates pass)
    models = client.search_logged_models([exp.experiment_id])
    names = sorted(m.name for m in models)
    assert names == sorted(f"model-round-{k}" for k in range(rounds))
    assert summary["registered_models"] == {"learner": 1}
    mv = client.get_model_version("train-small-learner", "1")
    assert mv.tags["gate.passed"] == "true"


def test_same_seed_same_numbers_with_tuning_and_ml(tmp_path: Path) -> None:
    from quantarena.actors.driver import run_in_process

    a = run_in_process(_cfg(tmp_path / "a"), log_mlflow=False, backend="cpu")
    b = run_in_process(_cfg(tmp_path / "b"), log_mlflow=False, backend="cpu")
    import pandas as pd

    pd.testing.assert_frame_equal(pd.DataFrame(a["leaderboard"]), pd.DataFrame(b["leaderboard"]))
    pd.testing.assert_frame_equal(pd.DataFrame(a["portfolio"]), pd.DataFrame(b["portfolio"]))
