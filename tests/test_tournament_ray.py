"""The Ray path: a director actor and one agent actor per entrant on a local Ray with a
logical GPU, compared with the same tournament run in this process.

Ray starts once for the module (``num_cpus=2, num_gpus=1``): agents are placed with
fractional GPUs. On a CPU machine that GPU is only logical and the engine runs on the CPU
backend, two agent-rounds at a time (one per CPU); where CuPy sees a CUDA device the agents
compute on it, all at once. ``test_agents_compute_on_the_gpu_and_equal_the_cpu_run`` (marked
``gpu``) asks for the GPU backend explicitly and compares with the CPU run in this process.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
AGENTS = ["trend", "reversion", "channel", "hodl"]


def _on_gpu() -> bool:
    """Whether the agents' engine runs on a GPU here (``backend="auto"``)."""
    from quantarena.engine.backend import cuda_available

    return cuda_available()


def _config(out: Path):
    """Four agents at a quarter GPU each on FTX BTC-PERP bars (15m), 2 weekly rounds."""
    from quantarena.config import TournamentConfig

    return TournamentConfig.from_dict({
        "name": "ray-small", "seed": 5,
        "data": {"files": [{"path": str(ROOT / "data/sample/btc-perp-20211231-20220201_1m.csv"),
                            "symbol": "BTCPERP"}],
                 "interval": "15m", "start": "2022-01-11", "end": "2022-02-01"},
        "schedule": {"round": "7d", "lookback": "5d", "warmup": "1d"},
        "agents": [
            {"name": "trend", "kind": "momentum", "population": 4, "gpu_fraction": 0.25,
             "params": {"fast": [4, 8, 12], "slow": [24, 48]}},
            {"name": "reversion", "kind": "mean_reversion", "gpu_fraction": 0.25,
             "params": {"window": [10, 20], "entry": [1.5, 2.0], "exit": 0.5}},
            {"name": "channel", "kind": "breakout", "gpu_fraction": 0.25,
             "params": {"window": [10, 20], "exit_window": [5, 10]}},
            {"name": "hodl", "kind": "buy_hold", "gpu_fraction": 0.25},
        ],
        "costs": {"fee_bps": 5, "slippage_bps": 1},
        "allocation": {"min_rounds": 1, "estimation_window": 4},
        "gates": {"min_sharpe": 0.0, "max_drawdown": 0.3, "min_win_rate": None,
                  "min_history_days": None, "min_paper_days": None},
        "tracking": {"output_dir": str(out)},
    })  # fmt: skip


@pytest.fixture(scope="module")
def local_ray():
    from quantarena.cluster import runtime

    if ray.is_initialized():
        runtime.shutdown()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, namespace="quantarena-test")
    try:
        yield
    finally:
        runtime.shutdown()


@pytest.fixture(scope="module")
def ray_run(local_ray, tmp_path_factory: pytest.TempPathFactory):
    from quantarena.actors.driver import run_on_ray
    from quantarena.cluster.runtime import connect

    info = connect()  # idempotent: joins the Ray started above, starts nothing
    assert info.num_gpus == 1.0
    cfg = _config(tmp_path_factory.mktemp("ray") / "out")
    calls: list[tuple[int, int, str]] = []
    seen_actors: set[str] = set()

    def progress(done: int, total: int, stage: str) -> None:
        calls.append((done, total, stage))
        if stage.startswith("round"):  # the actors are alive while rounds run
            for name in [f"agent:{a}" for a in AGENTS] + [f"director:{cfg.name}"]:
                try:
                    ray.get_actor(name)
                    seen_actors.add(name)
                except ValueError:
                    pass

    summary = run_on_ray(cfg, progress=progress, poll_s=0.1)
    return cfg, summary, calls, seen_actors


