"""A live bar source: an exchange's candles through ``ccxt``, published as feed messages.

:class:`CcxtSource` polls ``fetch_ohlcv`` for each symbol and returns the bars that have
*closed* (the newest candle an exchange returns is still forming and is never published).
Bars are aligned on one time grid across the symbols (a symbol without a candle at a bar
time gets ``nan``, a masked bar) and published by :func:`run_source` as ``bars`` messages
(:mod:`.messages`) — the same messages as a replay, so traders cannot tell the difference.

Nothing is silently used or dropped:

* a **gap** (the exchange's next candle starts later than one interval after the last one
  published) is reported; the bars after it are published and readers see the gap too;
* a candle **at or before** the last one published (an overlap of two polls, a late or
  reordered candle) is not published again; a re-sent candle whose prices changed is
  reported as revised;
* **rate limits** (HTTP 429/418: ``ccxt.DDoSProtection``, ``RateLimitExceeded``) and
  **transient errors** (``ccxt.OperationFailed``: timeouts, 5xx, ``ExchangeNotAvailable``,
  Binance's "try again" codes) are retried with exponential backoff and reported; other
  exchange errors (a bad symbol, bad credentials) raise.
* ccxt sorts each response by time, so a reordered response arrives in order; a candle
  older than the last one published is never published again.

``ccxt`` is an optional extra (``pip install quantarena[live]``). ``api_url`` points every
endpoint of the exchange at another host (a recorded-response server in tests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import numpy as np

from quantarena.live.messages import encode_bars

__all__ = ["CcxtSource", "run_source"]

log = logging.getLogger("quantarena.live")

_FIELDS = 5  # open, high, low, close, volume


def _ccxt() -> Any:
    try:
        import ccxt
    except ImportError:
        raise ImportError(
            "the live exchange source needs ccxt: pip install 'quantarena[live]'"
        ) from None
    return ccxt


class CcxtSource:
    """Closed candles of ``symbols`` from a ccxt exchange (see the module docstring).

    Args:
        exchange: a ccxt exchange instance.
        symbols: ccxt symbols (``"BTC/USDT"``); feed columns are named without the slash.
        timeframe: ccxt timeframe (``"1m"``).
        since_ms: first candle time wanted (ms); None: whatever the exchange returns first.
        limit: candles per request.
        max_retries: attempts per request on rate limits and network errors.
        sleep: the sleep function (tests pass a recorder).
    """

    def __init__(
        self,
        exchange: Any,
        symbols: list[str],
        timeframe: str = "1m",
        *,
        since_ms: int | None = None,
        limit: int = 500,
        max_retries: int = 6,
        first_backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ex = exchange
        self.symbols = list(symbols)
        self.names = [s.replace("/", "") for s in self.symbols]
        self.timeframe = timeframe
        self.interval_ms = int(exchange.parse_timeframe(timeframe) * 1000)
        self.limit = int(limit)
        self.max_retries = int(max_retries)
        self.first_backoff_s = float(first_backoff_s)
        self.sleep = sleep
        self.next_ms: dict[str, int | None] = {s: since_ms for s in self.symbols}
        self.closed: dict[str, dict[int, list[float]]] = {s: {} for s in self.symbols}
        self.published_ms: int | None = None
        self.sent: dict[int, np.ndarray] = {}  # recent published rows, to spot revisions
        self.reports: list[str] = []

    @classmethod
    def from_id(
        cls, exchange_id: str, symbols: list[str], api_url: str | None = None, **kwargs: Any
    ) -> CcxtSource:
        """A source on ccxt's ``exchange_id``; ``api_url`` replaces the host of every API
        endpoint (e.g. ``http://127.0.0.1:8999`` for a local recorded-response server)."""
        ccxt = _ccxt()
        if not hasattr(ccxt, exchange_id):
            raise ValueError(f"--exchange {exchange_id!r}: ccxt has no such exchange")
        opts = {"options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
                            "fetchCurrencies": False}}  # fmt: skip
        ex = getattr(ccxt, exchange_id)(opts)
        if api_url:
            base = api_url.rstrip("/")
            for k, v in list(ex.urls.get("api", {}).items()):
                if isinstance(v, str):
                    ex.urls["api"][k] = base + urlparse(v).path
        return cls(ex, symbols, **kwargs)

    def _report(self, text: str) -> None:
        self.reports.append(text)
        log.warning("%s", text)

    def _fetch(self, symbol: str) -> list[list[float]]:
        ccxt = _ccxt()
        delay = self.first_backoff_s
        for attempt in range(1, self.max_retries + 1):
            try:
                return self.ex.fetch_ohlcv(symbol, self.timeframe, since=self.next_ms[symbol],
                                           limit=self.limit)  # fmt: skip
            except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as e:
                kind = "rate limited"
                err: Exception = e
            except ccxt.OperationFailed as e:  # network errors, 5xx, "try again" codes
                kind = "network error"
                err = e
            if attempt == self.max_retries:
                raise ConnectionError(
                    f"{self.ex.id} {symbol}: {kind} {self.max_retries} times, last: {err}"
                ) from err
            self._report(
                f"{self.ex.id} {symbol}: {kind} ({type(err).__name__}); retry in {delay:g} s"
            )
            self.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def poll(self) -> list[tuple[int, np.ndarray]]:
        """Fetch every symbol once; returns the newly closed bar rows ``(ts_ms, (5, A))``
        (open, high, low, close, volume per symbol), oldest first."""
        for s in self.symbols:
            candles = self._fetch(s)
            if not candles:
                continue
            times = [int(c[0]) for c in candles]
            if any(b <= a for a, b in zip(times, times[1:], strict=False)):
                self._report(f"{self.ex.id} {s}: candles out of order in one response — refused")
                continue
            done = candles[:-1]  # the newest candle is still forming
            for c in done:
                ts = int(c[0])
                row = [float(x) for x in c[1:6]]
                if self.published_ms is not None and ts <= self.published_ms:
                    old = self.sent.get(ts)
                    j = self.symbols.index(s)
                    if old is not None and not np.array_equal(old[:, j], row):
                        self._report(
                            f"{self.ex.id} {s}: candle {ts} revised after publication — ignored"
                        )
                    continue
                self.closed[s][ts] = row
            if done:
                self.next_ms[s] = int(done[-1][0]) + self.interval_ms
        # a bar time is complete once every symbol has a closed candle at or after it
        heads = []
        for s in self.symbols:
            h = max(self.closed[s]) if self.closed[s] else self.published_ms
            if h is None:
                return []  # a symbol has no closed candle yet
            heads.append(h)
        upto = min(heads)
        times = sorted({t for s in self.symbols for t in self.closed[s] if t <= upto})
        out = []
        for ts in times:
            if self.published_ms is not None and ts != self.published_ms + self.interval_ms:
                n = (ts - self.published_ms) // self.interval_ms - 1
                self._report(f"{self.ex.id}: gap of {n} bar(s) before {ts} (exchange time, ms)")
            row = np.full((_FIELDS, len(self.symbols)), np.nan)
            for j, s in enumerate(self.symbols):
                v = self.closed[s].pop(ts, None)
                if v is not None:
                    row[:, j] = v
            out.append((ts, row))
            self.published_ms = ts
            self.sent[ts] = row
        for ts in [t for t in self.sent if t < (self.published_ms or 0) - 1000 * self.interval_ms]:
            del self.sent[ts]
        return out


def run_source(
    r: Any,
    stream: str,
    source: CcxtSource,
    *,
    polls: int | None = None,
    poll_s: float = 5.0,
    maxlen: int = 100_000,
    first_seq: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Poll ``source`` (``polls`` times, None: forever, ``poll_s`` apart) and publish each
    closed bar to ``stream``; returns the messages published."""
    from quantarena.live.redis_io import retry

    seq = first_seq
    k = 0
    ns = 1_000_000
    while polls is None or k < polls:
        for ts, row in source.poll():
            f = encode_bars(seq, ts * ns, source.interval_ms * ns, source.names, *row)
            retry(
                lambda f=f: r.xadd(stream, f, maxlen=maxlen, approximate=True),
                f"publishing to {stream}",
            )
            seq += 1
        k += 1
        if polls is None or k < polls:
            sleep(poll_s)
    return seq - first_seq
