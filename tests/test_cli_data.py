"""`quantarena data ingest | info | synth` through typer's CliRunner, on the real sample files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from quantarena.cli import app
from quantarena.data.read import load_bars
from quantarena.data.synthetic import simulate_market

runner = CliRunner()


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> tuple[Path, str]:
    store = tmp_path_factory.mktemp("cli") / "store"
    result = runner.invoke(app, ["data", "ingest", str(sample_dir), "--store", str(store)])
    assert result.exit_code == 0, result.output
    return store, result.stdout


def test_ingest_every_sample_file(sample_store: tuple[Path, str], sample_dir: Path) -> None:
    store, out = sample_store
    for name in (
        "ADABTC-1m-2021-11-27.csv",
        "Coinbase_BTCUSD_1h.csv",
        "ZEC_BTC-5m.feather",
        "stocks_daily.csv",
    ):
        assert name in out
    # 14 bar/trade files, 3 websocket captures (book, quotes and trades each: 9 reports) and
    # 6 Tardis/Bybit tick files; the top-5 Tardis snapshots repeat 40 levels of the top-25 ones
    assert "29 files: 1,070,263 rows added, 40 already present" in out
    assert "gaps: 40" in out  # the loader's notes reach the table (wrapped in a narrow column)
    cat = json.loads((store / "catalog.json").read_text())
    assert sum(d["rows"] for d in cat["datasets"]) == 1_070_263
    bars_trades = [d for d in cat["datasets"] if d["kind"] in ("bars", "trades")]
    assert sum(d["rows"] for d in bars_trades) == 139_866 + 10 + 21_313 + 19_904


def test_info_table_and_json(sample_store: tuple[Path, str]) -> None:
    store, _ = sample_store
    res = runner.invoke(app, ["data", "info", "--store", str(store)])
    assert res.exit_code == 0, res.output
    for text in ("BTCPERP", "XRPETH", "trades", "2021-12-31T23:01Z", "45,031", "28 datasets"):
        assert text in res.stdout
    res = runner.invoke(app, ["data", "info", "--store", str(store), "--json"])
    rows = {(d["kind"], d["symbol"], d["interval"]): d for d in json.loads(res.stdout)}
    assert rows[("bars", "BTCUSD", "1h")]["rows"] == 20_111
    assert rows[("bars", "ADABTC", "1m")]["rows"] == 21
    assert rows[("bars", "ADABTC", "5m")]["rows"] == 5_720
    assert rows[("trades", "XRPETH", None)]["first"] == "2019-10-11T00:00:11.62Z"
    assert rows[("bars", "AAPL", "1d")]["last"] == "2023-09-21T00:00:00Z"


def test_reingest_is_a_no_op(sample_store: tuple[Path, str], sample_dir: Path) -> None:
    store, _ = sample_store
    before = tree_digest(store)
    res = runner.invoke(app, ["data", "ingest", str(sample_dir), "--store", str(store), "--json"])
    assert res.exit_code == 0
    rep = json.loads(res.stdout)
    assert rep["rows_added"] == 0 and not rep["changed"]
    assert all(f["skipped_same_hash"] for f in rep["files"])
    assert tree_digest(store) == before


def test_bad_file_one_line_exit_2_store_unchanged(
    sample_store: tuple[Path, str], sample_dir: Path, tmp_path: Path
) -> None:
    store, _ = sample_store
    before = tree_digest(store)
    src = sample_dir / "btc-perp-20211231-20220201_1m.csv"
    rows = src.read_text().splitlines(keepends=True)[:50]
    rows[9] = "2021-12-31 23:09:00.000000,46400.0,46300.0,46500.0,46450.0,100.0\n"  # high < low
    bad = tmp_path / "btc-perp-broken.csv"
    bad.write_text("".join(rows))
    good = tmp_path / "ETH_BTC-5m.feather"
    shutil.copy(sample_dir / "crypto_5m_binance" / "ETH_BTC-5m.feather", good)
    res = runner.invoke(
        app, ["data", "ingest", str(good), str(bad), "--store", str(store), "--symbol", "BTCPERP"]
    )
    assert res.exit_code == 2
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1
    assert "btc-perp-broken.csv" in msg and "row 10" in msg and msg.startswith("error:")
    assert tree_digest(store) == before


def test_missing_paths_and_store(tmp_path: Path) -> None:
    res = runner.invoke(app, ["data", "info", "--store", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no store here" in res.stderr
    res = runner.invoke(
        app, ["data", "ingest", str(tmp_path / "x.csv"), "--store", str(tmp_path / "s")]
    )
    assert res.exit_code == 2 and "x.csv" in res.stderr
    res = runner.invoke(
        app, ["data", "synth", "--store", str(tmp_path / "s"), "--interval", "fortnight"]
    )
    assert res.exit_code == 2 and "fortnight" in res.stderr


def test_synth_writes_through_the_store(tmp_path: Path) -> None:
    store = tmp_path / "syn"
    args = ["data", "synth", "--store", str(store), "--symbols", "3", "--bars", "2000"]
    res = runner.invoke(app, [*args, "--interval", "5m", "--seed", "4"])
    assert res.exit_code == 0, res.output
    assert "6,000 rows added" in res.stdout
    panel = load_bars(store)
    assert panel.symbols == ["SYN000", "SYN001", "SYN002"] and panel.interval_ns == 300_000_000_000
    m = simulate_market(3, 2000, "5m", "2024-01-01", 4)
    np.testing.assert_array_equal(panel.close, m.close.T)
    again = runner.invoke(app, [*args, "--interval", "5m", "--seed", "4"])
    assert "0 rows added, 6,000 already present" in again.stdout
    other = runner.invoke(app, [*args, "--interval", "5m", "--seed", "5"])
    assert other.exit_code == 2 and "differs from the stored one" in other.stderr


@pytest.mark.parametrize("damage", ["not-a-zip", "cut-zip", "cut-gzip", "empty-zip"])
def test_damaged_archive_one_line_store_unchanged(
    sample_store: tuple[Path, str], sample_dir: Path, tmp_path: Path, damage: str
) -> None:
    import gzip
    import io
    import zipfile

    store, _ = sample_store
    before = tree_digest(store)
    csv = (sample_dir / "ADABTC-1m-2021-11-27.csv").read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if damage != "empty-zip":
            zf.writestr("ADABTC-1m-2021-11-27.csv", csv)
    name, content = {
        "not-a-zip": ("ADABTC-1m-2021-11-27.zip", b"<html><body>404 Not Found</body></html>"),
        "cut-zip": ("ADABTC-1m-2021-11-27.zip", buf.getvalue()[:-40]),
        "cut-gzip": ("ADABTC-1m-2021-11-27.csv.gz", gzip.compress(csv)[:-20]),
        "empty-zip": ("ADABTC-1m-2021-11-27.zip", buf.getvalue()),
    }[damage]
    bad = tmp_path / name
    bad.write_bytes(content)
    res = runner.invoke(app, ["data", "ingest", str(bad), "--store", str(store)])
    assert res.exit_code == 2, res.output
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1 and msg.startswith("error:"), msg
    assert name in msg and ("download it again" in msg or "unzip it" in msg), msg
    assert tree_digest(store) == before


def test_ingest_with_map_names_the_columns(sample_dir: Path, tmp_path: Path) -> None:
    src = sample_dir / "btc-perp-20211231-20220201_1m.csv"
    lines = src.read_text().splitlines(keepends=True)[:301]
    odd = tmp_path / "odd.csv"
    odd.write_text("when,o_px,h_px,l_px,c_px,qty_usd\n" + "".join(lines[1:]))
    std = tmp_path / "std.csv"
    std.write_text("".join(lines))
    store = tmp_path / "st"
    cmd = ["data", "ingest", str(odd), "--store", str(store), "--symbol", "BTCPERP"]
    res = runner.invoke(app, cmd)
    assert res.exit_code == 2 and "--map field=column" in res.stderr
    assert not (store / "catalog.json").exists()  # nothing written
    res = runner.invoke(app, [*cmd, "--map", "tz=when"])
    assert res.exit_code == 2 and "mapping key 'tz' is not a canonical column" in res.stderr
    maps = ["--map", "ts=when", "--map", "open=o_px", "--map", "high=h_px", "--map", "low=l_px"]
    res = runner.invoke(app, [*cmd, *maps, "--map", "close=c_px", "--map", "volume=qty_usd"])
    assert res.exit_code == 0, res.output
    assert "300 rows added" in res.stdout
    # the same bars as the file with standard names: ingesting it adds nothing
    res = runner.invoke(
        app, ["data", "ingest", str(std), "--store", str(store), "--symbol", "BTCPERP", "--json"]
    )
    rep = json.loads(res.stdout)
    assert (rep["rows_added"], rep["rows_present"]) == (0, 300)


def test_synth_prefix_keeps_another_seed_beside(tmp_path: Path) -> None:
    store = tmp_path / "syn"
    args = ["data", "synth", "--store", str(store), "--symbols", "2", "--bars", "500"]
    assert runner.invoke(app, [*args, "--seed", "1"]).exit_code == 0
    other = runner.invoke(app, [*args, "--seed", "2"])
    assert other.exit_code == 2
    msg = other.stderr.strip()
    assert len(msg.splitlines()) == 1 and "--prefix" in msg and "fix the file" not in msg
    res = runner.invoke(app, [*args, "--seed", "2", "--prefix", "sim"])
    assert res.exit_code == 0, res.output
    panel = load_bars(store)
    assert panel.symbols == ["SIM000", "SIM001", "SYN000", "SYN001"]
    m1, m2 = (
        simulate_market(2, 500, "1m", "2024-01-01", 1),
        simulate_market(2, 500, "1m", "2024-01-01", 2),
    )
    np.testing.assert_array_equal(panel.close[:, 2:], m1.close.T)
    np.testing.assert_array_equal(panel.close[:, :2], m2.close.T)


def test_data_commands_take_the_store_from_the_environment(
    sample_dir: Path, tmp_path: Path
) -> None:
    store = tmp_path / "envstore"
    env = {"QUANTARENA_STORE": str(store)}
    res = runner.invoke(
        app, ["data", "ingest", str(sample_dir / "ADABTC-1m-2021-11-27.csv")], env=env
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "synth", "--symbols", "1", "--bars", "10"], env=env)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "info", "--json"], env=env)
    assert {d["symbol"] for d in json.loads(res.stdout)} == {"ADABTC", "SYN000"}
