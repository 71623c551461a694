"""Ray jobs against a REAL head node started with token auth (and stopped alone)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from quantarena.cluster.auth import ClusterAuthError
from quantarena.cluster.jobs import job_status, submit
from quantarena.cluster.local import LocalHead

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
TOKEN = secrets.token_hex(16)


@pytest.fixture(scope="module")
def head():
    h = LocalHead(num_cpus=1, token=TOKEN).start()
    yield h
    sid = h.proc.pid if h.proc else None
    h.stop()
    if sid is not None:  # nothing of ours is left running
        import psutil

        left = []
        for p in psutil.process_iter():
            try:
                if os.getsid(p.pid) == sid:
                    left.append(p.pid)
            except (OSError, psutil.Error):
                continue
        assert not left, f"processes of the stopped head remain: {left}"


@pytest.fixture()
def right_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)


def _app():
    import typer

    from quantarena.cli.tournament import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # keep `submit` a sub-command, as under the real root app
        pass

    register(app)
    return app


def test_cli_submits_waits_and_the_job_logs_to_mlflow(
    head: LocalHead, right_token, monkeypatch, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from quantarena.cluster import jobs

    uri = f"sqlite:///{tmp_path / 'job.db'}"
    monkeypatch.setattr(
        jobs, "TOURNAMENT_ENTRYPOINT", f"python tests/job_scripts/log_one_run.py {{config}} {uri}"
    )
    config = str(ROOT / "configs" / "quick.yaml")
    res = CliRunner().invoke(
        _app(), ["submit", config, "--address", head.dashboard_url, "--wait", "--timeout", "300"]
    )
    assert res.exit_code == 0, res.output
    m = re.search(r"submitted job (raysubmit_\w+)", res.output)
    assert m, res.output
    job_id = m.group(1)
    assert f"dashboard: {head.dashboard_url}/#/jobs/{job_id}" in res.output
    assert f"logged 2 agents of quick to {uri}" in res.output  # the job's own log, followed
    assert f"job {job_id} SUCCEEDED" in res.output
    # on a cluster at 127.0.0.1 the job's results are kept here (absolute URI): no warning
    assert "is relative" not in res.output
    assert job_status(job_id, address=head.dashboard_url) == "SUCCEEDED"

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("quick-job")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("quantarena.role") == "tournament")
    tags = parent.data.tags
    assert tags["job.id"] == job_id and tags["job.config"] == "configs/quick.yaml"
    # the job ran in an uploaded copy of the repo without the virtualenv or .git
    assert tags["job.has_package"] == "True"
    assert tags["job.has_venv"] == "False" and tags["job.has_git"] == "False"
    assert tags["job.ray_address_set"] == "True"
    assert parent.data.params["agents.0.name"] == "trend"
    children = {r.data.tags["quantarena.agent"]: r for r in runs if r is not parent}
    assert set(children) == {"trend", "reversion"}
    hist = client.get_metric_history(children["trend"].info.run_id, "grid_size")
    assert [(m.step, m.value) for m in hist] == [(0, 24.0)]


def test_cli_exits_1_when_the_job_fails(head: LocalHead, right_token, monkeypatch) -> None:
    from typer.testing import CliRunner

    from quantarena.cluster import jobs

    monkeypatch.setattr(
        jobs,
        "TOURNAMENT_ENTRYPOINT",
        "python -c 'import sys; print(\"boom\"); sys.exit(3)' {config}",
    )
    config = str(ROOT / "configs" / "quick.yaml")
    res = CliRunner().invoke(_app(), ["submit", config, "--address", head.dashboard_url, "--wait"])
    assert res.exit_code == 1, res.output
    m = re.search(r"submitted job (raysubmit_\w+)", res.output)
    assert m, res.output
    assert "boom" in res.output
    err = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1
    assert err[0].startswith(f"error: job {m.group(1)} ended FAILED")
    assert err[0].endswith(f"— logs: {head.dashboard_url}/#/jobs/{m.group(1)}")


def test_wrong_token_is_one_line_error(head: LocalHead, monkeypatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    with pytest.raises(ClusterAuthError) as info:
        submit(ROOT / "configs" / "quick.yaml", address=head.dashboard_url, log=lambda s: None)
    msg = str(info.value)
    assert msg.startswith(
        f"{head.dashboard_url}: the Ray cluster rejected the token from $RAY_AUTH_TOKEN — "
        "replace it with the cluster's token: put the cluster's token in ~/.ray/auth_token"
    )
    assert "\n" not in msg
    res = CliRunner().invoke(
        _app(), ["submit", str(ROOT / "configs" / "quick.yaml"), "--address", head.dashboard_url]
    )
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1  # the one-line error
    assert lines[-1].startswith("error: ") and "rejected the token" in lines[-1]


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(home)  # no ~/.ray/auth_token here
    return env


def test_missing_token_is_one_line_error(head: LocalHead, tmp_path: Path) -> None:
    code = (
        "import sys, typer\n"
        "from quantarena.cli.tournament import register\n"
        "app = typer.Typer()\n"
        "app.callback()(lambda: None)\n"
        "register(app)\n"
        "app()\n"
    )
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "submit",
            str(ROOT / "configs" / "quick.yaml"),
            "--address",
            head.dashboard_url,
        ],
        env=_clean_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1
    assert err[0] == (
        f"error: {head.dashboard_url}: the Ray cluster requires a token and none was found — put "
        "the cluster's token in ~/.ray/auth_token (or set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH "
        "to a file holding it); `ray get-auth-token` on the head node prints it"
    )


def test_connect_by_address_sends_the_token(head: LocalHead, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from quantarena.cluster.runtime import connect, resources\n"
        "info = connect(sys.argv[1])\n"
        "print('started', info.started, 'cpus', resources()['CPU'])\n"
    )
    env = _clean_env(tmp_path)
    env["RAY_AUTH_TOKEN_PATH"] = str(head.token_path)  # RAY_AUTH_MODE is left unset on purpose
    res = subprocess.run(
        [sys.executable, "-c", code, head.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "started False cpus 1.0" in res.stdout


def test_submitted_tournament_spreads_agents_over_two_nodes(
    head: LocalHead, right_token, monkeypatch, tmp_path: Path
) -> None:
    """A worker node joins the head (two nodes on this machine): `quantarena submit
    configs/quick.yaml --wait` runs the real tournament entrypoint, places its agents on both
    nodes, the data reaching them through the object store, logs every run to MLflow, and
    gives the numbers of the same tournament run in this process."""
    import json

    import pandas as pd
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from quantarena.actors.driver import run_in_process
    from quantarena.cli.tournament_run import with_tracking
    from quantarena.cluster import jobs
    from quantarena.config import TournamentConfig

    head.add_worker(num_cpus=1)
    monkeypatch.setattr(jobs, "TOURNAMENT_ENTRYPOINT", jobs.TOURNAMENT_ENTRYPOINT + " --json")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        _app(),
        ["submit", str(ROOT / "configs" / "quick.yaml"), "--address", head.dashboard_url,
         "--wait", "--timeout", "400", "--mlflow-uri", f"sqlite:///{tmp_path / 'm.db'}",
         "--output-dir", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "SUCCEEDED" in res.output
    assert "relative" not in res.output  # the absolute override silences the warning
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    runs = client.search_runs([client.get_experiment_by_name("quick").experiment_id])
    parent = [r for r in runs if r.data.tags.get("quantarena.role") == "tournament"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    children = {r.data.tags["quantarena.agent"]: r for r in runs if r is not parent[0]}
    assert set(children) == {"trend", "reversion"}
    n_rounds = len(client.get_metric_history(parent[0].info.run_id, "kelly_total_return"))
    assert n_rounds >= 2
    hist = client.get_metric_history(children["trend"].info.run_id, "oos_sharpe")
    assert sorted(m.step for m in hist) == list(range(n_rounds))
    assert (out / "leaderboard.csv").exists() and (out / "weights.png").exists()
    text = res.output
    start = text.index('\n{\n  "name"') + 1
    summary = json.loads(text[start : text.index("\n}\n", start) + 2])
    nodes = {i["agent"]: i["node_id"] for i in summary["agents_info"]}
    assert len(set(nodes.values())) == 2, nodes  # one agent per node
    monkeypatch.chdir(ROOT)  # the config's data path is relative to the repository
    cfg = with_tracking(
        TournamentConfig.from_yaml(ROOT / "configs" / "quick.yaml"), output_dir=tmp_path / "local"
    )
    local = run_in_process(cfg, log_mlflow=False)
    pd.testing.assert_frame_equal(
        pd.DataFrame(summary["leaderboard"]), pd.DataFrame(local["leaderboard"])
    )


def test_submitted_live_config_runs_the_director_as_a_job_without_leaking_the_password(
    head: LocalHead, right_token, monkeypatch, tmp_path: Path
) -> None:
    """`quantarena submit configs/<live>.yaml --idle-stop 2 --wait`: the job runs `quantarena
    live run` on a short replay already in Redis (a private server with a password, under a
    unique prefix), stops when the feed runs dry, and its reallocations are in Redis. The
    password reaches the job through QUANTARENA_REDIS only and appears in no log."""
    import shutil

    import yaml
    from ray.job_submission import JobSubmissionClient
    from typer.testing import CliRunner

    from quantarena.cluster.auth import auth_headers, find_token
    from quantarena.cluster.local import free_port
    from quantarena.engine.api import load_bars_any
    from quantarena.live.feed import replay
    from quantarena.live.redis_io import LiveKeys, connect

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    sys.path.insert(0, str(Path(__file__).parent))
    from live_redis import RedisServer

    password = "pw-" + secrets.token_hex(8)
    server = RedisServer(tmp_path / "redis", port=free_port(), password=password).start()
    prefix = f"qa-livejob-{secrets.token_hex(4)}"
    config = ROOT / "configs" / f"test-live-job-{secrets.token_hex(4)}.yaml"
    try:
        r = connect(server.url)
        bars = load_bars_any(
            ROOT / "data" / "sample" / "Coinbase_BTCUSD_1h.csv", None, "2018-01-01",
            "2018-01-11", None,
        )  # fmt: skip
        replay(r, LiveKeys(prefix).feed("btc1h"), bars)
        config.write_text(yaml.safe_dump({
            "redis_prefix": prefix, "feed": "btc1h", "out": "runs/live-job",
            "limits": {"max_drawdown": 0.5, "daily_loss": None},
            "allocation": {"every_days": 3, "capital": 100000.0,
                           "gates": {"min_sharpe": None, "min_win_rate": None,
                                     "max_drawdown": None, "min_paper_days": 1}},
            "agents": [{"name": "mom", "agent": "momentum", "params": {"fast": 12, "slow": 48}},
                       {"name": "hold", "agent": "buy_hold"}],
        }))  # fmt: skip
        monkeypatch.setenv("QUANTARENA_REDIS", server.url)
        res = CliRunner().invoke(
            _app(),
            ["submit", str(config), "--address", head.dashboard_url, "--wait", "--timeout",
             "300", "--idle-stop", "2"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        m = re.search(r"submitted job (raysubmit_\w+)", res.output)
        assert m and f"job {m.group(1)} SUCCEEDED" in res.output, res.output
        # the job ran the live director: 10 days of bars, reallocated every 3 days
        assert "live: 2 agents (mom, hold)" in res.output
        recs = r.xrange(LiveKeys(prefix).allocations())
        days = [json.loads(f[b"json"])["day"] for _, f in recs]
        first = int(bars.ts[0]) // 86_400_000_000_000
        assert days == [first + 3, first + 6, first + 9]
        assert f"stopped: {len(days)} reallocations" in res.output
        for _, f in recs:
            assert set(json.loads(f[b"json"])["weights"]) == {"mom", "hold"}
        # no log holds the password: the followed output, nor the job's logs on the cluster
        client = JobSubmissionClient(head.dashboard_url, headers=auth_headers(find_token(None)))
        logs = client.get_job_logs(m.group(1))
        assert "reallocation on day" in logs
        assert password not in res.output and password not in logs
        # a password in the config itself is refused before anything is submitted
        text = config.read_text()
        config.write_text(text + f"redis: {server.url}\n")
        res = CliRunner().invoke(_app(), ["submit", str(config), "--address", head.dashboard_url])
        assert res.exit_code == 2
        assert "the URL holds a password" in res.output and password not in res.output
    finally:
        config.unlink(missing_ok=True)
        server.stop()