def test_agents_are_placed_with_fractional_gpus_and_zero_copy_data(ray_run):
    cfg, summary, _, _ = ray_run
    infos = {i["agent"]: i for i in summary["agents_info"]}
    assert sorted(infos) == sorted(AGENTS)
    pids = {i["pid"] for i in infos.values()}
    assert len(pids) == len(AGENTS) and os.getpid() not in pids  # one process per agent
    for name, info in infos.items():
        assert info["resources"].get("GPU") == pytest.approx(0.25), name
        assert info["resources"].get("CPU", 0.0) <= 0.25, name
        assert info["gpu_ids"] == ["0"], name  # four quarters share the one logical GPU
        # "auto": CUDA where CuPy sees a device, else the CPU (the GPU is then only logical)
        assert info["backend"] == ("gpu" if _on_gpu() else "cpu"), name
        assert info["zero_copy"] is True, name  # read-only arrays: mapped from the object store
        assert info["n_bars"] == 21 * 24 * 4, name
    assert infos["trend"]["n_trials"] == 4 and infos["hodl"]["n_trials"] == 1


def test_actors_are_named_for_the_dashboard_and_gone_afterwards(ray_run):
    cfg, _, calls, seen = ray_run
    assert seen == {f"agent:{a}" for a in AGENTS} | {f"director:{cfg.name}"}
    for name in seen:  # killed when the tournament ended
        with pytest.raises(ValueError):
            ray.get_actor(name)
    assert calls[-1] == (2, 2, "done")
    done = [c[0] for c in calls]
    assert done == sorted(done)


def test_ray_result_equals_the_in_process_result(ray_run, tmp_path: Path):
    from quantarena.actors.driver import run_in_process

    cfg, summary, _, _ = ray_run
    local = run_in_process(_config(tmp_path / "local"), log_mlflow=False)
    assert summary["rounds"] == local["rounds"] == 2
    pd.testing.assert_frame_equal(
        pd.DataFrame(summary["leaderboard"]), pd.DataFrame(local["leaderboard"])
    )
    pd.testing.assert_frame_equal(
        pd.DataFrame(summary["portfolio"]), pd.DataFrame(local["portfolio"])
    )
    for m in ("kelly", "equal", "inverse_vol"):
        a = pd.read_csv(Path(summary["output_dir"]) / f"weights_{m}.csv")
        b = pd.read_csv(tmp_path / "local" / f"weights_{m}.csv")
        pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(
        pd.read_csv(Path(summary["output_dir"]) / "leaderboard.csv")["agent"],
        [r["agent"] for r in local["leaderboard"]],
    )


def test_the_director_actor_is_the_mlflow_writer(ray_run):
    from mlflow import MlflowClient

    cfg, summary, _, _ = ray_run
    client = MlflowClient(tracking_uri=cfg.tracking.mlflow_uri)
    parent = client.get_run(summary["run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_name for r in children) == sorted(AGENTS)
    for r in children:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "n_trials")]
        assert sorted(steps) == [0, 1]
    assert summary["timings"]["total"] > 0 and "data" in summary["timings"]
    n_trials = {"trend": 4, "reversion": 4, "channel": 4, "hodl": 1}
    from quantarena.tournaments.setup import prepare

    rounds = prepare(cfg).rounds
    expect = sum((r.n_is + r.n_oos) * sum(n_trials.values()) for r in rounds)
    assert summary["bar_param_updates"] == expect


def test_agent_rounds_run_as_many_at_a_time_as_there_are_cores(ray_run):
    from quantarena.actors.director import running_slots

    _, summary, _, _ = ray_run
    # on the CPU, num_cpus=2: two agent-rounds at once, not four; agents on a GPU all at once
    assert summary["timings"]["slots"] == (len(AGENTS) if _on_gpu() else 2)
    cpu = [{"agent": f"a{i}", "backend": "cpu", "node_id": "n1"} for i in range(8)]
    gpu = [{**i, "backend": "gpu"} for i in cpu]
    assert running_slots(None, cpu, {"n1": 2.0}) == ({"n1": 2}, {i["agent"]: "n1" for i in cpu})
    assert running_slots(None, cpu[:1], {"n1": 16.0})[0] == {"n1": 1}
    assert running_slots(None, gpu, {"n1": 2.0})[0] == {"": 8}  # all share the GPU
    assert running_slots(3, cpu, {"n1": 2.0})[0] == {"": 3}  # ray.max_running_agents wins
    # two nodes: each runs as many of its own agents at once as it has CPUs
    two = [{**i, "node_id": "n1" if k < 5 else "n2"} for k, i in enumerate(cpu)]
    slots, groups = running_slots(None, two, {"n1": 4.0, "n2": 1.0})
    assert slots == {"n1": 4, "n2": 1} and groups["a7"] == "n2"


