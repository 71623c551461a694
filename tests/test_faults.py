"""Faults and resume: checkpoints, ``--resume``, failed agent-rounds, MLflow retries.

Chaos tests compare against an undisturbed run of the same small config (two agents, three
3-day rounds of FTX BTC-PERP 15-minute bars): (2) a driver killed right after round 1, then
``--resume``: identical final numbers and one MLflow point per metric per round; (3) an agent
that raises on one round: the run completes, the round is scored flat, the traceback is in
MLflow and ``failed_rounds`` in the leaderboard. The Ray variants (an agent actor killed
mid-round) are in ``tests/test_tournament_ray.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.tournaments.checkpoint import (
    Checkpoint,
    check_resumable,
    config_fingerprint,
    load_checkpoint,
    resumable_view,
    save_checkpoint,
)
from quantarena.tournaments.pipeline import AgentRoundError, RoundPipeline

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "data/sample/btc-perp-20211231-20220201_1m.csv"
TESTS = Path(__file__).resolve().parent


def config_dict(out: Path, hodl_kind: str = "buy_hold") -> dict:
    return {
        "name": "faults-small", "seed": 3,
        "data": {"files": [{"path": str(CSV), "symbol": "BTCPERP"}], "interval": "15m",
                 "start": "2022-01-05", "end": "2022-01-20"},
        "schedule": {"round": "3d", "lookback": "4d", "warmup": "1d", "max_rounds": 3},
        "agents": [
            {"name": "trend", "kind": "momentum",
             "params": {"fast": [4, 8], "slow": [24, 48]}},
            {"name": "hodl", "kind": hodl_kind},
        ],
        "costs": {"fee_bps": 5, "slippage_bps": 1},
        "allocation": {"min_rounds": 1, "estimation_window": 4},
        "gates": {"min_sharpe": 0.0, "max_drawdown": 0.3, "min_win_rate": None,
                  "min_history_days": None, "min_paper_days": None},
        "tracking": {"output_dir": str(out)},
    }  # fmt: skip


def _cfg(d: dict):
    from quantarena.config import TournamentConfig

    return TournamentConfig.from_dict(d)


# ---------------------------------------------------------------------------- checkpoint file


def test_checkpoint_round_trips_atomically_local_and_fsspec(tmp_path):
    ck = Checkpoint(config_hash="h", config={"a": 1}, rounds_done=2,
                    results=[{"x": 1}, {"x": 2}], weights=[{"kelly": {}}] * 2)  # fmt: skip
    target = tmp_path / "sub" / "ck.pkl"
    save_checkpoint(ck, target)
    assert load_checkpoint(target) == ck
    assert sorted(p.name for p in target.parent.iterdir()) == ["ck.pkl", "ck.pkl.rounds"]
    assert sorted(p.name for p in (target.parent / "ck.pkl.rounds").iterdir()) == [
        "round-00000.pkl", "round-00001.pkl"]  # no temp file left  # fmt: skip
    ck.results.append({"x": 3})
    ck.weights.append({})
    ck.rounds_done = 3
    (target.parent / "ck.pkl.rounds" / "round-00000.pkl").write_bytes(b"not rewritten")
    save_checkpoint(ck, target, rounds=[2])  # one round written per checkpoint
    assert (target.parent / "ck.pkl.rounds" / "round-00000.pkl").read_bytes() == b"not rewritten"
    save_checkpoint(ck, "memory://faults-test/ck.pkl")
    assert load_checkpoint("memory://faults-test/ck.pkl") == ck
    assert load_checkpoint(tmp_path / "none.pkl") is None


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "ck.pkl"
    save_checkpoint(Checkpoint(config_hash="old", config={}), target)

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        save_checkpoint(Checkpoint(config_hash="new", config={}), target)
    assert load_checkpoint(target).config_hash == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pkl"]  # no temp file left


def test_resume_refuses_a_changed_config_in_one_line(tmp_path):
    d = _cfg(config_dict(tmp_path)).model_dump(mode="json")
    ck = Checkpoint(config_hash=config_fingerprint(d), config=resumable_view(d))
    moved = json.loads(json.dumps(d))
    moved["tracking"]["output_dir"] = "/elsewhere"
    moved["ray"]["num_cpus"] = 7
    moved["agents"][0]["gpu_fraction"] = 0.5
    check_resumable(moved, ck)  # placement and logging may change
    changed = json.loads(json.dumps(d))
    changed["agents"][0]["params"]["fast"] = [4, 9]
    with pytest.raises(ValueError) as exc:
        check_resumable(changed, ck, where="ck.pkl")
    msg = str(exc.value)
    assert "\n" not in msg and "agents[0].params.fast" in msg and "ck.pkl" in msg
    changed = json.loads(json.dumps(d))
    changed["costs"]["fee_bps"] = 10
    with pytest.raises(ValueError, match="costs.fee_bps"):
        check_resumable(changed, ck)


# ---------------------------------------------------------------------------- pipeline retries


class _Rnd:
    def __init__(self, index):
        self.index = index


def test_pipeline_retries_then_stands_in_for_a_failed_agent_round():
    rounds = [_Rnd(0), _Rnd(1)]
    fails = {("b", 0): 1, ("c", 1): 99}  # b fails once in round 0; c always in round 1
    calls = []

    def submit(agent, rnd):
        calls.append((agent, rnd.index))
        return (agent, rnd.index, len(calls))

    def wait_any(handles):
        h = handles[0]
        key = (h[0], h[1])
        if fails.get(key, 0) > 0:
            fails[key] -= 1
            return h, AgentRoundError(f"Traceback...\nRuntimeError: {key}")
        return h, f"{h[0]}{h[1]}"

    flat = []

    def on_failed(agent, rnd, error, previous):
        flat.append((agent, rnd.index, previous, error.splitlines()[-1]))
        return "flat"

    pipe = RoundPipeline(["a", "b", "c"], rounds, submit, wait_any, 1, retries=2,
                         on_failed=on_failed)  # fmt: skip
    assert pipe.results(rounds[0]) == {"a": "a0", "b": "b0", "c": "c0"}
    assert pipe.results(rounds[1]) == {"a": "a1", "b": "b1", "c": "flat"}
    assert pipe.retried == [("b", 0), ("c", 1), ("c", 1)]
    assert flat == [("c", 1, "c0", "RuntimeError: ('c', 1)")]
    assert pipe.latest == {"a": "a1", "b": "b1", "c": "flat"}
    with pytest.raises(RuntimeError, match="agent x, round 0 failed"):
        fails[("x", 0)] = 1
        RoundPipeline(["x"], rounds[:1], submit, wait_any, 1).results(rounds[0])


# ---------------------------------------------------------------------------- tournaments


def _register_failing(monkeypatch) -> None:
    from quantarena.strategies import registry

    monkeypatch.syspath_prepend(str(TESTS))
    from faulty_agent import FailingBuyHold

    registry._load_builtins()
    monkeypatch.setitem(registry._REGISTRY, FailingBuyHold.name, FailingBuyHold)


def _run(cfg, **kw):
    from quantarena.actors.driver import run_in_process

    return run_in_process(cfg, **kw)


def _metric_points(uri: str, run_id: str) -> dict[str, list[int]]:
    from mlflow import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    return {
        k: sorted(m.step for m in c.get_metric_history(run_id, k))
        for k in c.get_run(run_id).data.metrics
    }


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    out = tmp_path_factory.mktemp("undisturbed")
    summary = _run(_cfg(config_dict(out)))
    return summary, out


def _board(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "leaderboard.csv").set_index("agent").sort_index()


_KILL = """
import os, sys
from quantarena.config import TournamentConfig
from quantarena.actors.driver import run_in_process
cfg = TournamentConfig.from_yaml(sys.argv[1])
def progress(done, total, stage):
    if done == int(sys.argv[2]):
        os._exit(137)  # the driver dies right after round k's checkpoint
