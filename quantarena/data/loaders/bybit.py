"""Bybit ``orderbook`` history files (ndjson): one message a line,
``{"topic": "orderbook.500.XRPUSDT", "type": "snapshot" | "delta", "ts": ms, "cts": ms,
"data": {"s": symbol, "b": [[price, size], ...], "a": [...], "u": update id, "seq": ...}}``.

A ``snapshot`` replaces the book (Bybit also resends one with ``u = 1`` after a service
restart); a ``delta`` sets the size at each level it names (0 deletes). ``ts`` is the message
``ts`` (ms → ns, the system time the data was produced); ``update_id`` = ``u`` and a delta's
``prev_update_id`` = ``u - 1``: each delta must follow the previous message by one, so a
missing line is refused as a sequence gap. Symbols are ``BYBIT:<SYMBOL>`` (Bybit's derivatives
venue, as the history files of linear contracts are; pass ``--symbol BYBIT-SPOT:...`` for spot).
"""

from __future__ import annotations

import json

import numpy as np

from quantarena.data.errors import EmptyFileError, ParseError
from quantarena.data.loaders.source import Source
from quantarena.data.loaders.ticks_common import floats, loaded, venue_symbol
from quantarena.data.schema import LoadedData

LAYOUT = "bybit-orderbook"
MS = 1_000_000


def load_bybit_orderbook(src: Source, symbol: str | None = None) -> list[LoadedData]:
    """Parse a Bybit orderbook history file into ``book`` rows."""
    path = src.display
    cols: dict[str, list] = {
        k: []
        for k in (
            "line",
            "symbol",
            "ts",
            "side",
            "price",
            "qty",
            "is_snapshot",
            "update_id",
            "prev_update_id",
        )
    }
    for lineno, raw in enumerate(src.buffer.to_pybytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            msg = json.loads(raw)
            kind = msg["type"]
            d = msg["data"]
            ts = int(msg["ts"]) * MS
            uid = int(d["u"])
            sym = symbol or venue_symbol("BYBIT", d["s"])
            bids, asks = d["b"], d["a"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ParseError(
                f"not a Bybit orderbook message ({type(exc).__name__}: {exc})".replace("\n", " "),
                path=path,
                row=lineno,
                hint="the file is damaged or truncated: download it again or drop the line",
            ) from None
        if kind not in ("snapshot", "delta"):
            continue
        snap = kind == "snapshot"
        n = len(bids) + len(asks)
        cols["line"] += [lineno] * n
        cols["symbol"] += [sym] * n
        cols["ts"] += [ts] * n
        cols["side"] += [1] * len(bids) + [-1] * len(asks)
        cols["price"] += [b[0] for b in bids] + [a[0] for a in asks]
        cols["qty"] += [b[1] for b in bids] + [a[1] for a in asks]
        cols["is_snapshot"] += [snap] * n
        cols["update_id"] += [uid] * n
        cols["prev_update_id"] += [None if snap else uid - 1] * n
    if not cols["ts"]:
        raise EmptyFileError("no orderbook messages", path=path, hint="check the file is complete")
    lines = np.asarray(cols.pop("line"), dtype=np.int64)
    cols["price"] = floats(cols["price"])
    cols["qty"] = floats(cols["qty"])
    return [loaded("book", cols, lines, path=path, layout=LAYOUT, notes=["times: message ts (ms)"])]
