"""The market-data message format on Redis Streams, version 1 (docs/streams.md).

A feed publishes to one stream (``{prefix}feed:{name}``) one message per bar time: the bars
of every symbol of the feed at that time, as flat string fields (Redis stream entries are
flat maps of strings)::

    v         "1"                      format version
    kind      "bars"                   (also "trade"; see below)
    seq       "17"                     message number in the feed, from 0, +1 each message
    ts        "1640995260000000000"    bar open time, ns since the epoch, UTC
    interval  "60000000000"            bar length, ns
    symbols   "BTC-PERP,ETH-PERP"      the columns, in order
    open high low close volume         one number per symbol, comma-separated, Python repr
                                       (exact float64 round trip); "nan" = no bar

A ``trade`` message carries one trade: ``symbol``, ``ts`` (ns), ``price``, ``qty``, ``side``
(``buy``/``sell``: the taker's side; empty when the source does not say), ``id`` (the
exchange's trade id, or empty).

Version 2 adds the ``quote`` message, the top of the book (Binance ``bookTicker``): ``symbol``,
``ts`` (ns, the exchange's time), ``bid``, ``bid_qty``, ``ask``, ``ask_qty`` (Python repr;
"nan" = that side is empty) and ``recv`` (the capture's receive time, ns; "-1" when unknown).
Writers stamp ``quote`` messages ``v="2"`` and the others ``v="1"`` (their format did not
change), so a version-1 reader refuses quotes by name instead of misreading them. A tick feed
(:func:`.feed.replay_ticks`) interleaves quotes and trades in the tick simulator's event order.

Readers check ``v`` (an unknown version is refused, never guessed), and the :class:`SeqCheck`
reports a gap (a skipped ``seq`` — e.g. entries trimmed by MAXLEN before they were read — or a
skipped bar time) and refuses out-of-order or repeated messages. Pure: no Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "VERSION",
    "BarsMessage",
    "MessageError",
    "QuoteMessage",
    "SeqCheck",
    "TradeMessage",
    "decode",
    "encode_bars",
    "encode_quote",
    "encode_trade",
]

#: the message format version of ``bars`` and ``trade`` messages
VERSION = "1"
#: the version of ``quote`` messages (format 2 = format 1 + quotes)
VERSION_QUOTES = "2"
#: the versions this code reads
READ_VERSIONS = (VERSION, VERSION_QUOTES)


class MessageError(ValueError):
    """A message that cannot be used (one line naming the message and the field)."""


@dataclass(frozen=True)
class BarsMessage:
    """One bar time of a feed: ``(A,)`` float64 arrays per field, NaN where no bar."""

    seq: int
    ts: int
    interval_ns: int
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True)
class TradeMessage:
    """One trade."""

    seq: int
    ts: int
    symbol: str
    price: float
    qty: float
    side: str
    id: str = ""


@dataclass(frozen=True)
class QuoteMessage:
    """The top of one symbol's book after a change (format version 2)."""

    seq: int
    ts: int
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    recv: int = -1


def _nums(a: Any) -> str:
    return ",".join(repr(float(x)) for x in np.asarray(a, np.float64).reshape(-1))


def encode_bars(
    seq: int,
    ts: int,
    interval_ns: int,
    symbols: list[str] | tuple[str, ...],
    open: Any,  # noqa: A002 - the bar field's name
    high: Any,
    low: Any,
    close: Any,
    volume: Any,
) -> dict[str, str]:
    """The fields of a ``bars`` message."""
    for s in symbols:
        if "," in s:
            raise MessageError(f"symbol {s!r} holds a comma: rename it for the feed")
    return {
        "v": VERSION,
        "kind": "bars",
        "seq": str(int(seq)),
        "ts": str(int(ts)),
        "interval": str(int(interval_ns)),
        "symbols": ",".join(symbols),
        "open": _nums(open),
        "high": _nums(high),
        "low": _nums(low),
        "close": _nums(close),
        "volume": _nums(volume),
    }


def encode_trade(
    seq: int, ts: int, symbol: str, price: float, qty: float, side: str, id: str = ""
) -> dict[str, str]:  # noqa: A002
    """The fields of a ``trade`` message."""
    if side not in ("buy", "sell", ""):
        raise MessageError(f"trade side {side!r}: use 'buy', 'sell' or '' (unknown)")
    return {
        "v": VERSION,
        "kind": "trade",
        "seq": str(int(seq)),
        "ts": str(int(ts)),
        "symbol": symbol,
        "price": repr(float(price)),
        "qty": repr(float(qty)),
        "side": side,
        "id": str(id),
    }


