"""MLflow logging of a fake tournament (2 agents x 3 rounds), checked by querying MLflow back;
and the plots / tables of tracking/artifacts.py."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.config import TournamentConfig
from quantarena.tracking.artifacts import (
    drawdown,
    plot_drawdowns,
    plot_equity,
    plot_weights,
    save_figure,
    save_table_html,
    table_html,
)
from quantarena.tracking.mlflow_logger import TournamentLogger, default_artifact_location, flatten

CONFIG = {
    "name": "fake",
    "seed": 3,
    "data": {"files": [{"path": "data/sample/btc-perp-20211231-20220201_1m.csv", "symbol": "BTC"}]},
    "agents": [
        {"name": "trend", "kind": "momentum", "params": {"fast": "5:20:5", "slow": [50, 100]}},
        {"name": "revert", "kind": "mean_reversion", "params": {"window": [10, 20]}},
    ],
}

# metrics[agent][round] -> dict
METRICS = {
    "trend": [
        {"sharpe": 1.1, "return": 0.010},
        {"sharpe": 0.4, "return": -0.002},
        {"sharpe": 2.0, "return": 0.03},
    ],
    "revert": [
        {"sharpe": -0.5, "return": -0.01},
        {"sharpe": 0.9, "return": 0.004},
        {"sharpe": 1.6, "return": 0.02},
    ],
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _curves() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    r = rng.normal(0.0005, 0.01, size=(200, 3))
    eq = np.cumprod(1 + r, axis=0)
    return {
        "trend": eq[:, 0],
        "revert": eq[:, 1],
        "portfolio": eq[:, 2],
        "buy_hold": eq[:, 0] * 0.9,
    }


def _weights() -> pd.DataFrame:
    return pd.DataFrame(
        {"trend": [0.0, 0.3, 0.5], "revert": [0.0, 0.2, 0.4]},
        index=pd.Index([0, 1, 2], name="round"),
    )


def _run_fake_tournament(log: TournamentLogger, cfg: TournamentConfig) -> None:
    log.start(cfg)
    for agent in cfg.agents:
        log.agent_run(agent.name, kind=agent.kind)
    for rnd in range(3):
        for agent in cfg.agents:
            log.log_round(agent.name, rnd, METRICS[agent.name][rnd])
            log.log_params(
                agent.name,
                {"fast": 5 + 5 * rnd, "ma": "ema"} if agent.name == "trend" else {"window": 10},
                round_idx=rnd,
            )
        log.log_round(
            None, rnd, {"equity": 1.0 + 0.01 * rnd, "gross": float(_weights().iloc[rnd].sum())}
        )
    log.log_params("trend", {"fast": 15, "slow": 50})
    log.set_gate_status("trend", {"sharpe": True, "max_drawdown": True})
    log.set_gate_status("revert", {"sharpe": False, "max_drawdown": True})
    log.log_figure(plot_equity(_curves(), baselines=["buy_hold"]), "plots/equity")
    log.log_figure(plot_drawdowns(_curves()), "plots/drawdown.png")
    log.log_figure(plot_weights(_weights()), "plots/weights")
    board = pd.DataFrame(
        {"sharpe": [2.0, 1.6], "weight": [0.5, 0.4]},
        index=pd.Index(["trend", "revert"], name="agent"),
    )
    log.log_table(board, "leaderboard")


@pytest.fixture(scope="module")
def shared_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating a store runs MLflow's migrations: seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'm.db'}"


@pytest.fixture()
def cfg() -> TournamentConfig:
    return TournamentConfig.from_dict(copy.deepcopy(CONFIG))


def _artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            out |= _artifact_paths(client, run_id, f.path)
        else:
            out.add(f.path)
    return out


def _check_logged(log: TournamentLogger, cfg: TournamentConfig, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=log.uri)
    exp = client.get_experiment_by_name(log.experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3
    parent = client.get_run(log.parent_run_id)
    assert parent.info.status == "FINISHED"
    # config flattened as params
    p = parent.data.params
    assert p["name"] == "fake" and p["seed"] == "3"
    assert p["agents.0.kind"] == "momentum" and p["agents.1.name"] == "revert"
    assert p["schedule.round"] == "7d" and p["agents.0.params.slow"] == "[50, 100]"
    assert p["tracking.experiment"] == "fake"
    # the resolved config as an artifact, which validates back to the same config
    cfg_path = client.download_artifacts(log.parent_run_id, "config.yaml", str(tmp_path / "dl"))
    assert TournamentConfig.from_yaml(cfg_path) == cfg
    # portfolio metrics on the parent, one point per round
    hist = client.get_metric_history(log.parent_run_id, "equity")
    assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == [
        (0, 1.0),
        (1, 1.01),
        (2, 1.02),
    ]
    # children
    children = {
        r.data.tags["quantarena.agent"]: r for r in runs if r.info.run_id != log.parent_run_id
    }
    assert set(children) == {"trend", "revert"}
    for name, run in children.items():
        assert run.data.tags["mlflow.parentRunId"] == log.parent_run_id
        assert run.data.tags["quantarena.agent_kind"] == cfg.agent(name).kind
        assert run.info.status == "FINISHED"
        for key in ("sharpe", "return"):
            got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            assert got == [(r, METRICS[name][r][key]) for r in range(3)]
    trend, revert = children["trend"], children["revert"]
    assert trend.data.tags["gate.sharpe"] == "pass" and trend.data.tags["gate.passed"] == "true"
    assert revert.data.tags["gate.sharpe"] == "fail" and revert.data.tags["gate.passed"] == "false"
    assert revert.data.tags["gate.max_drawdown"] == "pass"
    # chosen params: per round as metrics + latest as tags; final as params
    fast = sorted(
        (m.step, m.value) for m in client.get_metric_history(trend.info.run_id, "param.fast")
    )
    assert fast == [(0, 5.0), (1, 10.0), (2, 15.0)]
    assert trend.data.tags["param.fast"] == "15" and trend.data.tags["param.ma"] == "ema"
    assert trend.data.params == {"fast": "15", "slow": "50"}
    # artifacts
    files = _artifact_paths(client, log.parent_run_id)
    assert {
        "config.yaml",
        "plots/equity.png",
        "plots/drawdown.png",
        "plots/weights.png",
        "tables/leaderboard.csv",
        "tables/leaderboard.html",
    } <= files
    png = Path(
        client.download_artifacts(log.parent_run_id, "plots/weights.png", str(tmp_path / "dl"))
    )
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5_000
    csv = client.download_artifacts(
        log.parent_run_id, "tables/leaderboard.csv", str(tmp_path / "dl")
    )
    back = pd.read_csv(csv, index_col="agent")
    assert back.loc["trend", "sharpe"] == 2.0 and back.loc["revert", "weight"] == 0.4


def test_fake_tournament_on_sqlite(tmp_path: Path, cfg: TournamentConfig, monkeypatch) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # artifacts must NOT land in ./mlruns of the current directory
    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"  # parent folder created by the logger
    log = TournamentLogger(uri, "fake")
    calls: list[int] = []
    real = log.client.log_batch

    def spy(run_id, metrics=(), params=(), tags=(), synchronous=None):
        if metrics and not tags and not any(m.key.startswith("param.") for m in metrics):
            calls.append(len(metrics))
        return real(run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)

    log.client.log_batch = spy  # type: ignore[method-assign]
    _run_fake_tournament(log, cfg)
    # one log_batch per agent per round (2 x 3), plus one per round for the portfolio (3)
    assert calls == [2] * 9
    log.finish()
    _check_logged(log, cfg, tmp_path)
    assert (tmp_path / "db" / "artifacts").is_dir()
    assert not (work / "mlruns").exists()


def test_buffered_logging_flushes_one_batch_per_run(shared_uri: str, cfg: TournamentConfig) -> None:
    log = TournamentLogger(shared_uri, "buffered", buffer=True)
    log.start(cfg)
    for a in cfg.agents:
        log.agent_run(a.name, kind=a.kind)
    calls: list[tuple[str, int]] = []
    real = log.client.log_batch

    def spy(run_id, metrics=(), params=(), tags=(), synchronous=None):
        calls.append((run_id, len(metrics)))
        return real(run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)

    log.client.log_batch = spy  # type: ignore[method-assign]
    for rnd in range(3):
        for a in cfg.agents:
            log.log_round(a.name, rnd, {**METRICS[a.name][rnd], "nan": float("nan")})
    assert calls == []  # nothing written yet
    log.finish()
    assert sorted(calls) == sorted([(log.run_id("trend"), 6), (log.run_id("revert"), 6)])
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=log.uri)
    hist = client.get_metric_history(log.run_id("revert"), "sharpe")
    assert sorted((m.step, m.value) for m in hist) == [(0, -0.5), (1, 0.9), (2, 1.6)]
    assert client.get_metric_history(log.run_id("revert"), "nan") == []  # NaN skipped


def test_context_manager_marks_failure(shared_uri: str, cfg: TournamentConfig) -> None:
    from mlflow import MlflowClient

    uri = shared_uri
    with pytest.raises(ZeroDivisionError):
        with TournamentLogger(uri, "crash") as log:
            log.start(cfg)
            log.agent_run("trend", kind="momentum")
            _ = 1 / 0
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(log.parent_run_id).info.status == "FAILED"
    assert client.get_run(log.run_id("trend")).info.status == "FAILED"
    with pytest.raises(ValueError, match="status must be one of"):
        TournamentLogger(uri, "crash2").finish("DONE")


def test_logger_misuse_errors(shared_uri: str, tmp_path: Path) -> None:
    log = TournamentLogger(shared_uri, "x")
    with pytest.raises(RuntimeError, match="call start"):
        log.agent_run("a")
    log.start({"k": 1})
    with pytest.raises(KeyError, match="call agent_run"):
        log.log_round("ghost", 0, {"a": 1.0})
    with pytest.raises(FileNotFoundError, match="no such file"):
        log.log_artifact(tmp_path / "missing.txt")
    assert log.agent_run("a") == log.agent_run("a")  # idempotent
    log.finish()


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": [{"x": 1}, {"x": 2}]}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "d": "null",
        "e.0.x": "1",
        "e.1.x": "2",
    }


def test_default_artifact_location(tmp_path: Path) -> None:
    assert (
        default_artifact_location(f"sqlite:///{tmp_path}/x/m.db")
        == (tmp_path / "x" / "artifacts").as_uri()
    )
    assert default_artifact_location("http://127.0.0.1:5000") is None
    assert default_artifact_location("postgresql://u@h/db") is None


# ------------------------------------------------------------------ plots and tables


def test_drawdown_matches_hand_and_pandas() -> None:
    eq = np.array([1.0, 1.2, 0.9, 1.0, 1.5, 1.2])
    expected = np.array([0.0, 0.0, 0.9 / 1.2 - 1, 1.0 / 1.2 - 1, 0.0, 1.2 / 1.5 - 1])
    np.testing.assert_allclose(drawdown(eq), expected)
    s = pd.Series(np.cumprod(1 + np.random.default_rng(1).normal(0, 0.02, 500)))
    np.testing.assert_allclose(drawdown(s.to_numpy()), (s / s.cummax() - 1).to_numpy())
    assert drawdown(s.to_numpy()).max() <= 0.0


def test_plots_hold_the_data(tmp_path: Path) -> None:
    curves = _curves()
    ts = np.arange(200, dtype=np.int64) * 60_000_000_000 + 1_640_995_200 * 10**9
    fig = plot_equity(curves, index=ts, baselines=["buy_hold"])
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == set(curves)
    np.testing.assert_allclose(lines["trend"].get_ydata(), curves["trend"])
    assert lines["buy_hold"].get_linestyle() == "--"
    assert lines["portfolio"].get_linewidth() > lines["trend"].get_linewidth()
    dd = plot_drawdowns(curves).axes[0]
    got = {ln.get_label(): ln.get_ydata() for ln in dd.get_lines()}
    np.testing.assert_allclose(got["revert"], 100 * drawdown(curves["revert"]))
    out = save_figure(fig, tmp_path / "sub" / "equity.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["equity.png"]  # no temp left
    with pytest.raises(ValueError, match="different lengths"):
        plot_equity({"a": [1, 2], "b": [1, 2, 3]})


def test_weights_plot_adds_cash_and_rejects_negatives() -> None:
    fig = plot_weights(_weights())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["trend", "revert", "cash"]
    full = pd.DataFrame({"a": [0.5, 0.6], "b": [0.5, 0.4]})
    labels = [t.get_text() for t in plot_weights(full).axes[0].get_legend().get_texts()]
    assert labels == ["a", "b"]  # fully invested: no cash band
    with pytest.raises(ValueError, match=r"weight of 'b' at round 1 is negative \(-0.1\)"):
        plot_weights(pd.DataFrame({"a": [0.5, 0.6], "b": [0.1, -0.1]}))


def test_table_html_escapes_and_formats(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"sharpe": [1.23456789, np.nan], "note": ["<b>x</b>", "ok"]}, index=["a&b", "c"]
    )
    html = table_html(df, title="Board")
    assert "<td>1.23</td>" in html and "<th>OOS Sharpe</th>" in html  # numfmt, CLI words
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "a&amp;b" in html
    assert "<b>x</b>" not in html
    p = save_table_html(df, tmp_path / "board.html")
    assert p.read_text() == html.replace(
        "<title>Board</title>", "<title>Leaderboard</title>"
    ).replace("<h2>Board</h2>", "<h2>Leaderboard</h2>")


# ------------------------------------------------------------------ tracking server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_server(backend: str, tmp_path: Path):
    port = _free_port()
    exe = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(exe),
        "server",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }  # no job runner: starts ~3x faster
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / "server.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(
        "mlflow server did not start: " + (tmp_path / "server.log").read_text()[-2000:]
    )


def _stop(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own session: its workers too
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.mark.slow
def test_fake_tournament_on_a_tracking_server(tmp_path: Path, cfg: TournamentConfig) -> None:
    proc, url = _mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path)
    try:
        log = TournamentLogger(url, "served")
        _run_fake_tournament(log, cfg)
        log.finish()
        _check_logged(log, cfg, tmp_path)
        assert any((tmp_path / "server-artifacts").rglob("weights.png"))  # proxied to the server
    finally:
        _stop(proc)


def _postgres_ready() -> str | None:
    try:
        import psycopg  # noqa: F401  (MLflow 3's PostgreSQL driver)
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]') — PostgreSQL untested"
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return None
    except OSError:
        return "no PostgreSQL on 127.0.0.1:5432"


@pytest.mark.slow
@pytest.mark.skipif(_postgres_ready() is not None, reason=str(_postgres_ready()))
def test_fake_tournament_on_a_postgres_backed_server(tmp_path: Path, cfg: TournamentConfig) -> None:
    import uuid

    proc, url = _mlflow_server("postgresql://postgres@127.0.0.1:5432/test", tmp_path)
    try:
        log = TournamentLogger(url, f"pg-{uuid.uuid4().hex[:8]}")
        _run_fake_tournament(log, cfg)
        log.finish()
        _check_logged(log, cfg, tmp_path)
    finally:
        _stop(proc)
