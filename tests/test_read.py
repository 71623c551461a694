"""Reading the store back: load_bars (ranges, alignment, resampling) and load_trades,
checked against pandas on the real sample files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantarena.data.loaders import load_file
from quantarena.data.read import load_bars, load_trades, timestamp_ns
from quantarena.data.store import MissingDataError, Store

FEATHER = "crypto_5m_binance"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Store:
    st = Store(tmp_path_factory.mktemp("read") / "store")
    st.ingest(
        [
            sample_dir / "btc-perp-20211231-20220201_1m.csv",
            sample_dir / "ADABTC-1m-2021-11-27.csv",
            sample_dir / "ADABTC-1m-2021-11-28.csv",
            sample_dir / "XRPETH-aggTrades-2019-10-11_13.csv",
            sample_dir / "Coinbase_BTCUSD_1h.csv",
            *(sample_dir / FEATHER / f"{s}_BTC-5m.feather" for s in ("ADA", "ETH", "ZEC")),
        ]
    )
    return st


def frame(path: Path) -> pd.DataFrame:
    """The loader's rows as a DataFrame indexed by UTC time (an independent view)."""
    df = load_file(path).table.to_pandas()
    df.index = pd.to_datetime(df.pop("ts"), utc=True)
    return df


def test_timestamp_parsing() -> None:
    ns = 1_640_995_200_000_000_000  # 2022-01-01T00:00Z
    assert timestamp_ns("2022-01-01") == ns
    assert timestamp_ns("2022-01-01T01:00+01:00") == ns
    assert timestamp_ns(pd.Timestamp("2022-01-01", tz="UTC")) == ns
    assert timestamp_ns(datetime(2022, 1, 1, tzinfo=UTC)) == ns
    assert timestamp_ns(ns) == ns and timestamp_ns(None) is None
    with pytest.raises(ValueError, match="as a time"):
        timestamp_ns("yesterday-ish")


def test_single_symbol_equals_file(store: Store, btc_1m_csv: Path) -> None:
    panel = load_bars(store.root, "BTCPERP")
    df = frame(btc_1m_csv)
    assert panel.symbols == ["BTCPERP"] and panel.interval_ns == 60_000_000_000
    assert panel.close.shape == (45031, 1) and panel.mask.all()
    np.testing.assert_array_equal(panel.ts, df.index.as_unit("ns").asi8)
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(panel, col)[:, 0], df[col].to_numpy())
    assert panel.extra == {}  # the FTX csv has no quote volume / trade counts
    assert pd.Timestamp(panel.ts[0], tz="UTC") == pd.Timestamp("2021-12-31 23:01", tz="UTC")


def test_range_is_half_open_on_open_times(store: Store) -> None:
    start, end = "2022-01-10", pd.Timestamp("2022-01-11", tz="UTC")
    panel = load_bars(store, "BTCPERP", start=start, end=end)
    assert panel.n_bars == 1440
    assert panel.ts[0] == timestamp_ns(start) and panel.ts[-1] == end.value - 60_000_000_000
    by_int = load_bars(store, ["BTCPERP"], start=timestamp_ns(start), end=end.value)
    np.testing.assert_array_equal(by_int.close, panel.close)
    with pytest.raises(ValueError, match="after start"):
        load_bars(store, "BTCPERP", start="2022-01-11", end="2022-01-10")


def test_read_across_parts(store: Store, sample_dir: Path) -> None:
    panel = load_bars(
        store, "ADABTC", interval="1m", start="2021-11-27T00:05Z", end="2021-11-28T00:03Z"
    )
    a = frame(sample_dir / "ADABTC-1m-2021-11-27.csv")
    b = frame(sample_dir / "ADABTC-1m-2021-11-28.csv")
    want = pd.concat([a.iloc[5:], b.iloc[:3]])
    np.testing.assert_array_equal(panel.close[:, 0], want["close"].to_numpy())
    np.testing.assert_array_equal(panel.extra["trades"][:, 0], want["trades"].to_numpy())
    np.testing.assert_array_equal(
        panel.extra["quote_volume"][:, 0], want["quote_volume"].to_numpy()
    )


def test_alignment_matches_pandas_reindex(store: Store, sample_dir: Path) -> None:
    syms = ["ADABTC", "ETHBTC", "ZECBTC"]  # ADA has 40 missing bars, ZEC 2
    panel = load_bars(store, syms, interval="5m")
    frames = {s: frame(sample_dir / FEATHER / f"{s[:-3]}_BTC-5m.feather") for s in syms}
    union = frames[syms[0]].index
    for s in syms[1:]:
        union = union.union(frames[s].index)
    np.testing.assert_array_equal(panel.ts, union.as_unit("ns").asi8)
    for j, s in enumerate(syms):
        df = frames[s].reindex(union)
        present = df["close"].notna().to_numpy()
        np.testing.assert_array_equal(panel.mask[:, j], present)
        carried = df["close"].ffill().to_numpy()
        for col in ("open", "high", "low", "close"):
            want = np.where(present, df[col].to_numpy(), carried)
            np.testing.assert_array_equal(panel.__dict__[col][:, j], want)
        np.testing.assert_array_equal(panel.volume[:, j], df["volume"].fillna(0.0).to_numpy())
    assert (~panel.mask[:, 0]).sum() == len(union) - 5720


