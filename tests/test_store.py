"""The Parquet store: layout, idempotence, conflicts, atomicity, locking (real sample files)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantarena.data.errors import ConflictError, DataError, StoreError
from quantarena.data.loaders import load_file
from quantarena.data.schema import BAR_SCHEMA, TRADE_SCHEMA, LoadedData
from quantarena.data.store import MissingDataError, Store, expand_paths, iso

ADA_27 = "ADABTC-1m-2021-11-27.csv"
ADA_28 = "ADABTC-1m-2021-11-28.csv"
XRP = "XRPETH-aggTrades-2019-10-11_13.csv"


def tree_digest(root: Path) -> str:
    """Hash of every path and file byte under root (directories included)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def test_layout_and_round_trip(store: Store, sample_dir: Path) -> None:
    report = store.ingest([sample_dir / ADA_27, sample_dir / XRP])
    assert [f.rows_added for f in report.files] == [10, 12477]
    assert report.changed
    root = store.root
    bars_parts = list((root / "bars/symbol=ADABTC/interval=1m").glob("part-*.parquet"))
    trade_parts = list((root / "trades/symbol=XRPETH").glob("part-*.parquet"))
    assert len(bars_parts) == 1 and len(trade_parts) == 1
    # part name = first and last ts (ns) of its rows
    assert bars_parts[0].name == "part-1637971200000000000-1637971740000000000.parquet"
    on_disk = pq.read_table(bars_parts[0])
    assert on_disk.schema.equals(BAR_SCHEMA, check_metadata=False)
    assert pq.read_table(trade_parts[0]).schema.equals(TRADE_SCHEMA, check_metadata=False)
    # what the store holds equals what the loader produced, row for row
    assert on_disk.equals(load_file(sample_dir / ADA_27).table)
    assert store.read_table("trades", "XRPETH").equals(load_file(sample_dir / XRP).table)
    cat = json.loads((root / "catalog.json").read_text())
    assert cat["version"] == 1
    ada = next(d for d in cat["datasets"] if d["symbol"] == "ADABTC")
    assert (ada["kind"], ada["interval_ns"], ada["rows"]) == ("bars", 60_000_000_000, 10)
    assert (ada["start_ns"], ada["end_ns"]) == (1637971200000000000, 1637971740000000000)
    src = ada["sources"][0]
    assert src["sha256"] == hashlib.sha256((sample_dir / ADA_27).read_bytes()).hexdigest()
    assert src["rows"] == 10 and src["layout"] == "binance-klines" and src["ingested_at"]
    # no temporary files left behind
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name]


def test_same_file_twice_adds_nothing(store: Store, sample_dir: Path) -> None:
    store.ingest(sample_dir / ADA_27)
    before = tree_digest(store.root)
    report = store.ingest(sample_dir / ADA_27)
    assert report.files[0].skipped_same_hash and not report.changed
    assert report.rows_added == 0
    assert tree_digest(store.root) == before


def test_same_rows_in_another_file_add_no_rows(
    store: Store, sample_dir: Path, tmp_path: Path
) -> None:
    store.ingest(sample_dir / ADA_27)
    copy = tmp_path / "ADABTC-1m-copy.csv"
    copy.write_text("".join(lines(sample_dir / ADA_27)).replace("\n", "\r\n"))  # other bytes
    report = store.ingest(copy)
    f = report.files[0]
    assert not f.skipped_same_hash
    assert (f.rows, f.rows_added, f.rows_present) == (10, 0, 10)
    entry = store.entry("bars", "ADABTC", 60_000_000_000)
    assert entry["rows"] == 10 and len(entry["parts"]) == 1
    assert len(entry["sources"]) == 2 and entry["sources"][1]["rows_added"] == 0


def test_new_ranges_append_and_overlap_counts(
    store: Store, sample_dir: Path, tmp_path: Path
) -> None:
    store.ingest(sample_dir / ADA_27)
    store.ingest(sample_dir / ADA_28)
    entry = store.entry("bars", "ADABTC", 60_000_000_000)
    assert entry["rows"] == 21 and len(entry["parts"]) == 2
    table = store.read_table("bars", "ADABTC", 60_000_000_000)
    ts = table.column("ts").to_numpy()
    assert table.num_rows == 21 and np.all(np.diff(ts) > 0)
    # a file straddling both days plus one new bar: 5 + 5 present, 1 added
    mixed = tmp_path / "ADABTC-1m-mixed.csv"
    last = lines(sample_dir / ADA_28)[-1].split(",")
    new_ts = int(last[0]) + 60_000
    new_row = ",".join([str(new_ts), *last[1:6], str(new_ts + 59_999), *last[7:]])
    mixed.write_text("".join(lines(sample_dir / ADA_27)[-5:] + lines(sample_dir / ADA_28)[:5]))
    rep = store.ingest(mixed).files[0]
    assert (rep.rows_added, rep.rows_present) == (0, 10)
    mixed.write_text("".join(lines(sample_dir / ADA_28)[-3:]) + new_row)
    rep = store.ingest(mixed).files[0]
    assert (rep.rows_added, rep.rows_present) == (1, 3)
    assert (
        store.read_table("bars", "ADABTC", 60_000_000_000).column("ts")[-1].as_py()
        == new_ts * 1_000_000
    )