def test_tuned_agents_running_ahead_keep_their_warm_starts_in_order(local_ray, tmp_path: Path):
    """Agents run rounds ahead of the director; a tuning agent's round k+1 is warm-started
    from its own round k, so it must still see its rounds in order: Ray == in process."""
    from quantarena.actors.driver import run_in_process, run_on_ray
    from quantarena.config import TournamentConfig

    def cfg(out: Path) -> TournamentConfig:
        return TournamentConfig.from_dict({
            "name": "ray-tuned", "seed": 2,
            "data": {"files": [{"path": str(ROOT / "data/sample/btc-perp-20211231-20220201_1m.csv"),
                                "symbol": "BTCPERP"}], "interval": "15m", "start": "2022-01-04"},
            "schedule": {"round": "5d", "lookback": "3d", "warmup": "1d"},
            "agents": [
                {"name": "tuned", "kind": "momentum",
                 "params": {"fast": "2:20:1", "slow": "10:80:2"},
                 "tuning": {"sampler": "tpe", "trials": 24, "batch": 12, "oos_top": 4}},
                {"name": "channel", "kind": "breakout",
                 "params": {"window": [10, 20], "exit_window": [5, 10]}},
                {"name": "hodl", "kind": "buy_hold"},
            ],
            "gates": {"min_history_days": None, "min_paper_days": None},
            "tracking": {"output_dir": str(out)},
        })  # fmt: skip

    on_ray = run_on_ray(cfg(tmp_path / "ray"), log_mlflow=False)
    local = run_in_process(cfg(tmp_path / "local"), log_mlflow=False)
    assert on_ray["rounds"] == local["rounds"] >= 4
    pd.testing.assert_frame_equal(
        pd.DataFrame(on_ray["leaderboard"]), pd.DataFrame(local["leaderboard"])
    )
    pd.testing.assert_frame_equal(
        pd.DataFrame(on_ray["portfolio"]), pd.DataFrame(local["portfolio"])
    )


@pytest.mark.gpu
def test_agents_compute_on_the_gpu_and_equal_the_cpu_run(local_ray, tmp_path: Path, max_abs_diff):
    """Agent actors holding a quarter of the GPU each really compute on it (CuPy, memory
    capped to their fraction), and the tournament equals the CPU run in this process to a
    relative 1e-9 (the same ranking)."""
    from quantarena.actors.driver import run_in_process, run_on_ray

    on_gpu = run_on_ray(_config(tmp_path / "gpu"), log_mlflow=False, backend="gpu")
    infos = {i["agent"]: i for i in on_gpu["agents_info"]}
    assert sorted(infos) == sorted(AGENTS)
    for name, info in infos.items():
        assert info["backend"] == "gpu", name
        assert info["resources"].get("GPU") == pytest.approx(0.25), name
        assert info["gpu_ids"] == ["0"], name
        assert info["memory_caps"].get("cupy_bytes", 0.0) > 0, name
    assert on_gpu["timings"]["slots"] == len(AGENTS)  # agents on a GPU run all at once
    cpu = run_in_process(_config(tmp_path / "cpu"), log_mlflow=False, backend="cpu")
    assert on_gpu["rounds"] == cpu["rounds"] == 2
    a, b = pd.DataFrame(on_gpu["leaderboard"]), pd.DataFrame(cpu["leaderboard"])
    assert list(a["agent"]) == list(b["agent"])
    for col in ("sharpe", "total_return", "max_drawdown", "weight"):
        max_abs_diff(f"ray-gpu:leaderboard.{col}", b[col].to_numpy(), a[col].to_numpy())
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(
        pd.DataFrame(on_gpu["portfolio"]), pd.DataFrame(cpu["portfolio"]),
        check_exact=False, rtol=1e-9, atol=1e-12,
    )  # fmt: skip
