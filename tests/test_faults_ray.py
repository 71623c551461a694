"""Faults on Ray (chaos tests against an undisturbed in-process run of the same config, whose
numbers the Ray path equals — ``tests/test_tournament_ray.py``):

1. an agent actor killed mid-run (``ray.kill(..., no_restart=False)``): Ray restarts it and
   retries its call, the director passes each call the agent's previous result — identical
   final numbers;
2. the driver stopped after round 1 (its director and agents die with it), then resumed from
   the checkpoint: identical final numbers;
3. an agent that raises on one round (a test agent built in the workers by a setup hook):
   retried, then scored flat; an agent actor killed with restarts off: its rounds fail past
   the retries and are scored flat (``failed_rounds``); the tournament completes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ray = pytest.importorskip("ray")

from test_faults import _board, _cfg, config_dict  # noqa: E402


def _fail_end_ns() -> int:
    """The last bar time of round 1's window: where the failing test agent raises."""
    from quantarena.tournaments.setup import prepare

    inputs = prepare(_cfg(config_dict(Path("/nonexistent-out"))))
    return int(inputs.panel.ts[inputs.rounds[1].oos_end - 1])


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    from quantarena.cluster import runtime

    if ray.is_initialized():
        runtime.shutdown()
    tests = str(Path(__file__).resolve().parent)
    root = str(Path(tests).parent)
    end = _fail_end_ns()
    env = {  # workers can build the failing test agent (it raises on round 1 only)
        "env_vars": {"PYTHONPATH": os.pathsep.join([root, tests]), "QA_FAIL_END_NS": str(end)},
        "worker_process_setup_hook": "faulty_agent.register",
    }
    ray.init(num_cpus=2, include_dashboard=False, namespace="quantarena-faults", runtime_env=env)
    try:
        yield
    finally:
        runtime.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from quantarena.actors.driver import run_in_process

    out = tmp_path_factory.mktemp("ref")
    run_in_process(_cfg(config_dict(out)), log_mlflow=False)
    return out


class _Stop(Exception):
    pass


def test_chaos_killed_agent_actor_restarts_to_identical_numbers(local_ray, reference, tmp_path):
    from quantarena.actors.driver import run_on_ray

    killed = []

    def progress(done: int, total: int, stage: str) -> None:
        if stage == "round 1" and not killed:  # the agents compute their first rounds
            actor = ray.get_actor("agent:trend")
            ray.kill(actor, no_restart=False)
            killed.append(done)

    summary = run_on_ray(_cfg(config_dict(tmp_path)), progress=progress, log_mlflow=False,
                         poll_s=0.05)  # fmt: skip
    assert killed == [0]
    pd.testing.assert_frame_equal(_board(Path(summary["output_dir"])), _board(reference))


def test_chaos_stopped_driver_resumes_on_ray_to_identical_numbers(local_ray, reference, tmp_path):
    from quantarena.actors.driver import run_on_ray
    from quantarena.tournaments.checkpoint import load_checkpoint

    cfg = _cfg(config_dict(tmp_path))

    def progress(done: int, total: int, stage: str) -> None:
        if done >= 1:
            raise _Stop  # the driver goes: its director (and the agents) are killed

    with pytest.raises(_Stop):
        run_on_ray(cfg, progress=progress, log_mlflow=False, poll_s=0.05)
    assert load_checkpoint(tmp_path / "checkpoint.pkl").rounds_done >= 1
    run_on_ray(cfg, log_mlflow=False, resume=True)
    pd.testing.assert_frame_equal(_board(tmp_path), _board(reference))


def test_chaos_agent_actor_dead_for_good_is_scored_flat(local_ray, reference, tmp_path):
    from quantarena.actors.driver import run_on_ray

    d = config_dict(tmp_path)
    d["ray"] = {"max_restarts": 0, "round_retries": 1}
    killed = []

    def progress(done: int, total: int, stage: str) -> None:
        if stage == "round 1" and not killed:
            ray.kill(ray.get_actor("agent:hodl"), no_restart=True)
            killed.append(done)

    summary = run_on_ray(_cfg(d), progress=progress, log_mlflow=False, poll_s=0.05)
    board = _board(Path(summary["output_dir"]))
    assert killed == [0]
    assert board.loc["hodl", "failed_rounds"] == 3  # every round after the kill counts flat
    assert board.loc["trend", "failed_rounds"] == 0
    ref = _board(reference)
    assert board.loc["trend", "total_return"] == ref.loc["trend", "total_return"]


def test_chaos_agent_raising_on_ray_is_retried_then_scored_flat(
    local_ray, reference, tmp_path, monkeypatch
):
    """Chaos 3 on Ray: the agent's actor raises on round 1 every time; the director retries
    it, then scores it flat; the run completes and the other agent is untouched."""
    from test_faults import _register_failing

    from quantarena.actors.driver import run_on_ray

    _register_failing(monkeypatch)  # here too: the config's agent kinds are checked on load
    summary = run_on_ray(_cfg(config_dict(tmp_path, hodl_kind="failing_buy_hold")),
                         log_mlflow=False)  # fmt: skip
    board = _board(Path(summary["output_dir"]))
    assert board.loc["hodl", "failed_rounds"] == 1
    assert board.loc["trend", "failed_rounds"] == 0
    ref = _board(reference)
    assert board.loc["trend", "total_return"] == ref.loc["trend", "total_return"]
    assert board.loc["hodl", "total_return"] != ref.loc["hodl", "total_return"]