def test_conflict_names_file_symbol_time_field_and_writes_nothing(
    store: Store, sample_dir: Path, tmp_path: Path
) -> None:
    store.ingest(sample_dir / ADA_27)
    before = tree_digest(store.root)
    rows = lines(sample_dir / ADA_27)
    cells = rows[3].split(",")
    cells[4] = "0.00002850"  # close of 2021-11-27 00:03 was 0.00002857
    rows[3] = ",".join(cells)
    bad = tmp_path / "ADABTC-1m-edited.csv"
    bad.write_text("".join(rows))
    with pytest.raises(ConflictError) as err:
        store.ingest([sample_dir / ADA_28, bad])  # the good file is not written either
    msg = str(err.value)
    assert "\n" not in msg
    assert "ADABTC-1m-edited.csv" in msg and "ADABTC" in msg
    assert "2021-11-27T00:03:00Z" in msg and "'close'" in msg
    assert tree_digest(store.root) == before
    assert store.entry("bars", "ADABTC", 60_000_000_000)["rows"] == 10


def test_conflict_between_files_of_one_call(store: Store, sample_dir: Path, tmp_path: Path) -> None:
    rows = lines(sample_dir / ADA_27)
    cells = rows[0].split(",")
    cells[5] = "1.5"  # volume differs
    rows[0] = ",".join(cells)
    other = tmp_path / "ADABTC-1m-other.csv"
    other.write_text("".join(rows))
    with pytest.raises(ConflictError, match="volume"):
        store.ingest([sample_dir / ADA_27, other])
    assert not store.exists()
    assert not list(store.root.rglob("*.parquet"))


def test_bad_third_file_leaves_store_byte_for_byte(
    store: Store, sample_dir: Path, tmp_path: Path
) -> None:
    store.ingest(sample_dir / "crypto_5m_binance" / "ETH_BTC-5m.feather")
    before = tree_digest(store.root)
    rows = lines(sample_dir / ADA_28)
    cells = rows[6].split(",")
    cells[2] = "abc"  # unparseable high
    rows[6] = ",".join(cells)
    bad = tmp_path / "ADABTC-1m-bad.csv"
    bad.write_text("".join(rows))
    with pytest.raises(DataError) as err:
        store.ingest([sample_dir / ADA_27, sample_dir / XRP, bad])
    assert "ADABTC-1m-bad.csv" in str(err.value) and "row 7" in str(err.value)
    assert tree_digest(store.root) == before


