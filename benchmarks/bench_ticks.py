"""Tick data: parsing a Binance websocket capture, ingesting it, reading it back and
rebuilding the book.

The bundled USD-M capture (data/sample/ticks, 93,954 messages: 1 REST snapshot, 6,551 depth
updates, 66,089 bookTicker, 21,313 trades → 445,262 book rows, 66,089 quotes, 21,313 trades):

* ``load_file_kinds``: gunzip, JSON, Binance's sequence rules, validation of the three kinds;
  peer: gunzip + ``json.loads`` of every line and nothing else (the floor of any Python parser).
* ``Store.ingest`` end to end into a fresh store.
* ``load_book`` + ``load_quotes`` of the whole capture from the store.
* ``BookArrays.levels``: the top-5 book at each of the 66,089 quote times.

Each figure is the best of a few runs. ``python -m benchmarks.bench_ticks`` or
``python -m benchmarks.run --only ticks``.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CAPTURE = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "sample"
    / "ticks"
    / "binance-usdm-BTCUSDT-20240808-capture.gz"
)
SYMBOL = "BINANCE-USDM:BTCUSDT"


def _best(fn: Callable[[], Any], repeat: int = 3, setup: Callable[[], Any] | None = None) -> float:
    best = np.inf
    for _ in range(repeat):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return float(best)


def _json_only() -> int:
    n = 0
    with gzip.open(CAPTURE, "rb") as f:
        for line in f:
            json.loads(line.split(b" ", 1)[1])
            n += 1
    return n


def run(console: Any) -> list[dict]:
    from quantarena.data.loaders import load_file_kinds
    from quantarena.data.read import load_book, load_quotes
    from quantarena.data.store import Store

    work = Path(tempfile.mkdtemp(prefix="qa-bench-ticks-"))
    store_dir = work / "store"
    rows: list[dict] = []

    def add(case: str, sec: float, n: int) -> None:
        rows.append({"case": case, "seconds": sec, "M rows/s": n / sec / 1e6})
        console.print(rows[-1])

    try:
        loaded = load_file_kinds(CAPTURE)  # warm imports and the page cache
        n_rows = sum(d.rows for d in loaded)
        n_msgs = _json_only()
        add(
            f"load_file_kinds, USD-M capture ({n_msgs:,} messages → {n_rows:,} rows)",
            _best(lambda: load_file_kinds(CAPTURE)),
            n_rows,
        )
        add("peer: gunzip + json.loads of every line (no rows built)", _best(_json_only), n_rows)

        def fresh() -> None:
            shutil.rmtree(store_dir, ignore_errors=True)

        add(
            "Store.ingest of the capture, end to end",
            _best(lambda: Store(store_dir).ingest(CAPTURE), setup=fresh),
            n_rows,
        )
        book = load_book(store_dir, SYMBOL)
        quotes = load_quotes(store_dir, SYMBOL)
        add(
            f"load_book + load_quotes ({len(book):,} + {len(quotes):,} rows)",
            _best(lambda: (load_book(store_dir, SYMBOL), load_quotes(store_dir, SYMBOL))),
            len(book) + len(quotes),
        )
        add(
            f"book.levels(5) at {len(quotes):,} quote times over {len(book):,} book rows",
            _best(lambda: book.levels(5, times=quotes.ts)),
            len(book),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from rich.console import Console

    run(Console())
