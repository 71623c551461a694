"""Loaders: every real sample file, unseen layouts detected from content, and bad inputs."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantarena.data.errors import (
    ArchiveError,
    DataError,
    DuplicateTimestampError,
    EmptyFileError,
    ParseError,
    TimeOrderError,
    UnknownLayoutError,
    ValidationError,
)
from quantarena.data.loaders import FORMATS, detect_format, load_file
from quantarena.data.loaders.symbols import normalise_symbol, symbol_from_filename
from quantarena.data.schema import BAR_SCHEMA, TRADE_SCHEMA

MIN = 60 * 10**9
HOUR = 60 * MIN
DAY = 24 * HOUR


def utc_ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def assert_sorted(table: pa.Table) -> None:
    sym = np.asarray(table.column("symbol").to_pylist(), dtype=object)
    ts = table.column("ts").to_numpy()
    order = np.lexsort((ts, sym))
    assert np.array_equal(order, np.arange(len(ts)))


def one_line(err: Exception, *parts: str) -> str:
    text = str(err)
    assert "\n" not in text
    for p in parts:
        assert p in text, f"{p!r} not in {text!r}"
    return text


# ---------------------------------------------------------------------------------------
# the real sample files


def test_btc_perp_generic_csv(btc_1m_csv: Path) -> None:
    d = load_file(btc_1m_csv)
    assert (d.kind, d.layout, d.symbols, d.rows) == ("bars", "csv", ["BTCPERP"], 45_031)
    assert d.table.schema.equals(BAR_SCHEMA)
    assert d.interval_ns == MIN
    assert not any("gap" in n for n in d.notes)  # "no missing minutes"
    ref = pd.read_csv(btc_1m_csv)
    ts = d.table.column("ts").to_numpy()
    assert ts[0] == utc_ns("2021-12-31 23:01:00")
    assert ts[-1] == utc_ns("2022-02-01 05:31:00")
    expect_ts = pd.to_datetime(ref["timestamp"], utc=True).dt.as_unit("ns").astype("int64")
    assert np.array_equal(ts, expect_ts.to_numpy())
    for c in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(d.table.column(c).to_numpy(), ref[c].to_numpy())
    first = d.table.slice(0, 1).to_pylist()[0]
    assert (first["open"], first["high"], first["close"], first["volume"]) == (
        46319.0,
        46385.0,
        46377.0,
        2300413.7295,
    )
    assert d.table.column("quote_volume").null_count == d.rows


@pytest.mark.parametrize(
    ("name", "rows", "first_ms", "first_row"),
    [
        (
            "ADABTC-1m-2021-11-27.csv",
            10,
            1637971200000,
            (0.00002853, 0.00002854, 0.00002851, 0.00002854, 36304.2, 1.03547608, 79, 19523.0),
        ),
        (
            "ADABTC-1m-2021-11-28.csv",
            11,
            1638057600000,
            (0.00002820, 0.00002821, 0.00002817, 0.00002818, 85342.7, 2.40584425, 96, 36241.7),
        ),
    ],
)
def test_binance_spot_klines(sample_dir: Path, name, rows, first_ms, first_row) -> None:
    d = load_file(sample_dir / name)
    assert (d.kind, d.layout, d.symbols, d.rows) == ("bars", "binance-klines", ["ADABTC"], rows)
    assert d.interval_ns == MIN
    assert "timestamps in milliseconds" in d.notes
    r = d.table.slice(0, 1).to_pylist()[0]
    assert r["ts"] == first_ms * 10**6
    got = tuple(
        r[k]
        for k in (
            "open",
            "high",
            "low",
            "close",
            "volume",
            "quote_volume",
            "trades",
            "taker_buy_volume",
        )
    )
    assert got == first_row
    raw = np.loadtxt(sample_dir / name, delimiter=",")
    assert np.array_equal(d.table.column("ts").to_numpy(), raw[:, 0].astype(np.int64) * 10**6)
    assert np.array_equal(d.table.column("close").to_numpy(), raw[:, 4])
    assert np.array_equal(d.table.column("trades").to_numpy(), raw[:, 8].astype(np.int64))


def test_binance_spot_aggtrades(sample_dir: Path) -> None:
    path = sample_dir / "XRPETH-aggTrades-2019-10-11_13.csv"
    d = load_file(path)
    assert (d.kind, d.layout, d.symbols, d.rows) == (
        "trades",
        "binance-aggtrades",
        ["XRPETH"],
        12_477,
    )
    assert d.table.schema.equals(TRADE_SCHEMA)
    assert d.interval_ns is None
    raw = pd.read_csv(path, header=None)
    t = d.table
    assert np.array_equal(t.column("trade_id").to_numpy(), raw[0].to_numpy())
    assert np.array_equal(np.diff(t.column("trade_id").to_numpy()), np.ones(d.rows - 1))
    assert np.array_equal(t.column("price").to_numpy(), raw[1].to_numpy())
    assert np.array_equal(t.column("qty").to_numpy(), raw[2].to_numpy())
    assert np.array_equal(t.column("ts").to_numpy(), raw[5].to_numpy() * 10**6)
    assert np.array_equal(t.column("side").to_numpy(), np.where(raw[6], -1, 1))
    assert t.slice(0, 1).to_pylist()[0] == {
        "symbol": "XRPETH",
        "ts": 1570752011620 * 10**6,
        "price": 0.00141342,
        "qty": 23.0,
        "side": -1,
        "trade_id": 13519807,
    }
    # trades share timestamps (normal) but never go backwards
    assert (np.diff(t.column("ts").to_numpy()) >= 0).all()


def test_cryptodatadownload_newest_first(sample_dir: Path) -> None:
    path = sample_dir / "Coinbase_BTCUSD_1h.csv"
    d = load_file(path)
    assert (d.kind, d.layout, d.symbols, d.rows) == (
        "bars",
        "cryptodatadownload",
        ["BTCUSD"],
        20_111,
    )
    assert d.interval_ns == HOUR
    assert any("newest-first" in n for n in d.notes)
    assert_sorted(d.table)
    first, last = d.table.slice(0, 1).to_pylist()[0], d.table.slice(d.rows - 1).to_pylist()[0]
    # oldest row is the file's last line: 2017-07-01 11-AM,BTCUSD,2505.56,2513.38,2495.12,2509.17,114.6,287000.32
    assert first["ts"] == utc_ns("2017-07-01 11:00")
    assert (first["open"], first["close"], first["volume"], first["quote_volume"]) == (
        2505.56,
        2509.17,
        114.6,
        287000.32,
    )
    # newest row is the file's line 3: 2019-10-17 09-AM,BTCUSD,8051,8056.83,8021.23,8035.88,61.25,492394.56
    assert last["ts"] == utc_ns("2019-10-17 09:00")
    assert (last["open"], last["high"], last["low"], last["close"]) == (
        8051,
        8056.83,
        8021.23,
        8035.88,
    )
    # independent parse: pandas with the 12-hour clock format
    ref = pd.read_csv(path, skiprows=1)
    ref["ts"] = pd.to_datetime(ref["date"], format="%Y-%m-%d %I-%p", utc=True).dt.as_unit("ns")
    ref = ref.sort_values("ts", kind="stable")
    assert np.array_equal(d.table.column("ts").to_numpy(), ref["ts"].astype("int64").to_numpy())
    assert np.array_equal(d.table.column("close").to_numpy(), ref["close"].to_numpy())
    assert np.array_equal(d.table.column("volume").to_numpy(), ref["volume_btc"].to_numpy())
    # 12-AM is midnight, 12-PM is noon
    ts = set(d.table.column("ts").to_numpy().tolist())
    assert utc_ns("2019-10-17 00:00") in ts and utc_ns("2019-10-16 12:00") in ts


def test_long_format_stocks(sample_dir: Path) -> None:
    path = sample_dir / "stocks_daily.csv"
    d = load_file(path)
    assert (d.kind, d.layout, d.rows) == ("bars", "long-csv", 16_194)
    assert d.symbols == ["AAPL", "AMZN", "GOOG", "META", "NFLX", "NVDA"]
    assert d.interval_ns == DAY
    assert_sorted(d.table)
    counts = pd.Series(d.table.column("symbol").to_pylist()).value_counts()
    assert (counts == 2699).all()
    assert any(n.startswith("gaps:") for n in d.notes)  # weekends and holidays are reported
    ref = pd.read_csv(path)
    ref["ts"] = pd.to_datetime(ref["date"], utc=True).dt.as_unit("ns").astype("int64")
    ref = ref.sort_values(["symbol", "ts"], kind="stable")
    assert np.array_equal(d.table.column("ts").to_numpy(), ref["ts"].to_numpy())
    assert np.array_equal(d.table.column("close").to_numpy(), ref["close"].to_numpy())
    assert np.array_equal(d.table.column("volume").to_numpy(), ref["volume"].to_numpy(float))
    meta = (
        d.table.filter(pa.compute.equal(d.table.column("symbol"), "META"))
        .slice(0, 1)
        .to_pylist()[0]
    )
    assert meta["ts"] == utc_ns("2013-01-02") and meta["close"] == 28.0


def test_feather_files(sample_dir: Path) -> None:
    files = sorted((sample_dir / "crypto_5m_binance").glob("*.feather"))
    assert len(files) == 8
    for f in files:
        d = load_file(f)
        ref = feather.read_table(f)
        assert (d.kind, d.layout, d.rows) == ("bars", "feather", ref.num_rows)
        assert 5_700 <= d.rows <= 5_760
        assert d.symbols == [f.name.split("-")[0].replace("_", "")]
        assert d.interval_ns == 5 * MIN
        assert d.table.column("ts").to_numpy()[0] == utc_ns("2018-01-10 04:55")
        assert np.array_equal(
            d.table.column("ts").to_numpy(), ref.column("date").cast(pa.int64()).to_numpy()
        )
        for c in ("open", "high", "low", "close", "volume"):
            assert np.array_equal(d.table.column(c).to_numpy(), ref.column(c).to_numpy())
    ada = load_file(sample_dir / "crypto_5m_binance" / "ADA_BTC-5m.feather")
    # ADA/BTC misses bars: 3 steps of 10m, one of 25m and one long one (see the raw diffs)
    ts = ada.table.column("ts").to_numpy()
    steps = np.diff(ts) // (5 * MIN)
    expect_missing = int((steps - 1).sum())
    assert any(n.startswith(f"gaps: {expect_missing} missing bars") for n in ada.notes)


def test_every_sample_file_loads(sample_dir: Path) -> None:
    files = [
        p
        for p in sample_dir.rglob("*")
        if p.is_file()
        and p.suffix in (".csv", ".feather")
        and "ticks" not in p.relative_to(sample_dir).parts  # tick data: tests/test_ticks.py
    ]
    assert len(files) == 14
    for f in files:
        d = load_file(f)
        assert d.rows > 0
        assert_sorted(d.table)
        assert detect_format(f) == d.layout


# ---------------------------------------------------------------------------------------
# layouts the sample does not have, named misleadingly so that only content can tell

FUT_KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore\n"
)


def _kline_rows(start_ms: int, n: int, unit: int = 1) -> str:
    out = []
    for i in range(n):
        t = (start_ms + i * 60_000) * unit
        o, c = 100.0 + i, 100.5 + i
        out.append(
            f"{t},{o},{c + 1},{o - 1},{c},{10 + i},{t + 59_999 * unit},{1000.5 + i},{5 + i},4.5,450.0,0"
        )
    return "\n".join(out) + "\n"


def test_futures_klines_header_microseconds(tmp_path: Path) -> None:
    start = 1735689600000  # 2025-01-01
    p = write(tmp_path / "data.csv", FUT_KLINE_HEADER + _kline_rows(start, 5, unit=1000))
    assert detect_format(p) == "binance-klines"
    d = load_file(p, symbol="btc/usdt")
    assert d.symbols == ["BTCUSDT"]
    assert "timestamps in microseconds" in d.notes
    ts = d.table.column("ts").to_numpy()
    assert ts[0] == utc_ns("2025-01-01") and np.array_equal(np.diff(ts), np.full(4, MIN))
    assert d.table.column("trades").to_pylist() == [5, 6, 7, 8, 9]
    assert d.table.column("quote_volume").to_pylist()[0] == 1000.5


def test_kline_zip(tmp_path: Path) -> None:
    start = 1704067200000
    z = tmp_path / "BTCUSDT-1m-2024-01.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BTCUSDT-1m-2024-01.csv", _kline_rows(start, 7))
    d = load_file(z)
    assert (d.layout, d.symbols, d.rows, d.interval_ns) == ("binance-klines", ["BTCUSDT"], 7, MIN)
    assert d.table.column("ts").to_numpy()[0] == start * 10**6
    # a zip with a meaningless name still loads, with the symbol from the member
    z2 = tmp_path / "download.zip"
    z2.write_bytes(z.read_bytes())
    assert load_file(z2).symbols == ["BTCUSDT"]
    assert detect_format(z2) == "binance-klines"
    # and gzip
    g = tmp_path / "blob.gz"
    g.write_bytes(gzip.compress(_kline_rows(start, 3).encode()))
    assert load_file(g, symbol="ETHUSDT").rows == 3


def test_spot_trades(tmp_path: Path) -> None:
    rows = [
        "1001,42000.5,0.01,420.005,1704067200123,True,True",
        "1002,42001.0,0.5,21000.5,1704067200123,false,true",
        "1003,41999.0,2,83998,1704067201000,False,True",
    ]
    p = write(tmp_path / "data.csv", "\n".join(rows) + "\n")
    assert detect_format(p) == "binance-trades"
    d = load_file(p, symbol="BTCUSDT")
    assert (d.kind, d.rows) == ("trades", 3)
    assert d.table.column("side").to_pylist() == [-1, 1, 1]
    assert d.table.column("trade_id").to_pylist() == [1001, 1002, 1003]
    assert d.table.column("qty").to_pylist() == [0.01, 0.5, 2.0]
    assert d.table.column("ts").to_pylist()[0] == 1704067200123 * 10**6


def test_futures_aggtrades_with_header(tmp_path: Path) -> None:
    text = (
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
        "500,42000.1,0.25,900,902,1704067200000,true\n"
        "501,42000.2,1.5,903,903,1704067200050,false\n"
    )
    p = write(tmp_path / "trades.csv", text)  # the name says trades; the content says aggTrades
    assert detect_format(p) == "binance-aggtrades"
    d = load_file(p, symbol="BTCUSDT")
    assert d.table.to_pylist() == [
        {
            "symbol": "BTCUSDT",
            "ts": 1704067200000 * 10**6,
            "price": 42000.1,
            "qty": 0.25,
            "side": -1,
            "trade_id": 500,
        },
        {
            "symbol": "BTCUSDT",
            "ts": 1704067200050 * 10**6,
            "price": 42000.2,
            "qty": 1.5,
            "side": 1,
            "trade_id": 501,
        },
    ]


def test_futures_trades_with_header_and_headerless_aggtrades(tmp_path: Path) -> None:
    p = write(
        tmp_path / "x.csv",
        "id,price,qty,quote_qty,time,is_buyer_maker\n7,100.0,2.0,200.0,1704067200000,true\n",
    )
    assert detect_format(p) == "binance-trades"
    assert load_file(p, symbol="X").table.column("side").to_pylist() == [-1]
    q = write(tmp_path / "y.csv", "8,100.0,2.0,11,12,1704067200000,false\n")
    assert detect_format(q) == "binance-aggtrades"
    assert load_file(q, symbol="X").table.column("trade_id").to_pylist() == [8]


def test_cdd_unix_layout(tmp_path: Path) -> None:
    text = (
        "https://www.CryptoDataDownload.com\n"
        "unix,date,symbol,open,high,low,close,Volume ETH,Volume USDT,tradecount\n"
        "1704074400000,2024-01-01 02:00:00,ETH/USDT,2300,2310,2290,2305,12.5,28800,40\n"
        "1704070800000,2024-01-01 01:00:00,ETH/USDT,2290,2301,2280,2300,10.0,23000,30\n"
        "1704067200000,2024-01-01 00:00:00,ETH/USDT,2280,2295,2275,2290,8.0,18300,20\n"
    )
    p = write(tmp_path / "data.csv", text)
    assert detect_format(p) == "cryptodatadownload"
    d = load_file(p)
    assert (d.symbols, d.rows, d.interval_ns) == (["ETHUSDT"], 3, HOUR)
    assert any("newest-first" in n for n in d.notes)
    assert d.table.column("ts").to_pylist() == [utc_ns(f"2024-01-01 0{h}:00") for h in range(3)]
    assert d.table.column("volume").to_pylist() == [8.0, 10.0, 12.5]  # base (ETH)
    assert d.table.column("quote_volume").to_pylist() == [18300.0, 23000.0, 28800.0]
    # unix in seconds works too
    q = write(tmp_path / "d2.csv", text.replace("0000,2024", "0,2024"))
    assert load_file(q).table.column("ts").to_pylist()[0] == utc_ns("2024-01-01")


def test_generic_csv_with_mapping(tmp_path: Path) -> None:
    text = (
        "When,PxFirst,PxTop,PxBottom,PxLast,Units\n"
        "2024-03-01T10:00:00Z,10,12,9,11,100\n"
        "2024-03-01T12:00:00+01:00,11,13,10,12,150\n"  # 11:00 UTC
    )
    p = write(tmp_path / "data.csv", text)
    with pytest.raises(UnknownLayoutError) as e:
        load_file(p, symbol="X")
    one_line(e.value, "data.csv", "--format")
    mapping = {
        "ts": "When",
        "open": "PxFirst",
        "high": "PxTop",
        "low": "PxBottom",
        "close": "PxLast",
        "volume": "Units",
    }
    d = load_file(p, symbol="X", mapping=mapping)
    assert d.layout == "csv"
    assert d.table.column("ts").to_pylist() == [
        utc_ns("2024-03-01 10:00"),
        utc_ns("2024-03-01 11:00"),
    ]
    assert d.table.column("close").to_pylist() == [11.0, 12.0]
    assert d.table.column("volume").to_pylist() == [100.0, 150.0]


def test_generic_csv_abbreviations_and_epoch_seconds(tmp_path: Path) -> None:
    p = write(
        tmp_path / "data.csv",
        "Time,O,H,L,C,V\n1704067200,1,2,0.5,1.5,3\n1704067500,1.5,2,1,1.2,4\n",
    )
    d = load_file(p, symbol="abc")
    assert d.table.column("ts").to_pylist() == [utc_ns("2024-01-01"), utc_ns("2024-01-01 00:05")]
    assert d.interval_ns == 5 * MIN and "timestamps in seconds" in d.notes


def test_parquet_with_datetime_index(tmp_path: Path) -> None:
    idx = pd.date_range("2024-01-01", periods=6, freq="15min", tz="UTC", name="time")
    df = pd.DataFrame(
        {
            "Open": np.arange(6) + 10.0,
            "High": np.arange(6) + 11.0,
            "Low": np.arange(6) + 9.0,
            "Close": np.arange(6) + 10.5,
            "Volume": np.arange(6) * 2.0,
        },
        index=idx,
    )
    p = tmp_path / "bars.bin"
    df.to_parquet(p)
    assert detect_format(p) == "parquet"
    d = load_file(p, symbol="SOLUSDT")
    assert d.interval_ns == 15 * MIN
    assert d.table.column("ts").to_pylist() == [int(t.value) for t in idx]
    assert d.table.column("close").to_pylist() == list(df["Close"])
    # an unnamed, naive index (saved as __index_level_0__) is taken as UTC
    df2 = df.copy()
    df2.index = idx.tz_localize(None).rename(None)
    p2 = tmp_path / "bars2.parquet"
    df2.to_parquet(p2)
    assert load_file(p2, symbol="SOL").table.column("ts").to_pylist() == [int(t.value) for t in idx]


def test_symbol_names() -> None:
    assert normalise_symbol("BTC/USD") == "BTCUSD"
    assert normalise_symbol("ada_btc") == "ADABTC"
    assert symbol_from_filename("BTCUSDT-1m-2024-01.zip") == "BTCUSDT"
    assert symbol_from_filename("ADA_BTC-5m.feather") == "ADABTC"
    assert symbol_from_filename("btc-perp-20211231-20220201_1m.csv") == "BTCPERP"
    assert symbol_from_filename("XRPETH-aggTrades-2019-10-11_13.csv") == "XRPETH"
    assert symbol_from_filename("data.csv") is None


def test_symbol_required_when_nothing_names_it(tmp_path: Path) -> None:
    p = write(tmp_path / "data.csv", "timestamp,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n")
    with pytest.raises(DataError) as e:
        load_file(p)
    one_line(e.value, "data.csv", "'symbol'", "--symbol")


def test_symbol_selects_from_long_file(sample_dir: Path) -> None:
    d = load_file(sample_dir / "stocks_daily.csv", symbol="nvda")
    assert d.symbols == ["NVDA"] and d.rows == 2699


# ---------------------------------------------------------------------------------------
# bad input: the right error, one line, naming file, row and field


def test_empty_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(EmptyFileError) as e:
        load_file(write(tmp_path / "empty.csv", ""))
    one_line(e.value, "empty.csv")
    with pytest.raises(EmptyFileError) as e:
        load_file(
            write(tmp_path / "head.csv", "timestamp,open,high,low,close,volume\n"), symbol="X"
        )
    one_line(e.value, "head.csv", "no data rows")


def test_unknown_layout_lists_formats(tmp_path: Path) -> None:
    p = write(tmp_path / "notes.csv", "hello world\nthis is not market data\n")
    with pytest.raises(UnknownLayoutError) as e:
        load_file(p)
    text = one_line(e.value, "notes.csv", "--format")
    assert all(f in text for f in FORMATS)
    with pytest.raises(UnknownLayoutError):
        load_file(p, format="nonsense")
    junk = tmp_path / "blob.dat"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(UnknownLayoutError) as e:
        load_file(junk)
    one_line(e.value, "blob.dat", "binary")
    with pytest.raises(UnknownLayoutError) as e:
        load_file(write(tmp_path / "k.csv", _kline_rows(1704067200000, 2)), format="parquet")
    one_line(e.value, "k.csv", "not a parquet file")


def test_unparseable_number(tmp_path: Path) -> None:
    rows = _kline_rows(1704067200000, 4).splitlines()
    rows[2] = rows[2].replace(",102.5,", ",1O2.5,", 1)  # letter O in the close of line 3
    p = write(tmp_path / "BTCUSDT-1m-2024-01.csv", "\n".join(rows) + "\n")
    with pytest.raises(ParseError) as e:
        load_file(p)
    one_line(e.value, "BTCUSDT-1m-2024-01.csv", "row 3", "field 'close'", "1O2.5")


def test_unparseable_time_counts_comment_and_header_lines(tmp_path: Path) -> None:
    text = (
        "# exported by hand\n"
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01 00:00:00,1,1,1,1,1\n"
        "\n"
        "2024-01-01 00:01:00,1,1,1,1,1\n"
        "2024-13-01 00:02:00,1,1,1,1,1\n"
    )
    p = write(tmp_path / "bad_time.csv", text)
    with pytest.raises(ParseError) as e:
        load_file(p, symbol="X")
    one_line(e.value, "bad_time.csv", "row 6", "field 'timestamp'", "2024-13-01 00:02:00")


def test_wrong_column_count(tmp_path: Path) -> None:
    rows = _kline_rows(1704067200000, 5).splitlines()
    rows[3] = rows[3].rsplit(",", 3)[0]  # a cut-off line 4
    p = write(tmp_path / "BTCUSDT-1m-2024-01.csv", "\n".join(rows) + "\n")
    with pytest.raises(ParseError) as e:
        load_file(p)
    one_line(e.value, "BTCUSDT-1m-2024-01.csv", "row 4", "columns")


GEN_HEAD = "timestamp,open,high,low,close,volume\n"


def _bars(*rows: str) -> str:
    return GEN_HEAD + "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("bad_row", "field", "words"),
    [
        ("2024-01-01 00:02,NaN,11,9,10,1", "open", "NaN"),
        ("2024-01-01 00:02,10,11,9,,1", "close", "missing"),
        ("2024-01-01 00:02,10,11,9,-10,1", "close", "not positive"),
        ("2024-01-01 00:02,0,11,9,10,1", "open", "not positive"),
        ("2024-01-01 00:02,10,9,11,10,1", "high", "< low"),
        ("2024-01-01 00:02,12,11,9,10,1", "open", "outside"),
        ("2024-01-01 00:02,10,11,9,8.99,1", "close", "outside"),
        ("2024-01-01 00:02,10,11,9,10,-1", "volume", "negative"),
    ],
)
def test_bad_values(tmp_path: Path, bad_row: str, field: str, words: str) -> None:
    good = ["2024-01-01 00:00,10,11,9,10,1", "2024-01-01 00:01,10,11,9,10,1"]
    p = write(tmp_path / "bars.csv", _bars(*good, bad_row, "2024-01-01 00:03,10,11,9,10,1"))
    with pytest.raises(ValidationError) as e:
        load_file(p, symbol="X")
    one_line(e.value, "bars.csv", "row 4", f"field {field!r}", words)


def test_newest_first_reversed(tmp_path: Path) -> None:
    rows = [f"2024-01-01 00:0{m},{10 + m},{12 + m},{9 + m},{11 + m},1" for m in range(5)]
    d = load_file(write(tmp_path / "b.csv", _bars(*rows[::-1])), symbol="X")
    assert "file was newest-first; sorted" in d.notes
    assert d.table.column("open").to_pylist() == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert d.interval_ns == MIN


def test_exact_duplicates_dropped_conflicts_rejected(tmp_path: Path) -> None:
    rows = ["2024-01-01 00:00,10,11,9,10,1", "2024-01-01 00:01,10,11,9,10,2"]
    d = load_file(
        write(tmp_path / "dup.csv", _bars(rows[0], rows[1], rows[1], rows[1])), symbol="X"
    )
    assert d.rows == 2 and "dropped 2 exact duplicate rows" in d.notes
    bad = rows[1].replace(",2", ",3")
    with pytest.raises(DuplicateTimestampError) as e:
        load_file(write(tmp_path / "dup2.csv", _bars(rows[0], rows[1], bad)), symbol="X")
    one_line(e.value, "dup2.csv", "row 4", "field 'volume'", "row 3")


def test_time_going_backwards(tmp_path: Path) -> None:
    rows = [
        "2024-01-01 00:00,10,11,9,10,1",
        "2024-01-01 00:02,10,11,9,10,1",
        "2024-01-01 00:01,10,11,9,10,1",
    ]
    with pytest.raises(TimeOrderError) as e:
        load_file(write(tmp_path / "back.csv", _bars(*rows)), symbol="X")
    one_line(e.value, "back.csv", "row 4", "field 'timestamp'", "backwards")


def _trades(*rows: str) -> str:
    return "id,price,qty,quote_qty,time,is_buyer_maker\n" + "\n".join(rows) + "\n"


def test_trade_rules(tmp_path: Path) -> None:
    ok = ["1,10.0,1.0,10.0,1704067200000,true", "2,10.0,2.0,20.0,1704067200000,false"]
    d = load_file(write(tmp_path / "t.csv", _trades(*ok)), symbol="X")
    assert d.rows == 2  # a shared timestamp is normal
    r = load_file(
        write(tmp_path / "t2.csv", _trades(*ok, "3,10.0,1.0,10.0,1704067201000,true")), symbol="X"
    )
    assert r.rows == 3
    rev = load_file(
        write(tmp_path / "t3.csv", _trades("3,10.0,1.0,10.0,1704067201000,true", ok[1], ok[0])),
        symbol="X",
    )
    assert rev.table.column("trade_id").to_pylist() == [1, 2, 3]
    assert "file was newest-first; sorted" in rev.notes
    with pytest.raises(ValidationError) as e:
        load_file(
            write(tmp_path / "t4.csv", _trades(ok[0], "2,10.0,0,0,1704067200000,false")), symbol="X"
        )
    one_line(e.value, "t4.csv", "row 3", "field 'qty'")
    with pytest.raises(ValidationError) as e:
        load_file(
            write(tmp_path / "t5.csv", _trades("1,-1,1,-1,1704067200000,true", ok[1])), symbol="X"
        )
    one_line(e.value, "t5.csv", "row 2", "field 'price'")
    # backwards in time with ascending ids: an error, not something to sort by id
    back = _trades(
        ok[0], "2,10.0,1.0,10.0,1704067201000,true", "3,10.0,1.0,10.0,1704067200500,true"
    )
    with pytest.raises(TimeOrderError) as e:
        load_file(write(tmp_path / "t6.csv", back), symbol="X")
    one_line(e.value, "t6.csv", "row 4", "field 'time'")


def test_gaps_reported_and_ffill(tmp_path: Path) -> None:
    rows = [
        "2024-01-01 00:00,10,11,9,10.5,1",
        "2024-01-01 00:01,10,11,9,10.6,1",
        "2024-01-01 00:04,10,11,9,10.7,1",  # 2 missing
        "2024-01-01 00:05,10,11,9,10.8,1",
        "2024-01-01 00:07,10,11,9,10.9,1",  # 1 missing
    ]
    p = write(tmp_path / "g.csv", _bars(*rows))
    d = load_file(p, symbol="X")
    assert d.rows == 5
    assert "gaps: 3 missing bars in 2 places, largest 2m (interval 1m)" in d.notes
    f = load_file(p, symbol="X", fill="ffill")
    assert f.rows == 8
    assert "ffill: inserted 3 bars (OHLC = previous close, volume 0)" in f.notes
    t = f.table.to_pandas()
    assert (np.diff(t["ts"]) == MIN).all()
    ins = t.iloc[[2, 3, 6]]
    assert (
        ins[["open", "high", "low", "close"]].to_numpy()
        == np.array([[10.6] * 4, [10.6] * 4, [10.8] * 4])
    ).all()
    assert (ins["volume"] == 0).all()
    with pytest.raises(ValueError):
        load_file(p, symbol="X", fill="zero")


def test_crlf_and_bom(tmp_path: Path) -> None:
    text = _kline_rows(1704067200000, 3).replace("\n", "\r\n")
    p = tmp_path / "BTCUSDT-1m-2024-01.csv"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    d = load_file(p)
    assert d.rows == 3 and d.table.column("ts").to_pylist()[0] == 1704067200000 * 10**6


def test_cdd_iso_dates_without_unix(tmp_path: Path) -> None:
    text = (
        "Created on 2024-01-02,https://www.cryptodatadownload.com\n"
        "date,symbol,open,high,low,close,volume_btc,volume\n"
        "2024-01-01 01:00:00,BTC/USD,101,102,100,101.5,2,203\n"
        "2024-01-01 00:00:00,BTC/USD,100,101,99,101,1,100.5\n"
    )
    d = load_file(write(tmp_path / "data.csv", text))
    assert d.layout == "cryptodatadownload" and d.symbols == ["BTCUSD"]
    assert d.table.column("ts").to_pylist() == [utc_ns("2024-01-01"), utc_ns("2024-01-01 01:00")]
    assert d.table.column("volume").to_pylist() == [1.0, 2.0]


def test_zip_with_several_members(tmp_path: Path) -> None:
    z = tmp_path / "two.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.csv", _kline_rows(1704067200000, 2))
        zf.writestr("b.csv", _kline_rows(1704067200000, 2))
    with pytest.raises(UnknownLayoutError) as e:
        load_file(z)
    one_line(e.value, "two.zip", "a.csv, b.csv")


def test_mapping_to_a_missing_column(tmp_path: Path) -> None:
    p = write(tmp_path / "m.csv", GEN_HEAD + "2024-01-01,1,1,1,1,1\n")
    with pytest.raises(UnknownLayoutError) as e:
        load_file(p, symbol="X", mapping={"close": "Last"})
    one_line(e.value, "m.csv", "field 'close'", "'Last'")
    with pytest.raises(DataError) as e:
        load_file(p, symbol="X", mapping={"price": "close"})
    one_line(e.value, "m.csv", "'price'")


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    newest_first=st.booleans(),
    seed=st.integers(0, 2**16),
    unit=st.sampled_from(["s", "ms", "iso"]),
)
def test_generic_roundtrip_matches_pandas(tmp_path_factory, n, newest_first, seed, unit) -> None:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2023-05-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 300, unit="s")
    close = np.round(rng.uniform(10, 20, n), 4)
    opn = np.round(rng.uniform(10, 20, n), 4)
    high = np.maximum(opn, close) + np.round(rng.uniform(0, 1, n), 4)
    low = np.minimum(opn, close) - np.round(rng.uniform(0, 1, n), 4)
    vol = np.round(rng.uniform(0, 5, n), 6)
    if unit == "s":
        tcol = ts.as_unit("s").asi8
    elif unit == "ms":
        tcol = ts.as_unit("ms").asi8
    else:
        tcol = ts.strftime("%Y-%m-%dT%H:%M:%S")
    df = pd.DataFrame(
        {"Date": tcol, "Open": opn, "High": high, "Low": low, "Close": close, "Vol": vol}
    )
    if newest_first:
        df = df.iloc[::-1]
    p = tmp_path_factory.mktemp("rt") / "ETH-USD-5m.csv"
    df.to_csv(p, index=False)
    d = load_file(p)
    assert d.symbols == ["ETHUSD"] and d.rows == n
    assert d.table.column("ts").to_pylist() == ts.as_unit("ns").asi8.tolist()
    for c, ref in (("open", opn), ("high", high), ("low", low), ("close", close), ("volume", vol)):
        assert np.array_equal(d.table.column(c).to_numpy(), ref)
    assert d.interval_ns == (5 * MIN if n > 1 else None)
    assert ("file was newest-first; sorted" in d.notes) == (newest_first and n > 1)


# ---------------------------------------------------------------------------------------
# damaged archives and impossible times: one line naming the file


def _zip_bytes(members: dict[str, str]) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "error", "needle"),
    [
        (
            "BTCUSDT-1m-2024-01.zip",
            b"<?xml version='1.0'?><Error>NoSuchKey</Error>",
            ArchiveError,
            "is not a zip archive",
        ),
        ("BTCUSDT-1m-2024-01.zip", b"PK\x03\x04garbage", ArchiveError, "damaged or cut-off zip"),
        ("BTCUSDT-1m-2024-01.zip", "cut", ArchiveError, "damaged or cut-off zip"),
        ("BTCUSDT-1m-2024-01.csv.gz", "cutgz", ArchiveError, "damaged or cut-off gzip"),
        (
            "BTCUSDT-1m-2024-01.csv.gz",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage",
            ArchiveError,
            "damaged or cut-off gzip",
        ),
        (
            "BTCUSDT-1m-2024-01.csv.gz",
            b"2024-01-01,1,2,0.5,1.5,10\n",
            ArchiveError,
            "is not a gzip archive",
        ),
        ("BTCUSDT-1m-2024-01.zip", "empty", UnknownLayoutError, "zip holds 0 files (nothing)"),
        ("BTCUSDT-1m-2024-01.zip", "two", UnknownLayoutError, "zip holds 2 files (a.csv, b.csv)"),
    ],
)
def test_damaged_archives_are_one_line(
    tmp_path: Path, name: str, content: bytes | str, error: type, needle: str
) -> None:
    rows = _kline_rows(1704067200000, 50)
    if content == "cut":
        content = _zip_bytes({"BTCUSDT-1m-2024-01.csv": rows})[:-30]  # central directory cut
    elif content == "cutgz":
        content = gzip.compress(rows.encode())[:-12]
    elif content == "empty":
        content = _zip_bytes({})
    elif content == "two":
        content = _zip_bytes({"a.csv": rows, "b.csv": rows})
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(error) as e:
        load_file(p)
    one_line(e.value, name, needle)
    assert len(str(e.value)) < 300


def test_zip_with_a_checksum_beside_the_csv_loads_the_csv(tmp_path: Path) -> None:
    rows = _kline_rows(1704067200000, 5)
    p = tmp_path / "BTCUSDT-1m-2024-01.zip"
    p.write_bytes(
        _zip_bytes(
            {
                "BTCUSDT-1m-2024-01.csv": rows,
                "BTCUSDT-1m-2024-01.csv.CHECKSUM": "abc  BTCUSDT-1m-2024-01.csv\n",
                "__MACOSX/._BTCUSDT-1m-2024-01.csv": "x",
            }
        )
    )
    d = load_file(p)
    assert d.rows == 5 and d.symbols == ["BTCUSDT"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # an epoch number of seconds that int64 nanoseconds cannot hold (year 5000)
        (
            "timestamp,open,high,low,close\n1704067200,1,2,0.5,1.5\n95617584000,1,2,0.5,1.5\n",
            "95617584000",
        ),
        # an ISO date after 2262
        (
            "date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n3024-01-02T00:00:00+01:00,1,2,0.5,1.5\n",
            "3024-01-02",
        ),
    ],
)
def test_times_beyond_2262_are_refused_naming_the_row(
    tmp_path: Path, text: str, needle: str
) -> None:
    p = write(tmp_path / "X-1d.csv", text)
    with pytest.raises(ParseError) as e:
        load_file(p, symbol="X")
    one_line(e.value, "X-1d.csv", "row 3", needle, "between 1677 and 2262")


def test_bytes_that_are_not_utf8_name_their_row(tmp_path: Path) -> None:
    text = "symbol,date,open,high,low,close\nAAA,2024-01-01,1,2,0.5,1.5\n"
    p = tmp_path / "latin1.csv"
    p.write_bytes((text + "CAFÉ,2024-01-01,1,2,0.5,1.5\n").encode("latin-1"))
    with pytest.raises(ParseError) as e:
        load_file(p)
    one_line(e.value, "latin1.csv", "row 3", "0xc9 is not UTF-8", "save it as UTF-8")
    # a damaged byte inside a number: the row and the field are named
    q = tmp_path / "damaged.csv"
    q.write_bytes((text + "AAA,2024-01-02,1,2\xc4,0.5,1.5\n").encode("latin-1"))
    with pytest.raises(ParseError) as e:
        load_file(q)
    one_line(e.value, "damaged.csv", "row 3", "field 'high'")


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("2024-01-02,1,inf,0.5,1.5,10", "field 'high': high is infinite"),
        ("2024-01-02,1,2,0.5,1.5,inf", "field 'volume': volume is infinite"),
        ("2024-01-02,1,2,0.5,1.5,-inf", "field 'volume': volume is infinite"),
    ],
)
def test_infinite_values_are_refused(tmp_path: Path, row: str, needle: str) -> None:
    p = write(tmp_path / "X-1d.csv", GEN_HEAD + "2024-01-01,1,2,0.5,1.5,10\n" + row + "\n")
    with pytest.raises(ValidationError) as e:
        load_file(p)
    one_line(e.value, "X-1d.csv", "row 3", needle)


def test_encrypted_zip_member_is_one_line(tmp_path: Path) -> None:
    z = tmp_path / "BTCUSDT-1m-2024-01.zip"
    z.write_bytes(_zip_bytes({"BTCUSDT-1m-2024-01.csv": _kline_rows(1704067200000, 3)}))
    raw = bytearray(z.read_bytes())
    # set the "encrypted" flag in the local header and the central directory entry
    raw[6] |= 1
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 8] |= 1
    z.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError) as e:
        load_file(z)
    text = one_line(e.value, z.name, "member 'BTCUSDT-1m-2024-01.csv' is encrypted", "password")
    assert "damaged" not in text
