"""Fuzzing the loaders with damaged copies of every bundled real file.

Each sample layout (Binance klines and aggTrades, CryptoDataDownload, generic CSV, long
format, Feather, and the Feather bars as Parquet) is cut off at a random byte or has a few
bytes changed, plain or inside a zip or gzip. Whatever the damage, the loader either returns rows that pass the store's rules
or refuses the file with one line (a :class:`DataError` naming the file) — never another
exception — and a refused ingest leaves the store byte for byte as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantarena.data.errors import DataError
from quantarena.data.loaders import load_file
from quantarena.data.schema import schema_for
from quantarena.data.store import Store
from quantarena.data.validate import PRICE_RTOL

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"

#: every bundled file → (layout, lines before the first data row)
FILES = {
    "ADABTC-1m-2021-11-27.csv": ("binance-klines", 0),
    "ADABTC-1m-2021-11-28.csv": ("binance-klines", 0),
    "XRPETH-aggTrades-2019-10-11_13.csv": ("binance-aggtrades", 0),
    "Coinbase_BTCUSD_1h.csv": ("cryptodatadownload", 2),
    "btc-perp-20211231-20220201_1m.csv": ("csv", 1),
    "stocks_daily.csv": ("long-csv", 1),
    **{
        f"crypto_5m_binance/{p.name}": ("feather", 0)
        for p in sorted((SAMPLE / "crypto_5m_binance").glob("*.feather"))
    },
    # the same real bars written as Parquet (no Parquet file is bundled)
    "ADA_BTC-5m.parquet": ("parquet", 0),
}
#: text files are fuzzed on their first lines (damage anywhere in them; the parsers see
#: the same structure as in the whole file, and the tests stay fast)
HEAD_LINES = 400

#: examples per test; a longer hunt: QUANTARENA_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_loaders.py
EXAMPLES = int(os.environ.get("QUANTARENA_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _base(name: str) -> bytes:
    if name.endswith(".parquet"):
        buf = io.BytesIO()
        feather_file = SAMPLE / "crypto_5m_binance" / name.replace(".parquet", ".feather")
        pq.write_table(feather.read_table(feather_file), buf)
        return buf.getvalue()
    data = (SAMPLE / name).read_bytes()
    if name.endswith(".csv"):
        data = b"".join(data.splitlines(keepends=True)[:HEAD_LINES])
    return data


BASES = {name: _base(name) for name in FILES}


def _reference(name: str) -> pa.Table:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / Path(name).name
        p.write_bytes(BASES[name])
        return load_file(p).table


REFERENCE = {name: _reference(name) for name in FILES}


def _wrap(name: str, data: bytes, container: str) -> tuple[str, bytes]:
    """The bytes as a plain file, a one-member zip or a gzip, and the file name to use."""
    base = Path(name).name
    if container == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(base, data)
        return base + ".zip", buf.getvalue()
    if container == "gzip":
        return base + ".gz", gzip.compress(data, mtime=0)
    return base, data


def _check_one_line(err: DataError, fname: str) -> None:
    text = str(err)
    assert "\n" not in text and text.strip() == text and text
    assert fname in text, f"the message does not name the file: {text!r}"
    assert len(text) < 600, text


def _check_rows(table: pa.Table, kind: str) -> None:
    """The rules every loaded table keeps: canonical schema, sorted by (symbol, ts),
    finite positive prices, non-negative amounts, bars inside [low, high]."""
    assert table.schema.equals(schema_for(kind)), table.schema
    assert table.num_rows > 0
    sym = np.asarray(table.column("symbol").to_pylist(), dtype=object)
    ts = table.column("ts").to_numpy()
    assert np.array_equal(np.lexsort((ts, sym)), np.arange(len(ts)))
    if kind == "bars":
        o, h, lo, c, v = (
            table.column(k).to_numpy() for k in ("open", "high", "low", "close", "volume")
        )
        for x in (o, h, lo, c):
            assert np.isfinite(x).all() and (x > 0).all()
        # the validator's tolerance for prices rounded in the source
        assert (lo * (1 - PRICE_RTOL) <= np.minimum(o, c)).all()
        assert (h * (1 + PRICE_RTOL) >= np.maximum(o, c)).all() and (h >= lo).all()
        assert np.isfinite(v).all() and (v >= 0).all()
    else:
        p, q = table.column("price").to_numpy(), table.column("qty").to_numpy()
        assert np.isfinite(p).all() and (p > 0).all()
        assert np.isfinite(q).all() and (q >= 0).all()


def _load(fname: str, data: bytes) -> tuple[pa.Table | None, DataError | None, str]:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / fname
        p.write_bytes(data)
        try:
            loaded = load_file(p)
        except DataError as err:
            return None, err, ""
        return loaded.table, None, loaded.kind


def _rows(table: pa.Table) -> set[tuple]:
    names = [n for n in table.column_names if n != "symbol"]
    cols = [table.column(n).to_pylist() for n in names]
    return set(zip(*cols, strict=True))


@pytest.mark.parametrize("name", list(FILES))
@pytest.mark.parametrize("container", ["plain", "zip", "gzip"])
@FUZZ
@given(data=st.data())
def test_truncated_file_loads_its_whole_rows_or_is_refused(
    name: str, container: str, data: st.DataObject
) -> None:
    full = BASES[name]
    if container == "plain":
        cut = data.draw(st.integers(1, len(full) - 1), label="cut")
        fname, damaged = _wrap(name, full[:cut], container)
    else:  # a cut-off archive
        fname, whole = _wrap(name, full, container)
        cut = data.draw(st.integers(1, len(whole) - 1), label="cut")
        damaged = whole[:cut]
    table, err, kind = _load(fname, damaged)
    if err is not None:
        _check_one_line(err, fname)
        return
    _check_rows(table, kind)
    layout, head = FILES[name]
    if container != "plain" or layout in ("feather", "parquet"):
        # a cut-off archive or Arrow file can only be read whole (zip keeps its index
        # at the end; gzip and Arrow check lengths): the rows are all there
        assert table.num_rows == REFERENCE[name].num_rows
        return
    # a cut text file: every whole line loads as in the full file; the cut line
    # either loads as it reads (e.g. a shorter last number) or is refused
    complete = full[:cut].count(b"\n") - head
    assert complete <= table.num_rows <= complete + 1
    extra = _rows(table) - _rows(REFERENCE[name])
    assert len(extra) <= 1, f"{len(extra)} rows differ from the full file"


@pytest.mark.parametrize("name", list(FILES))
@pytest.mark.parametrize("container", ["plain", "zip", "gzip"])
@FUZZ
@given(data=st.data())
def test_changed_bytes_load_valid_rows_or_are_refused(
    name: str, container: str, data: st.DataObject
) -> None:
    full = BASES[name]
    fname, raw = _wrap(name, full, container)
    damaged = bytearray(raw)
    n_flips = data.draw(st.integers(1, 4), label="flips")
    for _ in range(n_flips):
        at = data.draw(st.integers(0, len(damaged) - 1), label="at")
        damaged[at] ^= data.draw(st.integers(1, 255), label="xor")
    table, err, kind = _load(fname, bytes(damaged))
    if err is not None:
        _check_one_line(err, fname)
        return
    _check_rows(table, kind)


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_store")
    Store(root).ingest(SAMPLE / "ADABTC-1m-2021-11-28.csv")
    return root


@pytest.mark.parametrize("name", ["ADABTC-1m-2021-11-27.csv", "btc-perp-20211231-20220201_1m.csv"])
@settings(
    max_examples=max(5, EXAMPLES // 2),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_refused_ingest_leaves_the_store_unchanged(
    seeded_store: Path, name: str, data: st.DataObject
) -> None:
    full = BASES[name]
    container = data.draw(st.sampled_from(["plain", "zip", "gzip"]), label="container")
    fname, raw = _wrap(name, full, container)
    damaged = bytearray(raw)
    if data.draw(st.booleans(), label="truncate"):
        damaged = damaged[: data.draw(st.integers(1, len(damaged) - 1), label="cut")]
    else:
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            at = data.draw(st.integers(0, len(damaged) - 1), label="at")
            damaged[at] ^= data.draw(st.integers(1, 255), label="xor")
    # a fresh copy of the seeded store per example, so accepted files do not pile up
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "store"
        shutil.copytree(seeded_store, root)
        src = Path(d) / fname
        src.write_bytes(bytes(damaged))
        before = _tree_hash(root)
        try:
            Store(root).ingest(src)
        except DataError as err:
            _check_one_line(err, fname)
            assert _tree_hash(root) == before
