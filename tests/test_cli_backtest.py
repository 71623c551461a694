"""``quantarena backtest`` and ``quantarena audit`` through typer's CliRunner, plus one run of
the real command in a subprocess that must not import Ray, MLflow or torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from quantarena.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def small_csv(btc_1m_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 8,000 rows of the real BTC-PERP file, unchanged."""
    out = tmp_path_factory.mktemp("cli") / "btc-small.csv"
    lines = btc_1m_csv.read_text().splitlines()[:8001]
    out.write_text("\n".join(lines) + "\n")
    return out


def test_backtest_table_out_and_plot(small_csv: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "res.parquet", tmp_path / "best.png"
    r = runner.invoke(
        app,
        [
            "backtest",
            "--file",
            str(small_csv),
            "--agent",
            "momentum",
            "--param",
            "fast=5:20:5",
            "--param",
            "slow=30,60",
            "--top",
            "3",
            "--out",
            str(out),
            "--plot",
            str(png),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "rank" in r.output and "sharpe" in r.output and "fast=" in r.output
    df = pd.read_parquet(out)
    assert len(df) == 8 and set(df["fast"]) == {5, 10, 15, 20} and set(df["slow"]) == {30, 60}
    assert png.read_bytes()[:4] == b"\x89PNG"
    # the top row of the table is the best Sharpe in the file
    best = df.sort_values("sharpe", ascending=False).iloc[0]
    assert f"fast={int(best['fast'])} slow={int(best['slow'])}" in r.output


def test_backtest_json_matches_the_api(small_csv: Path) -> None:
    r = runner.invoke(
        app,
        [
            "backtest",
            "--file",
            str(small_csv),
            "--agent",
            "breakout",
            "--param",
            "window=20,40",
            "--param",
            "exit_window=10",
            "--fee-bps",
            "5",
            "--slippage-bps",
            "0",
            "--json",
            "--top",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["agent"] == "breakout" and doc["n_params"] == 2 and doc["n_bars"] == 8000
    assert [row["rank"] for row in doc["top"]] == [1, 2]
    assert doc["top"][0]["params"]["window"] in (20, 40)
    from quantarena.backtest import backtest
    from quantarena.engine import Costs, Fees

    res = backtest(
        small_csv,
        "breakout",
        {"window": [20, 40], "exit_window": [10]},
        Costs(fees=Fees(taker_bps=5)),
    )
    i = doc["top"][0]["param_set"]
    assert doc["top"][0]["metrics"]["sharpe"] == pytest.approx(
        res.metrics.loc[i, "sharpe"], rel=1e-12
    )
    assert doc["top"][0]["metrics"]["sharpe"] >= doc["top"][1]["metrics"]["sharpe"]


def test_default_costs_are_the_same_in_the_cli_and_the_api(small_csv: Path) -> None:
    """No cost flags and no ``costs=``: both charge DEFAULT_COSTS (10 bps fee + 2 bps
    slippage), give the same figures, and the CLI says which costs it applied."""
    import quantarena as qa

    grid = ["--param", "fast=5,10", "--param", "slow=30,60"]
    r = runner.invoke(app, ["backtest", "--file", str(small_csv), *grid, "--json", "--top", "4"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["costs"] == "fee 10 bps (taker), slippage 2 bps"
    assert (doc["fee_bps"], doc["slippage_bps"]) == (10.0, 2.0)
    api = qa.backtest(small_csv, "momentum", {"fast": [5, 10], "slow": [30, 60]})
    explicit = qa.backtest(
        small_csv,
        "momentum",
        {"fast": [5, 10], "slow": [30, 60]},
        qa.Costs(fees=qa.Fees(taker_bps=10), slippage=qa.Slippage(bps=2)),
    )
    free = qa.backtest(small_csv, "momentum", {"fast": [5, 10], "slow": [30, 60]}, qa.Costs.none())
    for row in doc["top"]:
        i = row["param_set"]
        for m in ("sharpe", "total_return", "fees_paid"):
            assert row["metrics"][m] == pytest.approx(api.metrics.loc[i, m], rel=1e-12)
            assert api.metrics.loc[i, m] == pytest.approx(explicit.metrics.loc[i, m], rel=1e-12)
        assert row["metrics"]["fees_paid"] > 0
        assert row["metrics"]["total_return"] < free.metrics.loc[i, "total_return"]
    # the table says which costs it applied
    t = runner.invoke(app, ["backtest", "--file", str(small_csv), *grid, "--fee-bps", "0"])
    assert t.exit_code == 0, t.output
    assert "costs: slippage 2 bps" in " ".join(t.output.split())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--param", "fast=abc"], "'fast': 'abc' is not an integer"),
        (["--param", "fast"], "bad --param 'fast'"),
        (["--param", "nope=3"], "unknown parameter 'nope'"),
        (["--agent", "nope"], "unknown agent 'nope'"),
        (["--param", "fast=60", "--param", "slow=50"], "no valid parameter set"),
        (["--fill", "later"], "--fill must be open or close"),
        (["--fee-bps", "-1"], "--fee-bps must be a number of bps >= 0, got -1"),
    ],
)
def test_bad_input_is_one_red_line_and_exit_2(
    small_csv: Path, args: list[str], needle: str
) -> None:
    r = runner.invoke(app, ["backtest", "--file", str(small_csv), *args])
    assert r.exit_code == 2
    text = r.stderr.strip()
    assert needle in text and len(text.splitlines()) == 1 and text.startswith("error:")


def test_missing_data_source_is_an_error(tmp_path: Path) -> None:
    r = runner.invoke(app, ["backtest", "--param", "fast=5"])
    assert r.exit_code == 2 and "--store" in r.stderr
    r = runner.invoke(app, ["backtest", "--file", str(tmp_path / "none.csv")])
    assert r.exit_code == 2 and "not found" in r.stderr


def test_audit_passes_shipped_agents_and_fails_a_leak(small_csv: Path, tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            "audit",
            "--file",
            str(small_csv),
            "--agent",
            "momentum",
            "--agent",
            "breakout",
            "--cuts",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert r.output.count("PASS") == 2
    leak = tmp_path / "leaky_agent.py"
    leak.write_text(
        "import numpy as np\nfrom quantarena.strategies import Agent, Int\n\n"
        "class Leaky(Agent):\n    name = 'leaky'\n    space = {'k': Int(1, 3, default=1)}\n"
        "    def indicators(self, bars, params, xp=np):\n"
        "        c = bars.close[:, 0]\n        nxt = np.r_[c[1:], np.nan]  # close[t+1]\n"
        "        return np.nan_to_num(np.sign(nxt - c))\n"
        "    def signal(self, state, params, xp, t0, t1):\n"
        "        return (state[t0:t1, None] * self.max_position).astype(np.float32)\n"
    )
    r = runner.invoke(
        app, ["audit", "--file", str(small_csv), "--agent", f"{leak}:Leaky", "--json"]
    )
    assert r.exit_code == 1
    doc = json.loads(r.output)
    assert doc[0]["verdict"] == "FAIL" and doc[0]["check"] == "truncate"
    assert doc[0]["first_bar"] == doc[0]["cut"]


def test_real_command_never_imports_ray_mlflow_or_torch(small_csv: Path) -> None:
    """Runs ``python -X importtime -m quantarena backtest`` (the console script's code path)
    and reads every module the interpreter imported."""
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "quantarena",
            "backtest",
            "--file",
            str(small_csv),
            "--param",
            "fast=10",
            "--param",
            "slow=50",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["n_params"] == 1
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert {"numpy", "numba", "quantarena"} <= imported  # the log really lists imports
    assert not imported & {"ray", "mlflow", "torch", "redis"}


def test_help_lists_the_commands() -> None:
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0 and "backtest" in r.output and "audit" in r.output
    assert np.__name__ == "numpy"
