"""``quantarena tune``: JSON and table output on real bars, MLflow logging, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from quantarena.cli.tune import register

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def _root() -> None:
        """test root"""

    register(a)
    return a


def _args(csv, *extra):
    return [
        "tune",
        "--file",
        str(csv),
        "--trials",
        "32",
        "--batch",
        "16",
        "--param",
        "fast=5:30",
        "--param",
        "slow=40:120",
        "--backend",
        "cpu",
        "--end",
        "2022-01-07",
        *extra,
    ]


def test_tune_json_matches_a_direct_replay(app, btc_1m_csv):
    res = runner.invoke(app, _args(btc_1m_csv, "--json", "--fee-bps", "5", "--slippage-bps", "0"))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["trials"] == 32 and doc["simulations"] == 2
    bp = doc["best_params"]
    assert 5 <= bp["fast"] <= 30 and 40 <= bp["slow"] <= 120

    from quantarena.engine.api import load_bars_any
    from quantarena.engine.costs import Costs, Fees
    from quantarena.engine.simulate import simulate
    from quantarena.strategies.registry import get_agent

    bars = load_bars_any(btc_1m_csv, end="2022-01-07")
    agent = get_agent("momentum")
    pos = agent.positions(bars, {k: np.asarray([v]) for k, v in bp.items()})
    direct = simulate(bars, pos, Costs(fees=Fees(taker_bps=5.0)), max_position=0.1, backend="cpu")
    assert doc["best_value"] == pytest.approx(float(direct.metrics["sharpe"][0]), rel=1e-9)


def test_tune_default_costs_are_the_engines(app, btc_1m_csv):
    """No cost flags: the trials pay DEFAULT_COSTS, as ``qa.backtest`` and a tournament do."""
    res = runner.invoke(app, _args(btc_1m_csv, "--json", "--trials", "16"))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["costs"] == "fee 10 bps (taker), slippage 2 bps"

    import quantarena as qa

    bp = doc["best_params"]
    api = qa.backtest(btc_1m_csv, "momentum", {k: [v] for k, v in bp.items()}, end="2022-01-07")
    assert doc["best_value"] == pytest.approx(float(api.metrics["sharpe"].iloc[0]), rel=1e-9)


def test_tune_table_and_mlflow(app, btc_1m_csv, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = runner.invoke(app, _args(btc_1m_csv, "--mlflow-uri", uri, "--top", "3"))
    assert res.exit_code == 0, res.output
    assert "best: fast=" in res.stdout and "mlflow run:" in res.stdout
    run_id = res.stdout.split("mlflow run:")[1].split()[0]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["n_trials"] == 32
    assert np.isfinite(run.data.metrics["best_value"])
    assert 5 <= int(run.data.params["best.fast"]) <= 30
    assert run.data.params["agent"] == "momentum"
    arts = {a.path for a in client.list_artifacts(run_id, "study")}
    assert {"study/history.png", "study/trials.csv"} <= arts
    assert "study/importances.json" in arts
    imp = json.loads(
        open(client.download_artifacts(run_id, "study/importances.json", str(tmp_path))).read()
    )
    assert set(imp) <= {"fast", "slow", "ma"} and abs(sum(imp.values()) - 1.0) < 1e-6


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--param", "fast=1:5"], "outside its range"),
        (["--storage", "redis://127.0.0.1:6379/0"], "--storage needs --study"),
        (["--sampler", "bayes"], "--sampler 'bayes'"),
        (["--objective", "sharp"], "objective 'sharp' is not a metric"),
    ],
)
def test_tune_errors_are_one_line(app, btc_1m_csv, extra, message):
    args = _args(btc_1m_csv, *extra)
    if extra[0] == "--param":  # replace the first --param
        i = args.index("fast=5:30")
        args[i] = extra[1]
        args = args[: len(args) - 2]
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_tune_fees_paid_is_minimised(app, btc_1m_csv):
    """A lower-is-better objective: the study minimises it and the table's best row is the
    cheapest set, not the most expensive one."""
    res = runner.invoke(
        app,
        _args(
            btc_1m_csv, "--json", "--fee-bps", "5", "--slippage-bps", "0",
            "--objective", "fees_paid",
        ),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    bp = doc["best_params"]

    from quantarena.engine.api import load_bars_any
    from quantarena.engine.costs import Costs, Fees
    from quantarena.engine.simulate import simulate
    from quantarena.strategies.registry import get_agent

    bars = load_bars_any(btc_1m_csv, end="2022-01-07")
    agent = get_agent("momentum")
    grid = agent.grid(fast="5:30", slow="40:120")
    fees = simulate(
        bars, agent.source(bars, grid), Costs(fees=Fees(taker_bps=5.0)), max_position=0.1,
        backend="cpu",
    ).metrics["fees_paid"]  # fmt: skip
    best = {k: np.asarray([v]) for k, v in bp.items()}
    one = simulate(bars, agent.positions(bars, best), Costs(fees=Fees(taker_bps=5.0)),
                   max_position=0.1, backend="cpu").metrics["fees_paid"][0]  # fmt: skip
    assert doc["best_value"] == pytest.approx(float(one), rel=1e-9)
    # the cheapest of the 32 trials sits in the low tail of the whole grid, far from its top
    assert one < np.quantile(fees, 0.5) < fees.max()

    table = runner.invoke(
        app,
        _args(btc_1m_csv, "--fee-bps", "5", "--slippage-bps", "0", "--objective", "fees_paid"),
    )
    assert table.exit_code == 0, table.output
    rows = [ln.split("│") for ln in table.stdout.splitlines() if ln.startswith("│")]
    ranked = [float(r[4]) for r in rows]
    assert len(ranked) >= 3 and ranked == sorted(ranked)  # cheapest first
    assert f"fast={bp['fast']} slow={bp['slow']} " in rows[0][3]
