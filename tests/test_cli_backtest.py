"""``quantarena backtest`` and ``quantarena audit`` through typer's CliRunner, plus one run of
the real command in a subprocess that must not import Ray, MLflow or torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    assert doc[0]["verdict"] == "FAIL" and doc[0]["check"] == "every_bar"
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


# ---------------------------------------------------------------------------------------
# the data paths a new user walks: each ends in a result or one line


def _one_red_line(r: Any) -> str:
    assert r.exit_code == 2, r.output
    text = r.stderr.strip()
    assert len(text.splitlines()) == 1 and text.startswith("error:"), text
    return text


@pytest.fixture(scope="module")
def odd_csv(small_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same bars under column names no loader guesses."""
    out = tmp_path_factory.mktemp("odd") / "btc-odd.csv"
    lines = small_csv.read_text().splitlines(keepends=True)
    out.write_text("when,o_px,h_px,l_px,c_px,qty_usd\n" + "".join(lines[1:]))
    return out


@pytest.fixture(scope="module")
def small_store(small_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store") / "st"
    r = runner.invoke(
        app, ["data", "ingest", str(small_csv), "--store", str(store), "--symbol", "BTCPERP"]
    )
    assert r.exit_code == 0, r.output
    return store


MAPS = ["--map", "ts=when", "--map", "open=o_px", "--map", "high=h_px", "--map", "low=l_px"]
MAPS += ["--map", "close=c_px", "--map", "volume=qty_usd"]
GRID = ["--param", "fast=5,10", "--param", "slow=30", "--json", "--top", "2"]


def _best(r: Any) -> list[tuple[dict, float]]:
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    return [(row["params"], row["metrics"]["sharpe"]) for row in doc["top"]]


def test_map_names_columns_for_backtest_tune_and_audit(small_csv: Path, odd_csv: Path) -> None:
    # without --map: one line that suggests the option, which exists
    r = runner.invoke(app, ["backtest", "--file", str(odd_csv), *GRID])
    assert "--map field=column" in _one_red_line(r)
    r = runner.invoke(app, ["backtest", "--file", str(odd_csv), "--format", "csv", *GRID])
    assert "--map ts=your_column" in _one_red_line(r)
    # with --map: the same numbers as the file with standard names
    want = _best(runner.invoke(app, ["backtest", "--file", str(small_csv), *GRID]))
    got = _best(runner.invoke(app, ["backtest", "--file", str(odd_csv), *MAPS, *GRID]))
    assert got == want
    got = _best(
        runner.invoke(app, ["backtest", "--file", str(odd_csv), "--format", "csv", *MAPS, *GRID])
    )
    assert got == want
    r = runner.invoke(
        app, ["audit", "--file", str(odd_csv), *MAPS, "--agent", "momentum", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["passed"] is True
    args = ["--agent", "momentum", "--trials", "4", "--batch", "4", "--json"]
    r = runner.invoke(app, ["tune", "--file", str(odd_csv), *MAPS, *args])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["backtest", "--file", str(odd_csv), "--map", "ts", *GRID])
    assert "bad --map 'ts': use field=column" in _one_red_line(r)


@pytest.mark.parametrize("source", ["store", "file"])
@pytest.mark.parametrize("command", ["backtest", "tune", "audit"])
def test_a_range_without_bars_names_the_span_held(
    small_store: Path, small_csv: Path, source: str, command: str
) -> None:
    where = (
        ["--store", str(small_store), "--symbol", "BTCPERP"]
        if source == "store"
        else ["--file", str(small_csv)]
    )
    extra = {
        "backtest": GRID,
        "tune": ["--trials", "4", "--batch", "4"],
        "audit": ["-a", "momentum"],
    }
    r = runner.invoke(
        app, [command, *where, "--start", "2023-01-01", "--end", "2023-02-01", *extra[command]]
    )
    text = _one_red_line(r)
    holder = "the store" if source == "store" else "the file btc-small.csv"
    sym = "BTCPERP" if source == "store" else "BTCSMALL"
    assert (
        f"no bars of {sym} between 2023-01-01T00:00Z and 2023-02-01T00:00Z; "
        f"{holder} holds 2021-12-31T23:01Z → 2022-01-06T12:20Z"
    ) in text


def test_interval_resamples_a_file_as_it_does_a_store(small_store: Path, small_csv: Path) -> None:
    args = ["--interval", "5m", *GRID]
    from_store = runner.invoke(
        app, ["backtest", "--store", str(small_store), "--symbol", "BTCPERP", *args]
    )
    from_file = runner.invoke(app, ["backtest", "--file", str(small_csv), *args])
    assert _best(from_file) == _best(from_store)
    assert json.loads(from_file.output)["n_bars"] == json.loads(from_store.output)["n_bars"] == 1601
    r = runner.invoke(app, ["backtest", "--file", str(small_csv), "--interval", "90s", *GRID])
    assert "cannot make 90s bars from btc-small.csv: it holds 1m bars" in _one_red_line(r)


def test_store_from_the_environment(small_store: Path, small_csv: Path) -> None:
    env = {"QUANTARENA_STORE": str(small_store)}
    want = _best(
        runner.invoke(app, ["backtest", "--store", str(small_store), "--symbol", "BTCPERP", *GRID])
    )
    assert _best(runner.invoke(app, ["backtest", "--symbol", "BTCPERP", *GRID], env=env)) == want
    r = runner.invoke(app, ["audit", "--symbol", "BTCPERP", "-a", "momentum", "--json"], env=env)
    assert r.exit_code == 0 and json.loads(r.output)[0]["passed"] is True
    r = runner.invoke(
        app, ["tune", "--symbol", "BTCPERP", "--trials", "4", "--batch", "4", "--json"], env=env
    )
    assert r.exit_code == 0, r.output
    # a --file on the command line wins over the store from the environment
    got = _best(runner.invoke(app, ["backtest", "--file", str(small_csv), *GRID], env=env))
    assert got == want
    # both on the command line is still an error
    r = runner.invoke(
        app, ["backtest", "--store", str(small_store), "--file", str(small_csv), *GRID], env=env
    )
    assert "give --store or --file, not both" in _one_red_line(r)


def test_backend_gpu_without_cupy_is_one_line(small_csv: Path) -> None:
    from quantarena.engine.backend import cuda_available

    if cuda_available():
        pytest.skip("CuPy sees a GPU here")
    for command in (["backtest", *GRID], ["tune", "--trials", "4", "--batch", "4"]):
        r = runner.invoke(
            app, [command[0], "--file", str(small_csv), "--backend", "gpu", *command[1:]]
        )
        text = _one_red_line(r)
        assert "--backend gpu" in text and 'pip install "quantarena[gpu]"' in text, text


def test_format_names_are_the_loaders_formats() -> None:
    from quantarena.cli.options import FORMAT_NAMES
    from quantarena.data.loaders import FORMATS

    assert FORMAT_NAMES == FORMATS
