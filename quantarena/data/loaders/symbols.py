"""Symbol names: normalised to upper case without separators (``BTC/USD`` → ``BTCUSD``)."""

from __future__ import annotations

import re
from pathlib import Path

_SEP = re.compile(r"[^0-9A-Za-z]")
# tokens that end the symbol part of a file name like SYMBOL-INTERVAL-YYYY-MM.zip
_INTERVAL = re.compile(r"^\d+(s|m|min|h|d|w|mo|M)$")
_DATEISH = re.compile(r"^\d+$")
_KIND_WORDS = {
    "aggtrades",
    "trades",
    "klines",
    "kline",
    "candles",
    "ohlcv",
    "ohlc",
    "bars",
    "bookticker",
    "daily",
    "hourly",
    "minute",
    "minutes",
}


def normalise_symbol(name: str) -> str:
    """Upper-case ``name`` and strip separators: ``btc/usd`` → ``BTCUSD``, ``ADA_BTC`` → ``ADABTC``."""
    return _SEP.sub("", str(name)).upper()


def symbol_from_filename(path: str | Path) -> str | None:
    """The symbol named by a file name of the form ``SYMBOL-INTERVAL-...`` or ``SYMBOL-kind-...``.

    ``BTCUSDT-1m-2024-01.zip`` → ``BTCUSDT``; ``ADA_BTC-5m.feather`` → ``ADABTC``;
    ``btc-perp-20211231-20220201_1m.csv`` → ``BTCPERP``; ``XRPETH-aggTrades-2019-10-11.csv``
    → ``XRPETH``. Returns None when the name has no such shape (``data.csv``).
    """
    stem = Path(path).name
    stem = re.sub(r"(\.(csv|zip|gz|parquet|pq|feather|arrow|ipc|txt))+$", "", stem, flags=re.I)
    tokens = [t for t in re.split(r"[-_. ]+", stem) if t]
    head: list[str] = []
    for tok in tokens:
        if _INTERVAL.match(tok) or _DATEISH.match(tok) or tok.lower() in _KIND_WORDS:
            break
        head.append(tok)
    else:
        return None  # no interval/date/kind token: the name does not say what it holds
    if not head or len(head) > 3:
        return None
    sym = normalise_symbol("".join(head))
    return sym or None
