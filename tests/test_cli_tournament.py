"""`quantarena tournament run | report` through typer's CliRunner, on real FTX BTC-PERP bars."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from quantarena.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}

CONFIG = {
    "name": "cli-small",
    "seed": 1,
    "data": {
        "files": [
            {
                "path": str(ROOT / "data/sample/btc-perp-20211231-20220201_1m.csv"),
                "symbol": "BTCPERP",
            }
        ],  # fmt: skip
        "interval": "15m",
        "start": "2022-01-11",
        "end": "2022-02-01",
    },
    "schedule": {"round": "7d", "lookback": "5d", "warmup": "1d"},
    "agents": [
        {"name": "trend", "kind": "momentum", "params": {"fast": [4, 8], "slow": [24, 48]}},
        {"name": "channel", "kind": "breakout", "params": {"window": [10, 20], "exit_window": 5}},
        {"name": "hodl", "kind": "buy_hold"},
    ],
    "costs": {"fee_bps": 5, "slippage_bps": 1},
    "allocation": {"min_rounds": 1},
    "gates": {
        "min_sharpe": 0.0,
        "max_drawdown": 0.3,
        "min_win_rate": None,
        "min_history_days": None,
        "min_paper_days": None,
    },  # fmt: skip
}


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _block(text: str, start: str) -> list[str]:
    """The printed tables, from the line holding ``start`` to the portfolio table's end."""
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if start in line)
    j = next(k for k, line in enumerate(lines) if k > i and "inverse_vol" in line)
    return [line.rstrip() for line in lines[i : j + 2]]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "out"
    path = _write(tmp / "cli-small.yaml", CONFIG)  # no tracking section: --output-dir sets it
    res = runner.invoke(
        app, ["tournament", "run", str(path), "--no-ray", "--output-dir", str(out)], env=ENV
    )
    return res, out


@pytest.mark.slow
def test_run_prints_the_leaderboard_and_where_mlflow_is(cli_run):
    res, out = cli_run
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "cli-small — 2 rounds" in text
    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board["agent"]) == ["channel", "hodl", "trend"]
    rows = [line for line in text.splitlines() if any(f" {a} " in line for a in board["agent"])]
    assert len(rows) == 3
    for rank, (_, r) in enumerate(board.iterrows(), start=1):  # best first, as printed
        line = rows[rank - 1]
        assert line.split("│")[1].strip() == str(rank) and r["agent"] in line
        assert f"{r['sharpe']:.2f}" in line  # the OOS Sharpe, 2 decimals
        assert f"{100 * r['total_return']:.2f}%" in line  # a percentage, 2 decimals
    assert "Portfolio (OOS) vs baselines" in text and "kelly (portfolio)" in text
    uri = f"sqlite:///{out.as_posix()}/mlflow.db"  # the MLflow default follows --output-dir
    assert f"MLflow: {uri}" in text
    assert f"mlflow ui --backend-store-uri {uri}" in text
    assert (out / "mlflow.db").is_file()
    assert f"plots and tables: {out}" in text.replace("\n", "")


@pytest.mark.slow
def test_report_re_renders_the_run_from_its_output_dir(cli_run):
    res, out = cli_run
    rep = runner.invoke(app, ["tournament", "report", str(out)], env=ENV)
    assert rep.exit_code == 0, rep.output
    title = "cli-small — 2 rounds"
    assert _block(rep.stdout, title) == _block(res.stdout, title)


@pytest.mark.slow
def test_report_by_mlflow_run_id(cli_run):
    import json

    res, out = cli_run
    summary = json.loads((out / "summary.json").read_text())
    uri = f"sqlite:///{out.as_posix()}/mlflow.db"
    rep = runner.invoke(
        app, ["tournament", "report", summary["run_id"], "--mlflow-uri", uri], env=ENV
    )
    assert rep.exit_code == 0, rep.output
    title = "cli-small — 2 rounds"
    assert _block(rep.stdout, title) == _block(res.stdout, title)