run_in_process(cfg, progress=progress)
"""


def test_chaos_killed_driver_resumes_to_identical_numbers(tmp_path, undisturbed):
    """Chaos 2: kill the driver after round 1, --resume: the same numbers as an undisturbed
    run, and one MLflow point per metric per round in the same runs."""
    from quantarena.cli.tournament_run import absolute_uri

    ref_summary, ref_out = undisturbed
    out = tmp_path / "run"
    cfg = _cfg(config_dict(out))
    path = tmp_path / "cfg.yaml"
    path.write_text(cfg.to_yaml())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", _KILL, str(path), "1"], env=env,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 137, p.stderr[-2000:]
    ck = load_checkpoint(out / "checkpoint.pkl")
    assert ck.rounds_done == 1 and set(ck.run_ids) == {"parent", "trend", "hodl"}
    assert not (out / "leaderboard.csv").exists()

    moved = config_dict(out)
    moved["ray"] = {"num_cpus": 1}  # placement may change on resume
    summary = _run(_cfg(moved), resume=True)
    assert summary["run_id"] == ck.run_ids["parent"]  # the same MLflow run
    pd.testing.assert_frame_equal(_board(out), _board(ref_out))
    assert summary["portfolio"] == ref_summary["portfolio"]
    for name in ("equity_agents.csv", "equity_portfolio.csv", "weights_kelly.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / name), pd.read_csv(ref_out / name))

    uri = absolute_uri(summary["mlflow_uri"], out)
    ref_uri = absolute_uri(ref_summary["mlflow_uri"], ref_out)
    for run in ("parent", "trend"):
        got = _metric_points(uri, ck.run_ids[run])
        from mlflow import MlflowClient

        ref_c = MlflowClient(tracking_uri=ref_uri)
        ref_parent = ref_summary["run_id"]
        ref_id = ref_parent if run == "parent" else next(
            r.info.run_id for r in ref_c.search_runs(
                [ref_c.get_run(ref_parent).info.experiment_id],
                f"tags.`quantarena.agent` = '{run}'")
        )  # fmt: skip
        assert got == _metric_points(ref_uri, ref_id)  # same keys, each step exactly once
        if run == "trend":
            assert got["oos_sharpe"] == [0, 1, 2]
        assert MlflowClient(tracking_uri=uri).get_run(ck.run_ids[run]).info.status == "FINISHED"


def test_resume_refuses_a_changed_config_before_running(tmp_path, undisturbed):
    _, ref_out = undisturbed
    d = config_dict(ref_out)
    d["costs"]["fee_bps"] = 7
    with pytest.raises(ValueError, match=r"costs\.fee_bps.*--resume"):
        _run(_cfg(d), resume=True, log_mlflow=False)
    with pytest.raises(ValueError, match="no checkpoint to resume"):
        _run(_cfg(config_dict(tmp_path / "fresh")), resume=True, log_mlflow=False)


def test_chaos_agent_raising_on_one_round_is_scored_flat(tmp_path, undisturbed, monkeypatch):
    """Chaos 3: an agent raises on round 1 every time: the run completes, that agent-round
    counts flat (0 return), the traceback is in MLflow, the leaderboard shows it."""
    from mlflow import MlflowClient

    from quantarena.cli.tournament_run import absolute_uri
    from quantarena.tournaments.setup import prepare

    _register_failing(monkeypatch)
    cfg = _cfg(config_dict(tmp_path / "run", hodl_kind="failing_buy_hold"))
    inputs = prepare(cfg)
    r1 = inputs.rounds[1]
    monkeypatch.setenv("QA_FAIL_END_NS", str(int(inputs.panel.ts[r1.oos_end - 1])))
    summary = _run(cfg)
    out = Path(summary["output_dir"])
    board = _board(out)
    assert board.loc["hodl", "failed_rounds"] == 1 and board.loc["trend", "failed_rounds"] == 0
    eq = pd.read_csv(out / "equity_agents.csv", index_col=0)
    ts = pd.to_datetime(eq.index, utc=True).as_unit("ns").asi8
    in_r1 = (ts >= r1.oos_start_ns) & (ts < r1.oos_end_ns)
    h = eq["hodl"].to_numpy()
    first = np.flatnonzero(in_r1)[0]
    assert np.all(h[in_r1] == h[first - 1])  # flat through the failed round
    ref = pd.read_csv(undisturbed[1] / "equity_agents.csv", index_col=0)
    np.testing.assert_array_equal(eq["trend"].to_numpy(), ref["trend"].to_numpy())

    c = MlflowClient(tracking_uri=absolute_uri(summary["mlflow_uri"], out))
    parent = c.get_run(summary["run_id"])
    hodl = next(r for r in c.search_runs([parent.info.experiment_id])
                if r.data.tags.get("quantarena.agent") == "hodl")  # fmt: skip
    assert "planted failure" in hodl.data.tags["failed.round-1"]
    path = c.download_artifacts(hodl.info.run_id, "failures/round-1.txt", str(tmp_path))
    text = Path(path).read_text()
    assert "Traceback" in text and "RuntimeError: planted failure" in text


def test_agent_failing_once_is_retried_with_identical_numbers(tmp_path, undisturbed, monkeypatch):
    from quantarena.tournaments.setup import prepare

    _register_failing(monkeypatch)
    cfg = _cfg(config_dict(tmp_path / "run", hodl_kind="failing_buy_hold"))
    inputs = prepare(cfg)
    monkeypatch.setenv("QA_FAIL_END_NS", str(int(inputs.panel.ts[inputs.rounds[1].oos_end - 1])))
    monkeypatch.setenv("QA_FAIL_ONCE", str(tmp_path / "marker"))
    summary = _run(cfg, log_mlflow=False)
    assert (tmp_path / "marker").exists()  # it did fail once
    out = Path(summary["output_dir"])
    pd.testing.assert_frame_equal(_board(out), _board(undisturbed[1]))


# ---------------------------------------------------------------------------- MLflow faults


def test_retrying_backs_off_then_gives_up_and_never_retries_a_bad_request():
    from mlflow.exceptions import MlflowException

    from quantarena.tracking.mlflow_logger import retrying

    waits = []
    state = {"n": 0}

    def flaky():
        state["n"] += 1
        if state["n"] < 4:
            raise ConnectionError("server down")
        return "ok"

    assert retrying(flaky, retry_s=10, sleep=waits.append) == "ok"
    assert waits == [0.5, 1.0, 2.0]
    waits.clear()
    with pytest.raises(ConnectionError):
        retrying(lambda: (_ for _ in ()).throw(ConnectionError("x")), retry_s=3,
                 sleep=waits.append)  # fmt: skip
    assert waits == [0.5, 1.0]  # 0.5 + 1 + 2 > 3: gives up
    waits.clear()
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    bad = MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE)
    with pytest.raises(MlflowException):
        retrying(lambda: (_ for _ in ()).throw(bad), sleep=waits.append)
    assert waits == []


def test_mlflow_down_for_a_while_loses_nothing(tmp_path, monkeypatch):
    """The store fails on some calls: metrics stay buffered and arrive on a later flush; the
    experiment is tagged as a model-training experiment."""
    from mlflow import MlflowClient

    from quantarena.tracking.mlflow_logger import TournamentLogger

    uri = f"sqlite:///{tmp_path}/m.db"
    log = TournamentLogger(uri, "exp", buffer=True, retry_s=0.0)
    exp = MlflowClient(tracking_uri=uri).get_experiment(log.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    run = log.start({"x": 1})
    log.log_round(None, 0, {"m": 1.0})
    real = log.client._client.log_batch
    monkeypatch.setattr(log.client._client, "log_batch",
                        lambda *a, **k: (_ for _ in ()).throw(ConnectionError("down")))  # fmt: skip
    with pytest.raises(ConnectionError):
        log.flush()
    log.log_round(None, 1, {"m": 2.0})
    monkeypatch.setattr(log.client._client, "log_batch", real)
    log.finish()
    assert _metric_points(uri, run) == {"m": [0, 1]}


def test_tournament_survives_an_mlflow_outage(tmp_path, undisturbed, monkeypatch):
    """The store refuses 8 calls in a row mid-run (past the retries of one call): the
    tournament goes on (its rounds kept back while MLflow cools down) and completes with the
    same numbers, and every round's metrics reach MLflow once."""
    from mlflow import MlflowClient

    from quantarena.tracking import mlflow_logger

    monkeypatch.setattr(mlflow_logger.time, "sleep", lambda s: None)  # backoff without waiting
    real = MlflowClient.log_batch
    calls = {"n": 0}

    def flaky(self, *a, **k):
        calls["n"] += 1
        if 10 <= calls["n"] < 18:
            raise ConnectionError("MLflow server down")
        return real(self, *a, **k)

    monkeypatch.setattr(MlflowClient, "log_batch", flaky)
    with pytest.warns(RuntimeWarning, match="MLflow unreachable"):
        summary = _run(_cfg(config_dict(tmp_path / "run")))
    assert calls["n"] > 13 and "mlflow_error" not in summary
    assert len(summary["mlflow_warnings"]) >= 1
    out = Path(summary["output_dir"])
    pd.testing.assert_frame_equal(_board(out), _board(undisturbed[1]))
    from quantarena.cli.tournament_run import absolute_uri

    c = MlflowClient(tracking_uri=absolute_uri(summary["mlflow_uri"], out))
    parent = c.get_run(summary["run_id"])
    runs = c.search_runs([parent.info.experiment_id])
    trend = next(r for r in runs if r.data.tags.get("quantarena.agent") == "trend")
    assert _metric_points(c.tracking_uri, trend.info.run_id)["oos_sharpe"] == [0, 1, 2]
    assert parent.info.status == "FINISHED"


