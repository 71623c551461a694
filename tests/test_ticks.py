"""Tick data: the quotes and book kinds, the Binance websocket / Tardis / Bybit / generic
loaders, the store with several kinds, the read API and the book rebuild (real captures in
data/sample/ticks, see its README)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from quantarena.cli import app
from quantarena.data.errors import DataError, ParseError, ValidationError
from quantarena.data.kinds import KIND_NAMES, get_kind
from quantarena.data.kinds.base import finish_table
from quantarena.data.loaders import detect_format, load_file, load_file_kinds
from quantarena.data.orderbook import book_levels
from quantarena.data.read import load_book, load_quotes, load_trades
from quantarena.data.store import Store

USDM = "binance-usdm-BTCUSDT-20240808-capture.gz"
SPOT1 = "binance-spot-BTCUSDT-20240808-capture.gz"
SPOT2 = "binance-spot-BTCUSDT-20240809-capture.gz"
BYBIT = "bybit-XRPUSDT-ob500-20241201.ndjson"
USDM_SYM, SPOT_SYM = "BINANCE-USDM:BTCUSDT", "BINANCE:BTCUSDT"


@pytest.fixture(scope="module")
def ticks(sample_dir: Path) -> Path:
    return sample_dir / "ticks"


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def raw_messages(path: Path, *kinds: str) -> list[tuple[int, dict]]:
    """(1-based line, JSON) of a capture's messages, parsed here independently of the loader;
    with ``kinds``, only lines holding one of these texts are parsed."""
    out = []
    with gzip.open(path, "rt") as f:
        for i, line in enumerate(f, 1):
            if not kinds or any(k in line for k in kinds):
                out.append((i, json.loads(line.split(" ", 1)[1])))
    return out


def count_lines(path: Path, text: str) -> int:
    with gzip.open(path, "rt") as f:
        return sum(text in line for line in f)


def payload(msg: dict) -> dict:
    return msg.get("data", msg)


def write_capture(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as f:
        f.write("".join(lines))
    return path


@pytest.fixture(scope="module")
def usdm_loaded(ticks: Path):
    return {d.kind: d for d in load_file_kinds(ticks / USDM)}


@pytest.fixture(scope="module")
def tick_store(tmp_path_factory: pytest.TempPathFactory, ticks: Path, usdm_loaded) -> Path:
    root = tmp_path_factory.mktemp("ticks") / "store"
    Store(root).write(list(usdm_loaded.values()))  # parsed once, in the fixture above
    Store(root).ingest([ticks / SPOT1, ticks / SPOT2])
    return root


# ---------------------------------------------------------------------------- kinds


def test_registry_knows_every_kind() -> None:
    assert KIND_NAMES == ("bars", "trades", "quotes", "book")
    for name in KIND_NAMES:
        k = get_kind(name)
        assert k.name == name and k.key[0] == "ts"
        assert k.schema.names[:2] == ["symbol", "ts"]
    assert get_kind("bars").has_interval and not get_kind("book").has_interval
    with pytest.raises(ValueError, match="unknown data kind 'ticks'"):
        get_kind("ticks")


def _quotes(**cols) -> pa.Table:
    base = {
        "symbol": ["X"] * 3,
        "ts": [1, 2, 3],
        "bid_px": [10.0, 10.0, 10.0],
        "bid_qty": [1.0, 1.0, 1.0],
        "ask_px": [11.0, 11.0, 11.0],
        "ask_qty": [1.0, 1.0, 1.0],
        "update_id": [5, 6, 7],
    }
    base.update(cols)
    return pa.table(base)


def test_quote_rules() -> None:
    kind = get_kind("quotes")
    lines = np.array([2, 3, 4])
    t, notes = finish_table(kind, _quotes(ask_px=[11.0, 10.0, 11.0]), "q.csv", lines)
    assert t.num_rows == 3 and notes == ["1 locked quotes (bid_px == ask_px)"]
    with pytest.raises(ValidationError) as err:
        finish_table(kind, _quotes(ask_px=[11.0, 9.5, 11.0]), "q.csv", lines)
    assert str(err.value).startswith(
        "q.csv, row 3, field 'bid_px': crossed quote: bid_px 10 > ask_px 9.5"
    )
    with pytest.raises(
        ValidationError, match="row 4, field 'update_id': update id 4 comes after 6"
    ):
        finish_table(kind, _quotes(update_id=[5, 6, 4]), "q.csv", lines)
    with pytest.raises(ValidationError, match="row 2, field 'ask_qty': ask_qty -1 is negative"):
        finish_table(kind, _quotes(ask_qty=[-1.0, 1.0, 1.0]), "q.csv", lines)
    with pytest.raises(ValidationError, match="field 'bid_px': bid_px 0 is not positive"):
        finish_table(kind, _quotes(bid_px=[10.0, 0.0, 10.0]), "q.csv", lines)


def _book(rows: list[tuple]) -> pa.Table:
    names = ("ts", "side", "price", "qty", "is_snapshot", "update_id", "prev_update_id")
    cols = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    return pa.table({"symbol": ["X"] * len(rows), **cols})


SNAP = [(1, 1, 100.0, 1.0, True, 10, None), (1, -1, 101.0, 2.0, True, 10, None)]


def test_book_rules() -> None:
    kind = get_kind("book")
    ok = SNAP + [(2, 1, 100.0, 0.0, False, 12, 9), (3, -1, 101.0, 3.0, False, 13, 12)]
    t, notes = finish_table(kind, _book(ok), "b.csv")
    assert t.num_rows == 4 and notes == []
    # a gap: the update after 12 says it follows 11
    gap = SNAP + [(2, 1, 100.0, 0.0, False, 12, 9), (3, -1, 101.0, 3.0, False, 13, 11)]
    with pytest.raises(ValidationError) as err:
        finish_table(kind, _book(gap), "b.csv", np.array([2, 3, 4, 5]))
    msg = str(err.value)
    assert msg.startswith(
        "b.csv, row 5, field 'update_id': sequence gap: update 13 (prev_update_id 11)"
    )
    assert "cannot follow update 12" in msg and "(row 4)" in msg and "\n" not in msg
    # the first update must overlap the snapshot
    with pytest.raises(ValidationError, match="cannot follow snapshot 10"):
        finish_table(kind, _book(SNAP + [(2, 1, 100.0, 0.0, False, 15, 12)]), "b.csv")
    with pytest.raises(ValidationError, match="side 0 is not"):
        finish_table(kind, _book([(1, 0, 100.0, 1.0, True, 10, None)]), "b.csv")
    with pytest.raises(ValidationError, match="qty -2 is negative"):
        finish_table(kind, _book([(1, 1, 100.0, -2.0, False, 10, None)]), "b.csv")
    with pytest.raises(ValidationError, match="holds the bid level 100 twice"):
        finish_table(kind, _book(SNAP + [(1, 1, 100.0, 3.0, True, 10, None)]), "b.csv")
    with pytest.raises(ValidationError, match="update id 9 comes after 10"):
        finish_table(kind, _book(SNAP + [(2, 1, 100.0, 3.0, False, 9, None)]), "b.csv")
    _, notes = finish_table(kind, _book([(2, 1, 100.0, 0.0, False, 12, 11)]), "b.csv")
    assert notes == ["no snapshot: the book rebuilds only after an earlier snapshot"]


def test_book_levels_hand_computed() -> None:
    # snapshot at t=1: bids 100x1, 99x2; asks 101x1, 102x3
    # t=2: bid 100 deleted, ask 101.5x4 added; t=3: a new snapshot replaces everything
    ts = np.array([1, 1, 1, 1, 2, 2, 3, 3])
    side = np.array([1, 1, -1, -1, 1, -1, 1, -1])
    price = np.array([100, 99, 101, 102, 100, 101.5, 90, 91.0])
    qty = np.array([1, 2, 1, 3, 0, 4, 5, 6.0])
    snap = np.array([1, 1, 1, 1, 0, 0, 1, 1], dtype=bool)
    uid = np.array([7, 7, 7, 7, 8, 8, 9, 9])
    lv = book_levels(ts, side, price, qty, snap, uid, depth=2, times=np.array([3, 0, 1, 2]))
    nan = np.nan
    np.testing.assert_array_equal(lv.bid_px, [[90, nan], [nan, nan], [100, 99], [99, nan]])
    np.testing.assert_array_equal(lv.bid_qty, [[5, 0], [0, 0], [1, 2], [2, 0]])
    np.testing.assert_array_equal(lv.ask_px, [[91, nan], [nan, nan], [101, 102], [101, 101.5]])
    np.testing.assert_array_equal(lv.ask_qty, [[6, 0], [0, 0], [1, 3], [1, 4]])
    np.testing.assert_array_equal(lv.rows_applied, [8, 0, 4, 6])
    by_id = book_levels(ts, side, price, qty, snap, uid, depth=2, update_ids=np.array([8]))
    np.testing.assert_array_equal(by_id.ask_px, lv.ask_px[3:4])
    with pytest.raises(ValueError, match="exactly one"):
        book_levels(ts, side, price, qty, snap, uid)


# ---------------------------------------------------------------------------- Binance captures


def test_detects_every_tick_sample(ticks: Path) -> None:
    assert detect_format(ticks / USDM) == "binance-ws"
    assert detect_format(ticks / SPOT2) == "binance-ws"
    assert detect_format(ticks / BYBIT) == "bybit-orderbook"
    t = ticks / "tardis-samples"
    assert (
        detect_format(t / "binance-futures_book_snapshot_25_BTCUSDT.csv") == "tardis-book-snapshot"
    )
    assert (
        detect_format(t / "binance-futures_book_snapshot_5_BTCUSDT.csv") == "tardis-book-snapshot"
    )
    assert (
        detect_format(t / "deribit_incremental_book_L2_BTC-PERPETUAL.csv")
        == "tardis-incremental-book"
    )
    assert detect_format(t / "huobi-dm-swap_quotes_BTC-USD.csv") == "tardis-quotes"
    assert detect_format(t / "bitmex_trades_XBTUSD.csv") == "tardis-trades"


def test_usdm_capture_loads(usdm_loaded, ticks: Path) -> None:
    msgs = raw_messages(ticks / USDM, "lastUpdateId", '"depthUpdate"', '"trade"')
    snaps = [m for _, m in msgs if "lastUpdateId" in m]
    depth = [payload(m) for _, m in msgs if payload(m).get("e") == "depthUpdate"]
    trades = [payload(m) for _, m in msgs if payload(m).get("e") == "trade"]
    n_tickers = count_lines(ticks / USDM, '"e":"bookTicker"')
    assert (len(snaps), len(depth), n_tickers, len(trades)) == (1, 6551, 66089, 21313)
    last_id = snaps[0]["lastUpdateId"]
    stale = [d for d in depth if d["u"] < last_id]

    book, quotes, tr = usdm_loaded["book"], usdm_loaded["quotes"], usdm_loaded["trades"]
    assert book.symbols == quotes.symbols == tr.symbols == [USDM_SYM]
    assert quotes.rows == 66089 and tr.rows == 21313
    snap_rows = book.table.filter(book.table.column("is_snapshot"))
    assert snap_rows.num_rows == len(snaps[0]["bids"]) + len(snaps[0]["asks"]) == 2000
    delta_ids = np.unique(
        book.table.filter(pa.compute.invert(book.table.column("is_snapshot")))
        .column("update_id")
        .to_numpy()
    )
    assert delta_ids.size == len(depth) - len(stale)
    assert f"{USDM_SYM}: dropped {len(stale)} depth updates already in the snapshot" in book.notes
    # the README's clock remark: the receive clock runs about 1.27 s behind the exchange's
    lag = [n for n in book.notes if n.startswith("receive clock minus exchange clock")]
    assert lag and -1.4 < float(lag[0].split("median ")[1].split(" s")[0]) < -1.1
    # exchange time T in ns; recv_ts kept
    q0 = payload(raw_messages(ticks / USDM, '"e":"bookTicker"')[0][1])
    first = quotes.table.slice(0, 1).to_pylist()[0]
    assert first["ts"] == q0["T"] * 1_000_000 and first["bid_px"] == float(q0["b"])
    assert first["update_id"] == q0["u"] and first["recv_ts"] > 0
    # trade side: m (buyer is maker) → the taker sold → -1
    sides = tr.table.column("side").to_numpy()
    assert int((sides == -1).sum()) == sum(t["m"] for t in trades)
    with pytest.raises(DataError, match="holds 3 kinds of data"):
        load_file(ticks / USDM)


def _check_book_matches_tickers(book, quotes) -> int:
    """Rebuilt best bid/ask equal bookTicker at every update id both streams carry."""
    ids = np.unique(book.update_id[~book.is_snapshot])
    shared = np.intersect1d(ids, quotes.update_id)
    lv = book.levels(1, update_ids=shared)
    qi = np.searchsorted(quotes.update_id, shared)
    assert np.all(quotes.update_id[qi] == shared)
    np.testing.assert_array_equal(lv.bid_px[:, 0], quotes.bid_px[qi])
    np.testing.assert_array_equal(lv.bid_qty[:, 0], quotes.bid_qty[qi])
    np.testing.assert_array_equal(lv.ask_px[:, 0], quotes.ask_px[qi])
    np.testing.assert_array_equal(lv.ask_qty[:, 0], quotes.ask_qty[qi])
    assert np.all(lv.bid_px[:, 0] < lv.ask_px[:, 0])
    # the same by time: at each shared update's exchange time, where no later update shares it
    row = np.searchsorted(book.update_id, shared)
    t = book.ts[row]
    last_at_t = book.update_id[np.searchsorted(book.ts, t, side="right") - 1] == shared
    assert last_at_t.mean() > 0.5
    by_time = book.levels(1, times=t[last_at_t])
    np.testing.assert_array_equal(by_time.bid_px[:, 0], quotes.bid_px[qi][last_at_t])
    np.testing.assert_array_equal(by_time.ask_qty[:, 0], quotes.ask_qty[qi][last_at_t])
    return int(shared.size)


def test_rebuilt_book_equals_bookticker(tick_store: Path) -> None:
    n = _check_book_matches_tickers(
        load_book(tick_store, USDM_SYM), load_quotes(tick_store, USDM_SYM)
    )
    assert n == 629
    # spot: both captures, the second continuing the first's book without a snapshot
    n = _check_book_matches_tickers(
        load_book(tick_store, SPOT_SYM), load_quotes(tick_store, SPOT_SYM)
    )
    assert n == 1072


def test_levels_at_times_and_from_snapshot(tick_store: Path) -> None:
    book = load_book(tick_store, USDM_SYM)
    msg_ts = np.unique(book.ts[~book.is_snapshot])
    t = msg_ts[100:110]
    by_time = book.levels(5, times=t)
    # the same book read from the last snapshot before t[0]
    part = load_book(tick_store, USDM_SYM, start=int(t[0]), from_snapshot=True)
    assert part.is_snapshot[0] and part.ts[0] <= t[0]
    again = part.levels(5, times=t)
    np.testing.assert_array_equal(by_time.bid_px, again.bid_px)
    np.testing.assert_array_equal(by_time.ask_qty, again.ask_qty)
    assert np.all(np.diff(by_time.bid_px, axis=1) < 0) and np.all(
        np.diff(by_time.ask_px, axis=1) > 0
    )
    # without from_snapshot the rows start at t[0]: deltas only
    assert not load_book(tick_store, USDM_SYM, start=int(t[0])).is_snapshot.any()
    frame = part.to_frame()
    assert list(frame.columns)[:3] == ["ts", "side", "price"] and len(frame) == len(part)


def test_read_api_ranges(tick_store: Path) -> None:
    q = load_quotes(tick_store, SPOT_SYM, "2024-08-09", None)
    assert len(q) and q.ts.min() >= 1723161600 * 10**9
    tr = load_trades(tick_store, USDM_SYM, None, "2024-08-08T23:58Z")
    assert len(tr) and tr.ts.max() < 1723161480 * 10**9
    assert set(np.unique(tr.side)) <= {-1, 1}


def test_spot_times_and_continuation(tick_store: Path, ticks: Path) -> None:
    msgs = raw_messages(ticks / SPOT1, "@bookTicker")
    first_ticker_line, first_ticker = next(
        (i, payload(m)) for i, m in msgs if "e" not in payload(m) and "u" in payload(m)
    )
    q = load_quotes(tick_store, SPOT_SYM)
    with gzip.open(ticks / SPOT1, "rt") as f:
        recv = int(f.readlines()[first_ticker_line - 1].split(" ", 1)[0])
    row = int(np.flatnonzero(q.update_id == first_ticker["u"])[0])
    assert q.ts[row] == recv == q.recv_ts[row]  # spot bookTicker: receive time
    entry = Store(tick_store).entry("book", SPOT_SYM)
    assert len(entry["sources"]) == 2 and entry["rows"] == len(load_book(tick_store, SPOT_SYM))


def _without_line(src: Path, dst: Path, pick, head: int | None = None) -> tuple[Path, dict]:
    """Copy a capture (its first ``head`` lines) without the line ``pick(messages)`` chooses;
    return its neighbours."""
    with gzip.open(src, "rt") as f:
        lines = f.readlines()[:head]
    msgs = [
        (i, json.loads(ln.split(" ", 1)[1]))
        for i, ln in enumerate(lines, 1)
        if "depthUpdate" in ln or "lastUpdateId" in ln
    ]
    drop = pick(msgs)
    depth = [(i, payload(m)) for i, m in msgs if payload(m).get("e") == "depthUpdate"]
    k = next(j for j, (i, _) in enumerate(depth) if i == drop)
    nxt = depth[k + 1] if k + 1 < len(depth) else None
    info = {"prev": depth[k - 1], "next": nxt, "dropped": drop}
    write_capture(dst, lines[: drop - 1] + lines[drop:])
    return dst, info


def _after_snapshot(n: int):
    def pick(msgs):
        snap = next(i for i, m in msgs if "lastUpdateId" in m)
        return [i for i, m in msgs if i > snap and payload(m).get("e") == "depthUpdate"][n]

    return pick


@pytest.mark.parametrize("name, futures", [(USDM, True), (SPOT1, False)])
def test_removed_line_is_a_one_line_gap_error(
    ticks: Path, tmp_path: Path, name: str, futures: bool
) -> None:
    path, info = _without_line(ticks / name, tmp_path / "cut.gz", _after_snapshot(50), head=6000)
    with pytest.raises(ValidationError) as err:
        load_file_kinds(path)
    msg = str(err.value)
    nxt_line, nxt = info["next"]
    prev_line, prev = info["prev"]
    assert "\n" not in msg and msg.startswith(str(path))
    assert f"row {nxt_line - 1}" in msg  # the line after the removed one moved up by one
    assert (
        f"U={nxt['U']}, u={nxt['u']}" in msg and f"after u={prev['u']} of line {prev_line}" in msg
    )
    assert (f"needs pu={prev['u']}" if futures else f"needs U={prev['u'] + 1}") in msg


def test_store_refuses_a_capture_that_does_not_continue(ticks: Path, tmp_path: Path) -> None:
    # the first spot capture without its last depth update, then the second capture
    def last_depth(msgs):
        return [i for i, m in msgs if payload(m).get("e") == "depthUpdate"][-1]

    cut, _ = _without_line(ticks / SPOT1, tmp_path / "spot1-cut.gz", last_depth)
    store = Store(tmp_path / "store")
    store.ingest(cut)
    before = tree_digest(store.root)
    with pytest.raises(DataError) as err:
        store.ingest(ticks / SPOT2)
    msg = str(err.value)
    assert (
        f"symbol {SPOT_SYM}: the stored book ends at update id" in msg
        and "nothing was written" in msg
    )
    assert tree_digest(store.root) == before
    # the same capture alone is fine: deltas without a snapshot, noted
    alone = Store(tmp_path / "alone")
    book = next(f for f in alone.ingest(ticks / SPOT2).files if f.kind == "book")
    assert book.rows_added == book.rows > 0
    assert "no snapshot: the book rebuilds only after an earlier snapshot" in book.notes
    # ... but the cut first capture cannot go before it either
    before = tree_digest(alone.root)
    with pytest.raises(DataError) as err:
        alone.ingest(cut)
    msg = str(err.value)
    assert f"symbol {SPOT_SYM}: the file ends at update id" in msg
    assert "the stored book's first update" in msg and "nothing was written" in msg
    assert tree_digest(alone.root) == before
    # the whole first capture goes before it, and the book rebuilds across both
    alone.ingest(ticks / SPOT1)
    n = _check_book_matches_tickers(load_book(alone, SPOT_SYM), load_quotes(alone, SPOT_SYM))
    assert n == 1072


def test_ingest_is_idempotent(ticks: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first = store.ingest(ticks / SPOT1)
    assert [f.kind for f in first.files] == ["book", "quotes", "trades"]
    parts = sorted(p.name for p in store.root.rglob("*.parquet"))
    again = store.ingest(ticks / SPOT1)
    assert again.rows_added == 0 and not again.changed and again.files[0].skipped_same_hash
    # the same messages in other bytes: every row already present, no new part
    with gzip.open(ticks / SPOT1, "rb") as f:
        data = f.read()
    other = tmp_path / "recompressed.gz"
    other.write_bytes(gzip.compress(data, compresslevel=1))
    rep = store.ingest(other)
    assert rep.rows_added == 0 and rep.rows_present == first.rows_added
    assert sorted(p.name for p in store.root.rglob("*.parquet")) == parts


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "cut-line"])
def test_damaged_capture_one_line_store_unchanged(ticks: Path, tmp_path: Path, damage: str) -> None:
    store = Store(tmp_path / "store")
    store.ingest(ticks / "tardis-samples" / "huobi-dm-swap_quotes_BTC-USD.csv")
    before = tree_digest(store.root)
    raw = (ticks / SPOT1).read_bytes()
    bad = tmp_path / "bad.gz"
    if damage == "truncated":
        bad.write_bytes(raw[: len(raw) // 2])
    elif damage == "corrupt":
        mid = len(raw) // 2
        bad.write_bytes(raw[:mid] + bytes(b ^ 0xFF for b in raw[mid : mid + 64]) + raw[mid + 64 :])
    else:
        with gzip.open(ticks / SPOT1, "rb") as f:
            text = f.read()
        bad.write_bytes(gzip.compress(text[: len(text) // 3]))
    with pytest.raises(DataError) as err:  # ArchiveError for a damaged gzip, else ParseError
        store.ingest(bad)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(bad))
    if damage in ("truncated", "corrupt"):
        assert "gzip" in msg
    else:
        assert "not a capture line" in msg and "cut short" in msg
    assert tree_digest(store.root) == before


# ---------------------------------------------------------------------------- Tardis, Bybit


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tardis_book_snapshots(ticks: Path) -> None:
    path = ticks / "tardis-samples" / "binance-futures_book_snapshot_25_BTCUSDT.csv"
    rows = _csv_rows(path)
    d = load_file(path)
    assert d.kind == "book" and d.symbols == [USDM_SYM] and d.layout == "tardis-book-snapshot"
    t = d.table
    ts = t.column("ts").to_numpy()
    assert np.unique(ts).size == len({r["timestamp"] for r in rows})
    lv = book_levels(
        ts,
        t.column("side").to_numpy(),
        t.column("price").to_numpy(),
        t.column("qty").to_numpy(),
        t.column("is_snapshot").to_numpy(zero_copy_only=False),
        depth=25,
        times=np.array([int(rows[-1]["timestamp"]) * 1000]),
    )
    last = rows[-1]
    assert lv.bid_px[0].tolist() == [float(last[f"bids[{i}].price"]) for i in range(25)]
    assert lv.ask_qty[0].tolist() == [float(last[f"asks[{i}].amount"]) for i in range(25)]
    assert t.column("recv_ts")[0].as_py() == int(rows[0]["local_timestamp"]) * 1000


def test_tardis_incremental_quotes_trades(ticks: Path) -> None:
    base = ticks / "tardis-samples"
    inc = load_file(base / "deribit_incremental_book_L2_BTC-PERPETUAL.csv")
    rows = _csv_rows(base / "deribit_incremental_book_L2_BTC-PERPETUAL.csv")
    assert inc.symbols == ["DERIBIT:BTC-PERPETUAL"] and inc.rows == len(rows)
    assert int((inc.table.column("side").to_numpy() == -1).sum()) == sum(
        r["side"] == "ask" for r in rows
    )
    q = load_file(base / "huobi-dm-swap_quotes_BTC-USD.csv")
    qr = _csv_rows(base / "huobi-dm-swap_quotes_BTC-USD.csv")
    assert q.kind == "quotes" and q.rows == len(qr)
    assert q.table.column("ask_qty").to_pylist() == [float(r["ask_amount"]) for r in qr]
    tr = load_file(base / "bitmex_trades_XBTUSD.csv")
    tr_rows = _csv_rows(base / "bitmex_trades_XBTUSD.csv")
    assert tr.kind == "trades" and tr.symbols == ["BITMEX:XBTUSD"]
    assert tr.table.column("side").to_pylist() == [1 if r["side"] == "buy" else -1 for r in tr_rows]
    assert tr.table.column("trade_id").null_count == tr.rows  # uuids are not integer ids


def test_bybit_orderbook(ticks: Path, tmp_path: Path) -> None:
    path = ticks / BYBIT
    d = load_file(path)
    assert d.kind == "book" and d.symbols == ["BYBIT:XRPUSDT"]
    # an independent replay of the raw messages: the final book's best 10 levels
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    msgs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    for m in msgs:
        if m["type"] == "snapshot":
            bids.clear()
            asks.clear()
        for book, key in ((bids, "b"), (asks, "a")):
            for p, q in m["data"][key]:
                if float(q) == 0:
                    book.pop(float(p), None)
                else:
                    book[float(p)] = float(q)
    t = d.table
    lv = book_levels(
        t.column("ts").to_numpy(),
        t.column("side").to_numpy(),
        t.column("price").to_numpy(),
        t.column("qty").to_numpy(),
        t.column("is_snapshot").to_numpy(zero_copy_only=False),
        t.column("update_id").to_numpy(),
        depth=10,
        update_ids=np.array([msgs[-1]["data"]["u"]]),
    )
    assert lv.bid_px[0].tolist() == sorted(bids, reverse=True)[:10]
    assert lv.ask_qty[0].tolist() == [asks[p] for p in sorted(asks)[:10]]
    # a missing delta is a gap
    lines = path.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.ndjson"
    cut.write_text("".join(lines[:10] + lines[11:]))
    with pytest.raises(
        ValidationError, match=r"row 11, field 'update_id': sequence gap: update \d+"
    ):
        load_file(cut)


# ---------------------------------------------------------------------------- generic CSVs, CLI


def test_generic_tick_csvs_round_trip(tmp_path: Path) -> None:
    book = tmp_path / "book.csv"
    book.write_text(
        "symbol,ts,side,price,qty,is_snapshot,update_id,prev_update_id\n"
        "X:Y,2024-01-01T00:00:00Z,bid,100,1,true,10,\n"
        "X:Y,2024-01-01T00:00:00Z,ask,101,2,true,10,\n"
        "X:Y,2024-01-01T00:00:01Z,bid,100.5,3,false,11,10\n"
    )
    quotes = tmp_path / "quotes.csv"
    quotes.write_text("symbol,ts,bid_px,bid_qty,ask_px,ask_qty\nX:Y,1704067200000,100,1,101,2\n")
    trades = tmp_path / "trades.csv"
    trades.write_text("ts,price,qty,side,trade_id\n1704067200000000,100,1,sell,7\n")
    assert [detect_format(p) for p in (book, quotes, trades)] == [
        "book-csv",
        "quotes-csv",
        "trades-csv",
    ]
    store = Store(tmp_path / "store")
    store.ingest([book, quotes])
    store.ingest(trades, symbol="X:Y")
    b = load_book(store, "X:Y")
    lv = b.levels(2, times=np.array([1704067201 * 10**9]))
    assert lv.bid_px[0].tolist() == [100.5, 100.0] and lv.ask_px[0, 0] == 101.0
    q = load_quotes(store, "X:Y")
    assert q.ts.tolist() == [1704067200 * 10**9] and q.update_id.tolist() == [-1]
    tr = load_trades(store, "X:Y")
    assert tr.side.tolist() == [-1] and tr.trade_id.tolist() == [7]
    crossed = tmp_path / "crossed.csv"
    crossed.write_text(
        "symbol,ts,bid_px,bid_qty,ask_px,ask_qty\nZ,1,100,1,101,2\nZ,2,102,1,101,2\n"
    )
    with pytest.raises(ValidationError, match="crossed.csv, row 3, field 'bid_px': crossed quote"):
        load_file(crossed)


def test_cli_ingest_capture_and_info(ticks: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    store = tmp_path / "store"
    res = runner.invoke(
        app, ["data", "ingest", str(ticks / SPOT1), "--store", str(store), "--json"]
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert [f["kind"] for f in rep["files"]] == ["book", "quotes", "trades"]
    assert rep["files"][1]["rows_added"] == 28040 and rep["files"][2]["rows_added"] == 9757
    res = runner.invoke(app, ["data", "info", "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "by kind" in res.stdout and "3 datasets" in res.stdout
    kinds = [ln.split("│")[1].strip() for ln in res.stdout.splitlines() if ln.count("│") == 6]
    assert kinds == ["trades", "quotes", "book"]
    assert "28,040" in res.stdout and SPOT_SYM in res.stdout


# ---------------------------------------------------------------------------- properties


def _naive_top(rows: list[tuple], depth: int) -> tuple[list[float], list[float]]:
    """Replay (side, price, qty, starts_snapshot) rows with plain dicts; best bids and asks."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for side, price, qty, starts in rows:
        if starts:
            bids, asks = {}, {}
        book = bids if side > 0 else asks
        if qty > 0:
            book[price] = qty
        else:
            book.pop(price, None)
    return sorted(bids, reverse=True)[:depth], sorted(asks)[:depth]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),  # a snapshot message?
            st.lists(
                st.tuples(
                    st.sampled_from([1, -1]),
                    st.integers(1, 12),
                    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
                ),
                min_size=1,
                max_size=6,
            ),
        ),
        min_size=1,
        max_size=25,
    ),
    st.integers(1, 4),
)
def test_book_levels_match_a_naive_replay(messages, depth: int) -> None:
    ts, side, price, qty, snap = [], [], [], [], []
    for t, (is_snap, levels) in enumerate(messages):
        if is_snap:  # a snapshot names each level once
            levels = list({(s, p): (s, p, q) for s, p, q in levels}.values())
        for s, p, q in levels:
            ts.append(t)
            side.append(s)
            price.append(float(p))
            qty.append(q)
            snap.append(is_snap)
    arr = [np.array(x) for x in (ts, side, price, qty)]
    snap_a = np.array(snap, dtype=bool)
    times = np.arange(-1, len(messages))
    lv = book_levels(*arr, snap_a, depth=depth, times=times)
    for k, t in enumerate(times):
        upto = [
            (s, p, q, sn and (i == 0 or not snap[i - 1] or ts[i - 1] != ts[i]))
            for i, (tt, s, p, q, sn) in enumerate(zip(ts, side, price, qty, snap, strict=True))
            if tt <= t
        ]
        bids, asks = _naive_top(upto, depth)
        assert lv.bid_px[k, : len(bids)].tolist() == bids
        assert lv.ask_px[k, : len(asks)].tolist() == asks
        assert (
            np.isnan(lv.bid_px[k, len(bids) :]).all() and np.isnan(lv.ask_px[k, len(asks) :]).all()
        )