def encode_quote(
    seq: int,
    ts: int,
    symbol: str,
    bid: float,
    bid_qty: float,
    ask: float,
    ask_qty: float,
    recv: int = -1,
) -> dict[str, str]:
    """The fields of a ``quote`` message (version 2)."""
    return {
        "v": VERSION_QUOTES,
        "kind": "quote",
        "seq": str(int(seq)),
        "ts": str(int(ts)),
        "symbol": symbol,
        "bid": repr(float(bid)),
        "bid_qty": repr(float(bid_qty)),
        "ask": repr(float(ask)),
        "ask_qty": repr(float(ask_qty)),
        "recv": str(int(recv)),
    }


def _s(fields: dict[Any, Any], key: str, where: str) -> str:
    v = fields.get(key, fields.get(key.encode()))
    if v is None:
        raise MessageError(f"{where}: field {key!r} is missing")
    return v.decode() if isinstance(v, bytes) else str(v)


def decode(
    fields: dict[Any, Any], where: str = "message"
) -> BarsMessage | TradeMessage | QuoteMessage:
    """A message from its Redis fields (str or bytes); ``where`` names it in errors
    (e.g. the stream entry id)."""
    v = _s(fields, "v", where)
    if v not in READ_VERSIONS:
        raise MessageError(
            f"{where}: format version {v!r} is not one of {', '.join(READ_VERSIONS)} — "
            "upgrade the reader"
        )
    kind = _s(fields, "kind", where)
    try:
        if kind == "quote":
            if v != VERSION_QUOTES:
                raise MessageError(f"{where}: a quote message needs format version 2, got {v!r}")
            return QuoteMessage(
                int(_s(fields, "seq", where)),
                int(_s(fields, "ts", where)),
                _s(fields, "symbol", where),
                *(float(_s(fields, k, where)) for k in ("bid", "bid_qty", "ask", "ask_qty")),
                int(_s(fields, "recv", where)),
            )
        seq = int(_s(fields, "seq", where))
        ts = int(_s(fields, "ts", where))
        if kind == "bars":
            syms = tuple(_s(fields, "symbols", where).split(","))
            arrs = []
            for k in ("open", "high", "low", "close", "volume"):
                a = np.array([float(x) for x in _s(fields, k, where).split(",")], np.float64)
                if a.shape[0] != len(syms):
                    raise MessageError(
                        f"{where}: field {k!r} has {a.shape[0]} values for {len(syms)} symbols"
                    )
                arrs.append(a)
            return BarsMessage(seq, ts, int(_s(fields, "interval", where)), syms, *arrs)
        if kind == "trade":
            return TradeMessage(
                seq,
                ts,
                _s(fields, "symbol", where),
                float(_s(fields, "price", where)),
                float(_s(fields, "qty", where)),
                _s(fields, "side", where),
                _s(fields, "id", where) if ("id" in fields or b"id" in fields) else "",
            )
    except ValueError as e:
        if isinstance(e, MessageError):
            raise
        raise MessageError(f"{where}: {e}") from None
    raise MessageError(f"{where}: unknown kind {kind!r} (expected 'bars', 'trade' or 'quote')")


class SeqCheck:
    """Detects gaps and refuses out-of-order messages of one feed.

    :meth:`check` returns a list of gap descriptions (empty when the message follows the
    previous one) and raises :class:`MessageError` for a message at or before the previous
    ``seq`` or bar time (a replay or a reordering: never silently used).
    """

    def __init__(self) -> None:
        self.seq: int | None = None
        self.ts: int | None = None

    def state(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts}

    def restore(self, d: dict[str, Any]) -> None:
        self.seq, self.ts = d["seq"], d["ts"]

    def check(self, msg: BarsMessage) -> list[str]:
        gaps = []
        if self.seq is not None:
            if msg.seq <= self.seq or (self.ts is not None and msg.ts <= self.ts):
                raise MessageError(
                    f"message seq {msg.seq} (ts {msg.ts}) is not after seq {self.seq} "
                    f"(ts {self.ts}): out of order or repeated — refused"
                )
            if msg.seq != self.seq + 1:
                gaps.append(f"gap: messages {self.seq + 1}..{msg.seq - 1} missing")
            if self.ts is not None and msg.ts != self.ts + msg.interval_ns:
                n = (msg.ts - self.ts) // msg.interval_ns - 1
                gaps.append(f"gap: {n} bar(s) missing before ts {msg.ts}")
        self.seq, self.ts = msg.seq, msg.ts
        return gaps
