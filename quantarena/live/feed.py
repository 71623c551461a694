"""Publish recorded bars to a Redis stream (``quantarena feed replay``).

:func:`replay` sends one ``bars`` message (:mod:`.messages`) per bar time of a panel with
``XADD ... MAXLEN ~ maxlen`` (the stream never grows past about ``maxlen`` entries; a reader
that falls further behind sees a gap in ``seq`` and reports it). ``speed`` paces the
messages at ``speed`` times real time (600 = ten minutes of bars a second); ``None``
publishes as fast as Redis takes them, in pipelined chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from quantarena.live.messages import encode_bars, encode_trade
from quantarena.live.redis_io import retry

if TYPE_CHECKING:
    from quantarena.data.panel import BarPanel

__all__ = ["DEFAULT_MAXLEN", "parse_speed", "replay", "replay_trades"]

#: default cap on a feed stream's length (entries)
DEFAULT_MAXLEN = 100_000


def parse_speed(text: str | float | None) -> float | None:
    """``"600x"`` / ``"600"`` / ``600`` → 600.0 (times real time); ``"max"``/``None`` → None
    (as fast as possible). Raises ``ValueError`` naming the option otherwise."""
    if text is None:
        return None
    s = str(text).strip().lower()
    if s in ("max", "inf", "fast", "0"):
        return None
    try:
        v = float(s[:-1] if s.endswith("x") else s)
    except ValueError:
        raise ValueError(f"--speed {text!r}: give a factor such as 600x, or max") from None
    if not v > 0:
        raise ValueError(f"--speed {text!r}: the factor must be > 0 (or max)")
    return v


def replay(
    r: Any,
    stream: str,
    bars: BarPanel,
    *,
    speed: float | None = None,
    maxlen: int = DEFAULT_MAXLEN,
    first_seq: int = 0,
    chunk: int = 500,
    on_message: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Publish every bar time of ``bars`` to ``stream``; returns the messages sent.

    Args:
        r: a Redis client.
        stream: the stream key (:meth:`~.redis_io.LiveKeys.feed`).
        speed: times real time (None: as fast as possible).
        maxlen: approximate cap on the stream's length (``XADD MAXLEN ~``).
        first_seq: ``seq`` of the first message (continue an earlier replay).
        chunk: messages per pipeline when unpaced.
        on_message: called with each message's index after it is sent (paced mode).
    """
    T = bars.n_bars
    syms = list(bars.symbols)
    dt = None if speed is None else bars.interval_ns / 1e9 / float(speed)

    def msg(t: int) -> dict[str, str]:
        return encode_bars(
            first_seq + t, int(bars.ts[t]), bars.interval_ns, syms, bars.open[t], bars.high[t],
            bars.low[t], bars.close[t], bars.volume[t],
        )  # fmt: skip

    if dt is None:
        for a in range(0, T, chunk):
            b = min(T, a + chunk)
            pipe = r.pipeline(transaction=False)
            for t in range(a, b):
                pipe.xadd(stream, msg(t), maxlen=maxlen, approximate=True)
            retry(pipe.execute, f"publishing to {stream}")
        return T
    t_start = time.monotonic()
    for t in range(T):
        wait = t_start + t * dt - time.monotonic()
        if wait > 0:
            sleep(wait)
        fields = msg(t)
        retry(
            lambda f=fields: r.xadd(stream, f, maxlen=maxlen, approximate=True),
            f"publishing to {stream}",
        )
        if on_message is not None:
            on_message(t)
    return T


def replay_trades(
    r: Any,
    stream: str,
    trades: list[Any],
    *,
    speed: float | None = None,
    maxlen: int = DEFAULT_MAXLEN,
    first_seq: int = 0,
    chunk: int = 500,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Publish recorded trades (:class:`~quantarena.data.read.TradeArrays` of one or more
    symbols, merged in time order, ties in the given order) as ``trade`` messages; paced by
    their own timestamps at ``speed`` times real time (None: as fast as possible)."""
    ts = (
        np.concatenate([np.asarray(t.ts, np.int64) for t in trades])
        if trades
        else np.zeros(0, np.int64)
    )
    which = np.concatenate([np.full(len(t.ts), i) for i, t in enumerate(trades)]) if trades else ts
    pos = np.concatenate([np.arange(len(t.ts)) for t in trades]) if trades else ts
    order = np.lexsort((pos, which, ts))
    sides = {1: "buy", -1: "sell", 0: ""}
    n = len(order)
    t_start = time.monotonic()
    pipe = r.pipeline(transaction=False)
    for k, i in enumerate(order):
        tr = trades[int(which[i])]
        j = int(pos[i])
        f = encode_trade(first_seq + k, int(tr.ts[j]), tr.symbol, float(tr.price[j]), float(tr.qty[j]),
                         sides[int(tr.side[j])], str(int(tr.trade_id[j])) if tr.trade_id[j] >= 0 else "")  # fmt: skip
        if speed is None:
            pipe.xadd(stream, f, maxlen=maxlen, approximate=True)
            if (k + 1) % chunk == 0:
                retry(pipe.execute, f"publishing to {stream}")
            continue
        wait = t_start + (int(tr.ts[j]) - int(ts[order[0]])) / 1e9 / float(speed) - time.monotonic()
        if wait > 0:
            sleep(wait)
        retry(
            lambda f=f: r.xadd(stream, f, maxlen=maxlen, approximate=True),
            f"publishing to {stream}",
        )
    if speed is None:
        retry(pipe.execute, f"publishing to {stream}")
    return n