def test_bare_payloads_read_like_envelopes(ticks: Path, tmp_path: Path) -> None:
    """A capture of single streams (payloads without the combined-stream envelope) gives the
    same rows; a capture of aggTrades only gives trades keyed by the aggregate id."""
    with gzip.open(ticks / SPOT1, "rt") as f:
        lines = [next(f) for _ in range(400)]
    bare, agg = [], []
    for ln in lines:
        recv, body = ln.split(" ", 1)
        msg = json.loads(body)
        data = msg.get("data", msg)
        bare.append(f"{recv} {json.dumps(data)}\n")
        if data.get("e") == "trade":
            a = {"e": "aggTrade", "E": data["E"], "s": data["s"], "a": data["t"], "p": data["p"],
                 "q": data["q"], "f": data["t"], "l": data["t"], "T": data["T"], "m": data["m"]}  # fmt: skip
            agg.append(f"{recv} {json.dumps(a)}\n")
    env = {d.kind: d.table for d in load_file_kinds(write_capture(tmp_path / "env.gz", lines))}
    got = {d.kind: d.table for d in load_file_kinds(write_capture(tmp_path / "bare.gz", bare))}
    assert set(env) == set(got) == {"book", "quotes", "trades"}
    for kind in env:
        assert got[kind].equals(env[kind]), kind
    trades = load_file_kinds(write_capture(tmp_path / "agg.gz", agg))
    assert [d.kind for d in trades] == ["trades"]
    assert trades[0].table.equals(env["trades"])
    assert any("trades from aggTrade" in n for n in trades[0].notes)


