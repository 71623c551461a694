"""Binance websocket captures: one message a line, ``<receive ns> <raw JSON>``.

A capture (usually ``.gz``) holds combined-stream envelopes ``{"stream": "btcusdt@depth@0ms",
"data": {...}}`` (or bare stream payloads) of ``depthUpdate``, ``bookTicker``, ``trade`` and
``aggTrade`` events, and REST depth snapshots ``{"lastUpdateId": ..., "bids": [[price, qty],
...], "asks": [...]}``. USD-M futures and spot are both read; the venue is told from the
content (futures depth updates carry ``pu``, futures bookTicker and trade events carry ``T``
and ``X``/``e``). One capture gives up to three kinds: ``book``, ``quotes`` and ``trades``.

**Book, by Binance's sequence rules.** Updates received before the snapshot whose final id
``u`` is already in it are dropped (futures: ``u < lastUpdateId``; spot: ``u <= lastUpdateId``).
The first update applied must overlap the snapshot (futures: ``U <= lastUpdateId <= u``; spot:
``U <= lastUpdateId + 1 <= u``) and each later one must follow the previous (futures:
``pu`` = previous ``u``; spot: ``U`` = previous ``u + 1``). A break is refused with one line
naming the file, the line and the update ids. A capture without a snapshot (one that continues
another) is stored as deltas; the store checks it continues the stored book. A second snapshot
while the update chain is unbroken is skipped (noted).

**Times.** ``ts`` is exchange time in ms → ns: USD-M uses the transaction time ``T`` (depth,
bookTicker, trades, snapshot); spot depth uses the event time ``E`` and trades ``T``; spot
``bookTicker`` carries no time, so its ``ts`` is the local receive time, and the spot REST
snapshot's ``ts`` is the ``E`` of the first update applied on it (the book it shows existed no
later than that; the receive time otherwise). ``recv_ts`` keeps the receive time of every
quote and book row. The receive clock of a capture may run off the exchange's: compare times
of one kind with each other, and across kinds by update id where possible.

**Symbols** are ``BINANCE:<SYMBOL>`` (spot) and ``BINANCE-USDM:<SYMBOL>`` (USD-M futures).
Trades: ``side`` -1 when ``m`` (buyer is maker: the taker sold), else +1; ``trade_id`` = ``t``
(``a`` for aggTrade). Futures trades of type ``X`` other than ``MARKET`` (insurance fund, ADL)
are dropped and counted in the notes; when a capture holds both ``trade`` and ``aggTrade`` for
a symbol, the aggTrades are ignored (they repeat the same prints).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from quantarena.data.errors import DataError, EmptyFileError, ParseError, ValidationError
from quantarena.data.loaders.source import Source
from quantarena.data.loaders.ticks_common import floats, loaded, venue_symbol
from quantarena.data.schema import LoadedData

LAYOUT = "binance-ws"
MS = 1_000_000


def looks_like_capture(lines: list[str]) -> bool:
    """True when the first non-empty lines are ``<integer> {JSON`` with Binance fields."""
    body = [ln for ln in lines if ln.strip()][:5]
    if not body:
        return False
    for ln in body:
        head, _, rest = ln.strip().partition(" ")
        if not head.isdigit() or not rest.startswith("{"):
            return False
    text = " ".join(body)
    return any(k in text for k in ('"stream"', '"lastUpdateId"', '"e":"', '"e": "'))


@dataclass
class _Depth:
    line: int
    recv: int
    ts: int
    first: int  # U
    last: int  # u
    prev: int | None  # pu (futures)
    bids: list
    asks: list


@dataclass
class _Snapshot:
    line: int
    recv: int
    ts: int | None
    last: int
    bids: list
    asks: list


@dataclass
class _Symbol:
    depth: list[_Depth] = field(default_factory=list)
    snaps: list[_Snapshot] = field(default_factory=list)
    order: list[Any] = field(default_factory=list)  # depth and snapshots in file order
    quotes: dict[str, list] = field(default_factory=lambda: {k: [] for k in _QUOTE_KEYS})
    trades: dict[str, list] = field(default_factory=lambda: {k: [] for k in _TRADE_KEYS})
    aggs: dict[str, list] = field(default_factory=lambda: {k: [] for k in _TRADE_KEYS})
    not_market: int = 0


_QUOTE_KEYS = ("line", "ts", "bid_px", "bid_qty", "ask_px", "ask_qty", "update_id", "recv_ts")
_TRADE_KEYS = ("line", "ts", "price", "qty", "side", "trade_id")


def load_binance_ws(src: Source, symbol: str | None = None) -> list[LoadedData]:
    """Parse a capture into book, quotes and trades (see the module doc)."""
    path = src.display
    data = src.buffer.to_pybytes()
    per: dict[str, _Symbol] = {}
    bare_snaps: list[_Snapshot] = []
    futures = False
    ignored: Counter[str] = Counter()
    lineno = 0
    for raw in data.split(b"\n"):
        lineno += 1
        raw = raw.strip()
        if not raw:
            continue
        head, _, body = raw.partition(b" ")
        try:
            recv = int(head)
            msg = json.loads(body)
        except ValueError:
            raise ParseError(
                "not a capture line `<receive ns> <JSON>`"
                + (" (the line is cut short)" if body and not body.rstrip().endswith(b"}") else ""),
                path=path,
                row=lineno,
                hint="the file is damaged or truncated: capture it again or drop the line",
            ) from None
        if not isinstance(msg, dict):
            ignored["non-object"] += 1
            continue
        try:
            if "lastUpdateId" in msg:
                ts = msg.get("T") or msg.get("E")
                if "E" in msg or "T" in msg:
                    futures = True
                bare_snaps.append(
                    _Snapshot(
                        lineno,
                        recv,
                        int(ts) * MS if ts else None,
                        int(msg["lastUpdateId"]),
                        msg["bids"],
                        msg["asks"],
                    )
                )
                continue
            d = msg.get("data", msg) if "stream" in msg else msg
            if not isinstance(d, dict):
                ignored["non-object"] += 1
                continue
            ev = d.get("e")
            if ev is None and {"u", "b", "a", "B", "A"} <= d.keys():
                ev = "bookTicker"
            if ev not in ("depthUpdate", "bookTicker", "trade", "aggTrade"):
                ignored[str(ev or msg.get("stream") or "unknown")] += 1
                continue
            name = str(d["s"]).upper()
            s = per.get(name) or per.setdefault(name, _Symbol())
            if ev == "depthUpdate":
                if "pu" in d:
                    futures = True
                t = d.get("T") or d["E"]
                dep = _Depth(
                    lineno,
                    recv,
                    int(t) * MS,
                    int(d["U"]),
                    int(d["u"]),
                    int(d["pu"]) if "pu" in d else None,
                    d["b"],
                    d["a"],
                )
                s.depth.append(dep)
                s.order.append(dep)
            elif ev == "bookTicker":
                t = d.get("T")
                if t is not None:
                    futures = True
                q = s.quotes
                q["line"].append(lineno)
                q["ts"].append(int(t) * MS if t is not None else recv)
                q["bid_px"].append(d["b"])
                q["bid_qty"].append(d["B"])
                q["ask_px"].append(d["a"])
                q["ask_qty"].append(d["A"])
                q["update_id"].append(int(d["u"]))
                q["recv_ts"].append(recv)
            else:
                if "X" in d:
                    futures = True
                    if d["X"] != "MARKET":
                        s.not_market += 1
                        continue
                tr = s.trades if ev == "trade" else s.aggs
                tr["line"].append(lineno)
                tr["ts"].append(int(d["T"]) * MS)
                tr["price"].append(d["p"])
                tr["qty"].append(d["q"])
                tr["side"].append(-1 if d["m"] else 1)
                tr["trade_id"].append(int(d["t"] if ev == "trade" else d["a"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParseError(
                f"message lacks or garbles field {exc}".replace("\n", " "),
                path=path,
                row=lineno,
                hint="the capture is damaged: capture it again or drop the line",
            ) from None
    if not per and not bare_snaps:
        seen = ", ".join(f"{n} {k}" for k, n in sorted(ignored.items())) or "nothing"
        raise EmptyFileError(
            f"no depth, bookTicker or trade messages (found: {seen})",
            path=path,
            hint="check the capture's streams and that it is complete",
        )
    # REST snapshots carry no symbol: they belong to the one symbol with depth updates
    if bare_snaps:
        depth_syms = [k for k, v in per.items() if v.depth] or list(per)
        if len(depth_syms) != 1:
            raise DataError(
                f"a REST snapshot (line {bare_snaps[0].line}) carries no symbol and the capture "
                f"has depth updates of {len(depth_syms)} symbols ({', '.join(depth_syms) or 'none'})",
                path=path,
                row=bare_snaps[0].line,
                hint="capture one symbol's depth per file",
            )
        s = per[depth_syms[0]]
        s.snaps = bare_snaps
        s.order = sorted(s.order + bare_snaps, key=lambda m: m.line)
    if symbol and len(per) > 1:
        raise DataError(
            f"--symbol names one symbol but the capture holds {len(per)} ({', '.join(sorted(per))})",
            path=path,
            field="symbol",
            hint="leave --symbol out: each symbol is named from its stream",
        )
    venue = "BINANCE-USDM" if futures else "BINANCE"
    notes = [
        "USD-M futures: exchange times T"
        if futures
        else "spot: depth E, trades T, bookTicker receive time"
    ]
    lags = [m.recv - m.ts for v in per.values() for m in v.depth]
    if lags:
        notes.append(
            f"receive clock minus exchange clock: median {np.median(lags) / 1e9:+.3f} s "
            f"over {len(lags):,} depth updates"
        )
    if ignored:
        notes.append("ignored " + ", ".join(f"{n} {k}" for k, n in sorted(ignored.items())))
    book_cols: dict[str, list] = {k: [] for k in _MSG_KEYS}
    quote_cols: dict[str, list] = {k: [] for k in ("symbol", *_QUOTE_KEYS)}
    trade_cols: dict[str, list] = {k: [] for k in ("symbol", *_TRADE_KEYS)}
    book_notes: list[str] = []
    trade_notes: list[str] = []
    for raw_sym, s in sorted(per.items()):
        sym = symbol or venue_symbol(venue, raw_sym)
        if s.order:
            book_notes += _book_rows(s, sym, futures, path, book_cols)
        n = len(s.quotes["ts"])
        quote_cols["symbol"] += [sym] * n
        for k in _QUOTE_KEYS:
            quote_cols[k] += s.quotes[k]
        tr = s.trades
        if s.aggs["ts"]:
            if tr["ts"]:
                trade_notes.append(f"{sym}: ignored {len(s.aggs['ts'])} aggTrades (trades present)")
            else:
                tr = s.aggs
                trade_notes.append(f"{sym}: trades from aggTrade (trade_id = aggregate id)")
        if s.not_market:
            trade_notes.append(
                f"{sym}: dropped {s.not_market} non-MARKET trades (insurance fund, ADL)"
            )
        trade_cols["symbol"] += [sym] * len(tr["ts"])
        for k in _TRADE_KEYS:
            trade_cols[k] += tr[k]
    out: list[LoadedData] = []
    if book_cols["m_ts"]:
        cols, lines = _book_columns(book_cols)
        out.append(loaded("book", cols, lines, path=path, layout=LAYOUT, notes=notes + book_notes))
    if quote_cols["ts"]:
        lines = np.asarray(quote_cols.pop("line"), dtype=np.int64)
        for k in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
            quote_cols[k] = floats(quote_cols[k])
        out.append(loaded("quotes", quote_cols, lines, path=path, layout=LAYOUT, notes=list(notes)))
    if trade_cols["ts"]:
        lines = np.asarray(trade_cols.pop("line"), dtype=np.int64)
        trade_cols["price"] = floats(trade_cols["price"])
        trade_cols["qty"] = floats(trade_cols["qty"])
        out.append(
            loaded("trades", trade_cols, lines, path=path, layout=LAYOUT, notes=notes + trade_notes)
        )
    if not out:
        raise EmptyFileError(
            "no depth, bookTicker or trade messages", path=path, hint="check the capture's streams"
        )
    return out


def _stale(d: _Depth, last_id: int, futures: bool) -> bool:
    """The update is already in a snapshot with ``lastUpdateId`` = ``last_id``."""
    return d.last < last_id if futures else d.last <= last_id


def _overlaps(d: _Depth, last_id: int, futures: bool) -> bool:
    """The first update applied on a snapshot must contain ``last_id`` (spot: ``+1``)."""
    x = last_id if futures else last_id + 1
    return d.first <= x <= d.last


def _follows(d: _Depth, prev: _Depth, futures: bool) -> bool:
    return d.prev == prev.last if futures else d.first == prev.last + 1


def _ids(d: _Depth, futures: bool) -> str:
    return f"U={d.first}, u={d.last}" + (f", pu={d.prev}" if futures else "")


def _gap(path: str, d: _Depth, why: str) -> ValidationError:
    return ValidationError(
        f"book sequence gap: depthUpdate ({why}): an update is missing",
        path=path,
        row=d.line,
        field="U",
        hint="use a complete capture (or split it at the gap and start the second part with a "
        "new REST snapshot)",
    )


def _book_rows(s: _Symbol, sym: str, futures: bool, path: str, cols: dict[str, list]) -> list[str]:
    """Apply Binance's rules to one symbol's depth messages; append them (application order)
    to the per-message lists ``cols`` (see :data:`_MSG_KEYS`)."""
    notes: list[str] = []
    plan: list[Any] = []  # snapshots and deltas in application order
    buffered: list[_Depth] = []
    snap: _Snapshot | None = None
    prev: _Depth | None = None
    dropped = skipped_snaps = 0
    has_snap = bool(s.snaps)

    def apply(d: _Depth) -> None:
        nonlocal prev, dropped
        if prev is None and snap is not None:
            if _stale(d, snap.last, futures):
                dropped += 1
                return
            if not _overlaps(d, snap.last, futures):
                raise _gap(
                    path,
                    d,
                    f"{_ids(d, futures)}) does not overlap the snapshot of line {snap.line} "
                    f"(lastUpdateId={snap.last}; need U <= {snap.last if futures else snap.last + 1} <= u",
                )
        elif prev is not None and not _follows(d, prev, futures):
            want = f"pu={prev.last}" if futures else f"U={prev.last + 1}"
            raise _gap(
                path,
                d,
                f"{_ids(d, futures)}; after u={prev.last} of line {prev.line} it needs {want}",
            )
        plan.append(d)
        prev = d

    for m in s.order:
        if isinstance(m, _Snapshot):
            if snap is not None:
                skipped_snaps += 1
                continue
            snap = m
            plan.append(m)
            for d in buffered:
                apply(d)
            buffered = []
        elif has_snap and snap is None:
            buffered.append(m)
        else:
            apply(m)
    if snap is not None and snap.ts is None:
        first = next((m for m in plan if isinstance(m, _Depth)), None)
        snap.ts = first.ts if first is not None else snap.recv
        if first is not None and first.ts < snap.recv - 60_000 * MS:
            snap.ts = snap.recv  # pragma: no cover - absurd clocks: keep the receive time
    if dropped:
        notes.append(f"{sym}: dropped {dropped} depth updates already in the snapshot")
    if skipped_snaps:
        notes.append(
            f"{sym}: skipped {skipped_snaps} later snapshot(s): the update chain is unbroken"
        )
    for m in plan:
        snap_msg = isinstance(m, _Snapshot)
        cols["m_line"].append(m.line)
        cols["m_sym"].append(sym)
        cols["m_recv"].append(m.recv)
        cols["m_ts"].append(int(m.ts or m.recv) if snap_msg else m.ts)
        cols["m_snap"].append(snap_msg)
        cols["m_uid"].append(m.last)
        cols["m_pu"].append(-1 if snap_msg else (m.prev if futures else m.first - 1))
        cols["nb"].append(len(m.bids))
        cols["na"].append(len(m.asks))
        for levels in (m.bids, m.asks):
            cols["price"] += [lv[0] for lv in levels]
            cols["qty"] += [lv[1] for lv in levels]
    return notes


#: per-message lists of the book (one entry a message) and per-level price/qty text
_MSG_KEYS = (
    "m_line",
    "m_sym",
    "m_recv",
    "m_ts",
    "m_snap",
    "m_uid",
    "m_pu",
    "nb",
    "na",
    "price",
    "qty",
)


def _book_columns(c: dict[str, list]) -> tuple[dict[str, object], np.ndarray]:
    """Book columns (one row a level: each message's bids, then its asks) and source lines."""
    nb, na = np.asarray(c["nb"], dtype=np.int64), np.asarray(c["na"], dtype=np.int64)
    counts = nb + na
    side = np.repeat(
        np.tile(np.array([1, -1], dtype=np.int8), nb.size), np.column_stack([nb, na]).ravel()
    )
    msg = np.repeat(np.arange(nb.size), counts)
    pu = np.asarray(c["m_pu"], dtype=np.int64)[msg]
    cols: dict[str, object] = {
        "symbol": pa.array(c["m_sym"], pa.string()).take(pa.array(msg)),
        "ts": np.asarray(c["m_ts"], dtype=np.int64)[msg],
        "side": side,
        "price": floats(c["price"]),
        "qty": floats(c["qty"]),
        "is_snapshot": np.asarray(c["m_snap"], dtype=bool)[msg],
        "update_id": np.asarray(c["m_uid"], dtype=np.int64)[msg],
        "prev_update_id": pa.array(pu, pa.int64(), mask=pu < 0),
        "recv_ts": np.asarray(c["m_recv"], dtype=np.int64)[msg],
    }
    return cols, np.asarray(c["m_line"], dtype=np.int64)[msg]
