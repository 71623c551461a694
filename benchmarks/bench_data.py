"""The data layer: ingest throughput, load time and the synthetic generator.

* Ingest: a generated 1,000,000-row Binance spot kline CSV (no header, ms timestamps)
  through ``Store.ingest`` end to end (hash, parse, validate, dedupe, Parquet write,
  catalog) into a fresh store; ``load_file`` alone for reference. Peer: ``pandas.read_csv``
  + ``DataFrame.to_parquet`` of the same file.
* Load: a year of 1-minute bars for 10 symbols (5,256,000 rows, synthetic, written through
  the store) via ``load_bars`` into an aligned (T, A) panel; also one month of it (row-group
  pruning). Peer: ``pandas.read_parquet`` of the same part files (long format, no alignment).
* Synthetic: ``simulate_market`` of 10 symbols x 1,000,000 one-minute bars.

Each figure is the best of a few runs. ``python -m benchmarks.bench_data`` or
``python -m benchmarks.run --only data``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

N_KLINES = 1_000_000
N_SYMBOLS = 10
N_YEAR = 365 * 24 * 60


def _best(fn: Callable[[], Any], repeat: int = 3, setup: Callable[[], Any] | None = None) -> float:
    best = np.inf
    for _ in range(repeat):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return float(best)


def write_kline_csv(path: Path, n: int = N_KLINES, seed: int = 0) -> None:
    """A Binance spot kline dump: 12 columns, no header, open/close times in ms."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from quantarena.data.synthetic import simulate_market

    m = simulate_market(1, n, "1m", start="2023-01-01", seed=seed, start_price=30_000.0)
    rnd = np.random.default_rng(seed)
    o, h, lo, c = (np.round(x[0], 2) for x in (m.open, m.high, m.low, m.close))
    h, lo = np.maximum(h, np.maximum(o, c)), np.minimum(lo, np.minimum(o, c))
    vol = np.round(m.volume[0] / 50, 5)
    open_ms = m.ts // 1_000_000
    buy = np.round(vol * rnd.random(n), 5)
    table = pa.table(
        {
            "open_time": open_ms,
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": vol,
            "close_time": open_ms + 59_999,
            "quote_volume": np.round(vol * c, 4),
            "count": rnd.integers(1, 2_000, n),
            "taker_buy_volume": buy,
            "taker_buy_quote_volume": np.round(buy * c, 4),
            "ignore": np.zeros(n, dtype=np.int64),
        }
    )
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False))


def _ingest_rows(console: Any, work: Path) -> list[dict]:
    import pandas as pd

    from quantarena.data.loaders import load_file
    from quantarena.data.store import Store

    csv = work / "BTCUSDT-1m-2023-01.csv"
    write_kline_csv(csv)
    mb = csv.stat().st_size / 1e6
    store_dir = work / "ingest-store"

    def fresh() -> None:
        shutil.rmtree(store_dir, ignore_errors=True)

    rows = []
    load_file(csv)  # warm the page cache and imports
    sec = _best(lambda: Store(store_dir).ingest(csv), setup=fresh)
    rows.append(
        {"case": f"Store.ingest, Binance kline CSV {N_KLINES:,} rows ({mb:.0f} MB), end to end",
         "seconds": sec, "M rows/s": N_KLINES / sec / 1e6}
    )  # fmt: skip
    console.print(rows[-1])
    sec = _best(lambda: load_file(csv))
    rows.append(
        {"case": "  of which load_file (parse + validate)", "seconds": sec,
         "M rows/s": N_KLINES / sec / 1e6}
    )  # fmt: skip
    console.print(rows[-1])
    names = ["open_time", "open", "high", "low", "close", "volume", "close_time",
             "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore"]  # fmt: skip
    out = work / "pandas.parquet"

    def peer() -> None:
        pd.read_csv(csv, header=None, names=names).to_parquet(out)

    sec = _best(peer)
    rows.append(
        {"case": "peer: pandas.read_csv + DataFrame.to_parquet (no validation)", "seconds": sec,
         "M rows/s": N_KLINES / sec / 1e6}
    )  # fmt: skip
    console.print(rows[-1])
    return rows


def _load_rows(console: Any, work: Path) -> list[dict]:
    import pandas as pd

    from quantarena.data.read import load_bars
    from quantarena.data.schema import LoadedData
    from quantarena.data.store import Store
    from quantarena.data.synthetic import simulate_market, synthetic_bars

    rows = []
    n = N_SYMBOLS * 1_000_000
    simulate_market(N_SYMBOLS, 10_000, seed=1)  # warm up
    sec = _best(lambda: simulate_market(N_SYMBOLS, 1_000_000, seed=1))
    rows.append(
        {"case": f"simulate_market {N_SYMBOLS} symbols x 1,000,000 1m bars", "seconds": sec,
         "M rows/s": n / sec / 1e6}
    )  # fmt: skip
    console.print(rows[-1])

    store = Store(work / "year-store")
    table = synthetic_bars(N_SYMBOLS, N_YEAR, "1m", start="2023-01-01", seed=2)
    t = time.perf_counter()
    store.write(LoadedData("bars", table, "synthetic:bench", "synthetic", 60_000_000_000))
    sec_w = time.perf_counter() - t
    rows_total = N_SYMBOLS * N_YEAR
    rows.append(
        {"case": f"Store.write of a year of 1m bars x {N_SYMBOLS} symbols ({rows_total:,} rows)",
         "seconds": sec_w, "M rows/s": rows_total / sec_w / 1e6}
    )  # fmt: skip
    console.print(rows[-1])
    del table
    load_bars(store)  # warm the page cache
    sec = _best(lambda: load_bars(store))
    rows.append(
        {"case": f"load_bars: a year of 1m bars x {N_SYMBOLS} symbols → aligned (T, A) panel",
         "seconds": sec, "M rows/s": rows_total / sec / 1e6}
    )  # fmt: skip
    console.print(rows[-1])
    sec = _best(lambda: load_bars(store, start="2023-06-01", end="2023-07-01"), repeat=5)
    month = N_SYMBOLS * 30 * 1440
    rows.append(
        {"case": "load_bars: one month of it (row-group pruning)", "seconds": sec,
         "M rows/s": month / sec / 1e6}
    )  # fmt: skip
    console.print(rows[-1])
    files = sorted(store.root.glob("bars/*/*/*.parquet"))

    def peer() -> None:
        pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)

    sec = _best(peer)
    rows.append(
        {"case": "peer: pandas.read_parquet of the same files (long format)", "seconds": sec,
         "M rows/s": rows_total / sec / 1e6}
    )  # fmt: skip
    console.print(rows[-1])
    return rows


def run(console: Any) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="qa-bench-data-"))
    try:
        return _ingest_rows(console, work) + _load_rows(console, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