def test_cli_resume_refusal_is_one_line_and_failed_rounds_are_shown(tmp_path, undisturbed):
    from typer.testing import CliRunner

    from quantarena.cli import app
    from quantarena.cli.tournament_run import leaderboard_table

    _, ref_out = undisturbed
    d = config_dict(ref_out)
    d["costs"]["fee_bps"] = 7
    path = tmp_path / "cfg.yaml"
    path.write_text(_cfg(d).to_yaml())
    res = CliRunner().invoke(app, ["tournament", "run", str(path), "--no-ray", "--resume"])
    assert res.exit_code == 2
    err = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "costs.fee_bps (5.0 → 7.0)" in err[0]
    rows = [{"agent": "a", "failed_rounds": 0}, {"agent": "b", "failed_rounds": 2.0}]
    assert (
        "failed rounds (scored flat; tracebacks in MLflow): b 2"
        in leaderboard_table(rows, "t").caption
    )


def test_resume_fills_in_metrics_mlflow_missed_before_the_stop(tmp_path, monkeypatch):
    """MLflow goes down after round 0 and the driver stops after round 1: the checkpoint has
    both rounds, MLflow only round 0. The resumed run logs round 1 from the checkpoint and
    round 2 as played: every round exactly once."""
    from mlflow import MlflowClient

    from quantarena.cli.tournament_run import absolute_uri
    from quantarena.tracking import mlflow_logger

    monkeypatch.setattr(mlflow_logger.time, "sleep", lambda s: None)
    real = MlflowClient.log_batch
    down = {"on": False}

    def flaky(self, *a, **k):
        if down["on"]:
            raise ConnectionError("MLflow server down")
        return real(self, *a, **k)

    monkeypatch.setattr(MlflowClient, "log_batch", flaky)
    cfg = _cfg(config_dict(tmp_path / "run"))

    class Stop(Exception):
        pass

    def progress(done, total, stage):
        if done == 1:
            down["on"] = True  # after round 0 was logged and checkpointed
        if done == 2:
            raise Stop

    with pytest.warns(RuntimeWarning, match="MLflow unreachable"), pytest.raises(Stop):
        _run(cfg, progress=progress)
    ck = load_checkpoint(tmp_path / "run" / "checkpoint.pkl")
    assert ck.rounds_done == 2
    uri = absolute_uri(cfg.tracking.mlflow_uri, tmp_path / "run")
    assert _metric_points(uri, ck.run_ids["trend"])["oos_sharpe"] == [0]
    down["on"] = False
    summary = _run(cfg, resume=True)
    assert summary["run_id"] == ck.run_ids["parent"]
    points = _metric_points(uri, ck.run_ids["trend"])
    assert points["oos_sharpe"] == [0, 1, 2] and points["weight"] == [0, 1, 2]
    assert _metric_points(uri, ck.run_ids["parent"])["equal_total_return"] == [0, 1, 2]


def test_submit_resume_and_results_kept_reach_the_job_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from quantarena.cli import app
    from quantarena.cluster import jobs

    seen = {}

    def fake_submit(config, **kw):
        seen.update(kw)
        return "raysubmit_x"

    monkeypatch.setattr(jobs, "submit", fake_submit)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        app, ["submit", str(ROOT / "configs/quick.yaml"), "--address", "http://127.0.0.1:8265",
              "--resume"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    cmd = seen["entrypoint"]
    assert cmd.endswith(" --resume")
    here = tmp_path.resolve()
    assert f"--mlflow-uri sqlite:///{here}/runs/quick/mlflow.db" in cmd
    assert f"--output-dir {here}/runs/quick" in cmd