@pytest.mark.slow
def test_report_by_run_id_renders_into_out_with_absolute_paths(cli_run, tmp_path, monkeypatch):
    import json
    import tempfile

    res, out = cli_run
    summary = json.loads((out / "summary.json").read_text())
    uri = f"sqlite:///{out.as_posix()}/mlflow.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # paths printed must work from any folder
    temps = set(Path(tempfile.gettempdir()).glob("quantarena-report-*"))
    rep = runner.invoke(
        app,
        ["tournament", "report", summary["run_id"], "--mlflow-uri", uri, "--out", "rep"],
        env=ENV,
    )
    assert rep.exit_code == 0, rep.output
    assert set(Path(tempfile.gettempdir()).glob("quantarena-report-*")) == temps  # none left
    dest = (elsewhere / "rep").resolve()
    for name in ("equity_portfolio.png", "equity_agents.png", "drawdowns.png", "weights.png"):
        assert (dest / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    html = (dest / "leaderboard.html").read_text()
    assert "<img src='equity_portfolio.png'" in html and "href='weights.png'" in html
    assert "e-" not in html.split("<table>")[1]  # numbers without exponents
    text = " ".join(rep.stdout.split())
    assert f"plots and tables: {dest}" in text and f"report: {dest / 'leaderboard.html'}" in text
    assert f"mlflow ui --backend-store-uri {uri}" in text
    # the same board as the run printed
    title = "cli-small — 2 rounds"
    assert _block(rep.stdout, title) == _block(res.stdout, title)


@pytest.mark.slow
def test_report_of_a_folder_re_renders_in_place(cli_run):
    res, out = cli_run
    for name in ("equity_agents.csv", "equity_portfolio.csv"):
        assert (out / name).is_file()
    png = out / "equity_portfolio.png"
    png.unlink()
    rep = runner.invoke(app, ["tournament", "report", str(out)], env=ENV)
    assert rep.exit_code == 0, rep.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # drawn again from the kept curves


def test_bad_config_key_is_one_line_naming_it(tmp_path: Path):
    cfg = {**CONFIG, "schedule": {"rounds": "7d", "lookback": "5d"}}
    path = _write(tmp_path / "bad.yaml", cfg)
    res = runner.invoke(app, ["tournament", "run", str(path), "--no-ray"], env=ENV)
    assert res.exit_code == 2
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert msg.startswith("error:") and "bad.yaml" in msg
    assert "schedule.rounds" in msg and "unknown key" in msg and "'round'" in msg
    assert "Traceback" not in res.output


def test_missing_data_file_is_one_line(tmp_path: Path):
    cfg = {**CONFIG, "data": {**CONFIG["data"], "files": [str(tmp_path / "nope.csv")]}}
    path = _write(tmp_path / "nodata.yaml", cfg)
    res = runner.invoke(app, ["tournament", "run", str(path), "--no-ray"], env=ENV)
    assert res.exit_code == 2
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and "data.files.0.path" in msg and "nope.csv" in msg


def test_report_of_an_unknown_source_is_one_line(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/*/mlflow.db here
    run_id = "0123abcd" * 4
    res = runner.invoke(app, ["tournament", "report", run_id], env=ENV)
    assert res.exit_code == 2
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and run_id in msg and "--mlflow-uri" in msg
    res = runner.invoke(app, ["tournament", "report", "runs/typo"], env=ENV)
    assert res.exit_code == 2
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and msg.startswith("error: runs/typo: no such folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["tournament", "report", str(empty)], env=ENV)
    assert res.exit_code == 2 and "no summary.json" in res.stderr


def test_a_range_without_bars_is_one_line_naming_the_span(tmp_path: Path):
    cfg = {**CONFIG, "data": {**CONFIG["data"], "start": "2023-01-01", "end": "2023-02-01"}}
    path = _write(tmp_path / "empty.yaml", cfg)
    args = ["tournament", "run", str(path), "--no-ray", "--no-mlflow"]
    res = runner.invoke(app, [*args, "--output-dir", str(tmp_path / "out")], env=ENV)
    assert res.exit_code == 2, res.output
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert (
        "no bars of BTCPERP between 2023-01-01T00:00Z and 2023-02-01T00:00Z; "
        "the store holds 2021-12-31T23:01Z → 2022-02-01T05:31Z"
    ) in msg
    assert "lookback" not in msg


def test_backend_gpu_without_cupy_is_one_line(tmp_path: Path):
    from quantarena.engine.backend import cuda_available

    if cuda_available():
        pytest.skip("CuPy sees a GPU here")
    path = _write(tmp_path / "gpu.yaml", CONFIG)
    args = ["tournament", "run", str(path), "--no-ray", "--no-mlflow", "--backend", "gpu"]
    res = runner.invoke(app, [*args, "--output-dir", str(tmp_path / "out")], env=ENV)
    assert res.exit_code == 2, res.output
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and 'pip install "quantarena[gpu]"' in msg, msg