def test_resampled_matches_pandas(store: Store, btc_1m_csv: Path) -> None:
    panel = load_bars(store, "BTCPERP", interval="1h", start="2022-01-03", end="2022-01-20T05:30Z")
    df = frame(btc_1m_csv).loc["2022-01-03":"2022-01-20 05:59"]
    want = (
        df.resample("1h", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    # bars opening in [start, end): the 05:00 bucket opens before 05:30 → included whole
    assert pd.Timestamp(panel.ts[-1], tz="UTC") == pd.Timestamp("2022-01-20 05:00", tz="UTC")
    np.testing.assert_array_equal(panel.ts, want.index.as_unit("ns").asi8)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(panel, col)[:, 0], want[col].to_numpy())
    np.testing.assert_allclose(panel.volume[:, 0], want["volume"].to_numpy(), rtol=1e-12)
    assert panel.interval_ns == 3_600_000_000_000


def test_resample_start_inside_a_bucket(store: Store) -> None:
    # start 10:30 → the first whole 1h bucket opening at or after it is 11:00
    panel = load_bars(
        store, "BTCPERP", interval="1h", start="2022-01-05T10:30Z", end="2022-01-05T14:00Z"
    )
    hours = [pd.Timestamp(t, tz="UTC").hour for t in panel.ts]
    assert hours == [11, 12, 13]
    full = load_bars(
        store, "BTCPERP", interval="1m", start="2022-01-05T11:00Z", end="2022-01-05T12:00Z"
    )
    assert panel.high[0, 0] == full.high.max() and panel.open[0, 0] == full.open[0, 0]


def test_interval_errors(store: Store) -> None:
    with pytest.raises(ValueError, match="cannot make 1m bars of ETHBTC: the store holds 5m"):
        load_bars(store, "ETHBTC", interval="1m")
    with pytest.raises(ValueError, match="7m"):
        load_bars(store, "ETHBTC", interval="7m")
    with pytest.raises(ValueError, match="different intervals"):
        load_bars(store, ["ETHBTC", "BTCPERP"])
    with pytest.raises(ValueError, match="several intervals"):
        load_bars(store, "ADABTC")
    mixed = load_bars(store, ["ETHBTC", "BTCPERP", "BTCUSD"], interval="1d")
    assert mixed.interval_ns == 86_400_000_000_000 and mixed.n_assets == 3


def test_missing_symbol_and_store(store: Store, tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as err:
        load_bars(store, ["BTCPERP", "DOGEUSDT"])
    assert "DOGEUSDT" in str(err.value) and "BTCPERP" in str(err.value)
    assert isinstance(err.value, KeyError)
    with pytest.raises(Exception, match="no store here"):
        load_bars(tmp_path / "nothing", "BTCPERP")


def test_load_trades(store: Store, sample_dir: Path) -> None:
    df = load_file(sample_dir / "XRPETH-aggTrades-2019-10-11_13.csv").table.to_pandas()
    tr = load_trades(store, "XRPETH")
    assert len(tr) == 12477 and tr.symbol == "XRPETH"
    np.testing.assert_array_equal(tr.ts, df["ts"].to_numpy())
    np.testing.assert_array_equal(tr.price, df["price"].to_numpy())
    np.testing.assert_array_equal(tr.trade_id, df["trade_id"].to_numpy())
    assert set(np.unique(tr.side)) == {-1, 1}
    # the raw file's first row: id 13519807, price 0.00141342, qty 23, buyer is maker → sold
    assert (tr.trade_id[0], tr.price[0], tr.qty[0], tr.side[0]) == (13519807, 0.00141342, 23.0, -1)
    sub = load_trades(store, "XRPETH", start="2019-10-12", end="2019-10-13")
    day = (df["ts"] >= timestamp_ns("2019-10-12")) & (df["ts"] < timestamp_ns("2019-10-13"))
    assert len(sub) == int(day.sum()) > 0
    np.testing.assert_array_equal(sub.qty, df.loc[day, "qty"].to_numpy())


def test_all_symbols_default(store: Store) -> None:
    panel = load_bars(store, interval="1d")
    assert panel.symbols == sorted(panel.symbols)
    assert "XRPETH" not in panel.symbols and "BTCUSD" in panel.symbols


def test_multi_row_group_multi_part_store(tmp_path: Path) -> None:
    """Parts with several row groups (chunks), appended ranges and a late-starting symbol
    read back equal to the generated arrays."""
    import pyarrow.parquet as pq

    from quantarena.data.schema import LoadedData
    from quantarena.data.synthetic import simulate_market

    m = simulate_market(3, 180_000, "1m", seed=21)
    table = m.to_table()
    st = Store(tmp_path / "s")
    first = table.filter(pa_less(table, m.ts[140_000]))  # > 1 row group of 131,072
    st.write(LoadedData("bars", first, "synthetic:a", "synthetic", 60_000_000_000))
    st.write(LoadedData("bars", table, "synthetic:b", "synthetic", 60_000_000_000))  # appends
    entry = st.entry("bars", "SYN001", 60_000_000_000)
    assert len(entry["parts"]) == 2
    assert pq.ParquetFile(st.root / entry["parts"][0]["file"]).num_row_groups > 1
    panel = load_bars(st)
    assert panel.mask.all()
    np.testing.assert_array_equal(panel.close, m.close.T)
    np.testing.assert_array_equal(panel.high, m.high.T)
    np.testing.assert_array_equal(panel.volume, m.volume.T)
    sub = load_bars(st, ["SYN002", "SYN000"], start=int(m.ts[100_000]), end=int(m.ts[150_000]))
    np.testing.assert_array_equal(sub.close, m.close[[2, 0], 100_000:150_000].T)
    # a symbol that starts later: NaN prices before its first bar, masked, volume 0
    late = simulate_market(1, 1_000, "1m", start=int(m.ts[-500]), seed=3).to_table()
    late = late.set_column(0, "symbol", pa_strings(["LATE"] * late.num_rows))
    st.write(LoadedData("bars", late, "synthetic:c", "synthetic", 60_000_000_000))
    panel = load_bars(st, ["SYN000", "LATE"])
    assert panel.n_bars == 180_000 + 500
    j = panel.symbols.index("LATE")
    assert np.isnan(panel.close[: 180_000 - 500, j]).all() and not panel.mask[:-1000, j].any()
    assert (panel.volume[~panel.mask] == 0).all()
    # SYN000 has no bars after its last: its close is carried forward
    tail = panel.close[180_000:, 0]
    assert (tail == m.close[0, -1]).all() and not panel.mask[180_000:, 0].any()


def pa_less(table, value):
    import pyarrow.compute as pc

    return pc.less(table.column("ts"), value)


def pa_strings(values):
    import pyarrow as pa

    return pa.array(values, pa.string())


def test_stack_into_matches_concatenation() -> None:
    from quantarena.data.read import _stack_into

    rng = np.random.default_rng(0)
    n = 50_000
    cols, want = [], []
    for _ in range(4):
        x = rng.random(n)
        cuts = np.sort(rng.choice(np.arange(1, n), size=rng.integers(0, 6), replace=False))
        cols.append(np.split(x, cuts))
        want.append(x)
    out = np.empty((n, 4))
    _stack_into(cols, out)
    np.testing.assert_array_equal(out, np.stack(want, axis=1))


def test_a_range_without_bars_names_the_span_the_store_holds(store: Store) -> None:
    from quantarena.data.errors import EmptyRangeError

    with pytest.raises(EmptyRangeError) as e:
        load_bars(store, "BTCUSD", "2023-01-01", "2023-02-01")
    assert str(e.value).startswith(
        "no bars of BTCUSD between 2023-01-01T00:00Z and 2023-02-01T00:00Z; "
        "the store holds 2017-07-01T11:00Z → 2019-10-17T09:00Z — "
    )
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)
    with pytest.raises(EmptyRangeError, match="no bars of ADABTC, ETHBTC before 2010-01-01T00:00Z"):
        load_bars(store, ["ADABTC", "ETHBTC"], None, "2010-01-01", "5m")
    with pytest.raises(EmptyRangeError, match=r"from 2030-01-01T12:30Z on; the store holds"):
        load_bars(store, "BTCPERP", "2030-01-01T12:30")


def test_load_bars_any_resamples_a_file_like_pandas(btc_1m_csv: Path) -> None:
    from quantarena.engine.api import load_bars_any

    panel = load_bars_any(btc_1m_csv, None, "2022-01-03", "2022-01-05", "15m")
    df = frame(btc_1m_csv).loc["2022-01-03":"2022-01-04"]
    want = df.resample("15min").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    assert panel.interval_ns == 15 * 60 * 10**9 and panel.n_bars == len(want) == 192
    np.testing.assert_array_equal(panel.ts, want.index.as_unit("ns").asi8)
    for k in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(panel, k)[:, 0], want[k].to_numpy())
    np.testing.assert_allclose(panel.volume[:, 0], want["volume"].to_numpy(), rtol=1e-12)