def test_first_update_must_overlap_the_snapshot(ticks: Path, tmp_path: Path) -> None:
    def first_applied(msgs):
        last_id = next(m["lastUpdateId"] for _, m in msgs if "lastUpdateId" in m)
        return next(
            i for i, m in msgs if payload(m).get("e") == "depthUpdate" and payload(m)["u"] > last_id
        )

    path, info = _without_line(ticks / SPOT1, tmp_path / "cut.gz", first_applied, head=2000)
    with pytest.raises(ValidationError) as err:
        load_file_kinds(path)
    msg = str(err.value)
    nxt = info["next"][1]
    snap_line = 8 - (info["dropped"] < 8)  # the snapshot is line 8 of the original capture
    assert f"U={nxt['U']}, u={nxt['u']}) does not overlap the snapshot of line {snap_line}" in msg
    assert "need U <= " in msg and "\n" not in msg


def test_capture_edge_cases(ticks: Path, tmp_path: Path) -> None:
    with gzip.open(ticks / SPOT1, "rt") as f:
        lines = [next(f) for _ in range(60)]
    kline = '1723161254000000000 {"stream":"btcusdt@kline_1m","data":{"e":"kline","s":"BTCUSDT"}}\n'
    d = load_file_kinds(write_capture(tmp_path / "k.gz", [*lines[:20], kline, *lines[20:]]))
    assert any("ignored 1 kline" in n for n in d[0].notes)
    with pytest.raises(ParseError) as err:
        load_file_kinds(
            write_capture(tmp_path / "bad.gz", [*lines[:30], "1723161254000000000 {oops\n"])
        )
    assert str(err.value).startswith(f"{tmp_path / 'bad.gz'}, row 31: not a capture line")
    missing = '1723161254000000000 {"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}\n'
    with pytest.raises(ParseError, match=r"row 31: message lacks or garbles field 'T'"):
        load_file_kinds(write_capture(tmp_path / "m.gz", [*lines[:30], missing]))
    other = lines[40].replace('"s":"BTCUSDT"', '"s":"ETHUSDT"')
    assert other != lines[40]
    with pytest.raises(DataError, match="--symbol names one symbol but the capture holds 2"):
        load_file_kinds(write_capture(tmp_path / "two.gz", [*lines, other]), symbol="X")
    only_klines = write_capture(tmp_path / "only.gz", [kline] * 3)
    with pytest.raises(DataError, match="no depth, bookTicker or trade messages"):
        load_file_kinds(only_klines, format="binance-ws")