def test_failure_while_writing_rolls_back(
    store: Store, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ingest(sample_dir / ADA_27)
    before = tree_digest(store.root)
    real = pq.write_table
    calls = {"n": 0}

    def flaky(table: pa.Table, where: object, **kw: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(table, where, **kw)

    monkeypatch.setattr(pq, "write_table", flaky)
    with pytest.raises(OSError, match="disk full"):
        store.ingest([sample_dir / ADA_28, sample_dir / XRP])
    assert calls["n"] == 2
    assert tree_digest(store.root) == before


def test_second_writer_waits_then_fails(tmp_path: Path, sample_dir: Path) -> None:
    locked = Store(tmp_path / "s", lock_timeout=0.3)
    locked.ingest(sample_dir / ADA_27)
    fd = os.open(locked.root / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: conflicts like a process
        with pytest.raises(StoreError, match="locked"):
            locked.ingest(sample_dir / ADA_28)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert locked.ingest(sample_dir / ADA_28).rows_added == 11


def test_intervals_live_side_by_side(store: Store, sample_dir: Path) -> None:
    store.ingest([sample_dir / ADA_27, sample_dir / "crypto_5m_binance" / "ADA_BTC-5m.feather"])
    dirs = sorted(p.name for p in (store.root / "bars" / "symbol=ADABTC").iterdir())
    assert dirs == ["interval=1m", "interval=5m"]
    assert store.entry("bars", "ADABTC", 300_000_000_000)["rows"] == 5720
    with pytest.raises(MissingDataError, match="several intervals"):
        store.entry("bars", "ADABTC")


def test_trades_dedupe_by_id(store: Store, sample_dir: Path, tmp_path: Path) -> None:
    store.ingest(sample_dir / XRP)
    part = tmp_path / "xrp-part.csv"
    part.write_text("".join(lines(sample_dir / XRP)[100:200]).replace("True", "true"))
    rep = store.ingest(part, symbol="XRPETH").files[0]
    assert (rep.rows_added, rep.rows_present) == (0, 100)
    # the same trade id with another price is a conflict
    rows = lines(sample_dir / XRP)[100:102]
    cells = rows[1].split(",")
    cells[1] = "0.00150000"
    rows[1] = ",".join(cells)
    part.write_text("".join(rows))
    with pytest.raises(ConflictError, match="'price'"):
        store.ingest(part, symbol="XRPETH")


def test_write_generated_and_symbol_quoting(store: Store) -> None:
    n = 50
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000
    close = 100 + np.arange(n, dtype=np.float64)
    table = pa.table(
        {
            "symbol": ["BTC/USD"] * n,
            "ts": ts,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.ones(n),
            "quote_volume": pa.nulls(n, pa.float64()),
            "trades": pa.nulls(n, pa.int64()),
            "taker_buy_volume": pa.nulls(n, pa.float64()),
        },
        schema=BAR_SCHEMA,
    )
    rep = store.write(LoadedData("bars", table, "synthetic:test", "synthetic", 60_000_000_000))
    assert rep.rows_added == n
    assert (store.root / "bars" / "symbol=BTC%2FUSD" / "interval=1m").is_dir()
    assert store.read_table("bars", "BTC/USD").equals(table)
    again = store.write(LoadedData("bars", table, "synthetic:test", "synthetic", 60_000_000_000))
    assert (again.rows_added, again.rows_present) == (0, n)
    # range reads are [start, end)
    sub = store.read_table("bars", "BTC/USD", None, int(ts[10]), int(ts[20]))
    assert sub.column("ts").to_numpy().tolist() == ts[10:20].tolist()


def test_damaged_catalog_and_missing_store(tmp_path: Path) -> None:
    bare = Store(tmp_path / "s")
    assert bare.catalog() == [] and not bare.exists()
    bare.root.mkdir()
    (bare.root / "catalog.json").write_text("{not json")
    with pytest.raises(StoreError) as err:
        bare.catalog()
    assert "catalog.json" in str(err.value) and "\n" not in str(err.value)


def test_expand_paths_skips_docs_and_hidden(sample_dir: Path, tmp_path: Path) -> None:
    files = expand_paths([sample_dir])
    names = {f.name for f in files}
    assert "README.md" not in names
    assert {ADA_27, XRP, "ETH_BTC-5m.feather", "stocks_daily.csv"} <= names
    assert len(files) == 14 + 9  # bars and trades; tick data under ticks/
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        expand_paths([tmp_path / "nope.csv"])


def test_info_frame(store: Store, sample_dir: Path) -> None:
    store.ingest(sample_dir / "stocks_daily.csv")
    df = store.info()
    assert sorted(df["symbol"]) == ["AAPL", "AMZN", "GOOG", "META", "NFLX", "NVDA"]
    assert int(df["rows"].sum()) == 16194
    assert set(df["interval"]) == {"1d"}
    assert df["first"].iloc[0] == iso(int(pd_ts("2013-01-02")))


def pd_ts(text: str) -> int:
    import pandas as pd

    return pd.Timestamp(text, tz="UTC").value


def test_ingest_copies_dir_tree(tmp_path: Path, sample_dir: Path) -> None:
    """A directory argument ingests its data files recursively."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    shutil.copy(sample_dir / ADA_27, d / ADA_27)
    shutil.copy(sample_dir / ADA_28, d / "sub" / ADA_28)
    (d / "notes.md").write_text("not data")
    rep = Store(tmp_path / "s").ingest(d)
    assert sorted(Path(f.path).name for f in rep.files) == [ADA_27, ADA_28]
    assert rep.rows_added == 21


@settings(max_examples=15, deadline=None)
@given(
    windows=st.lists(st.tuples(st.integers(0, 180), st.integers(1, 80)), min_size=1, max_size=6),
    per_call=st.integers(1, 3),
)
def test_overlapping_writes_store_the_union_once(
    windows: list[tuple[int, int]], per_call: int
) -> None:
    """Any sequence of overlapping slices, written in batches, stores each row once and
    reads back equal to the union of the slices."""
    from quantarena.data.synthetic import synthetic_bars

    full = synthetic_bars(2, 260, "1m", seed=1)
    n = 260
    with tempfile.TemporaryDirectory() as d:
        store = Store(d)
        covered = np.zeros(n, dtype=bool)
        added = 0
        items = []
        for a, length in windows:
            b = min(n, a + length)
            idx = np.r_[np.arange(a, b), n + np.arange(a, b)]  # both symbols
            items.append(
                LoadedData("bars", full.take(pa.array(idx)), f"w{a}-{b}", "test", 60_000_000_000)
            )
            covered[a:b] = True
        for k in range(0, len(items), per_call):
            added += store.write(items[k : k + per_call]).rows_added
        assert added == 2 * int(covered.sum())
        for j, sym in enumerate(("SYN000", "SYN001")):
            got = store.read_table("bars", sym)
            want = full.slice(j * n, n).filter(pa.array(covered))
            assert got.equals(want)
