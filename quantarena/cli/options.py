"""Command-line options shared by the commands that read bars (backtest, audit, tune) and by
``quantarena data``: one definition each of the store, file, column-mapping and layout
options.

Every ``--store`` falls back to the ``QUANTARENA_STORE`` environment variable; a ``--file``
given on the command line wins over a store that only comes from the environment.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import typer

#: the environment variable every ``--store`` falls back to
STORE_ENV = "QUANTARENA_STORE"
#: the layouts ``--format`` takes (the loaders' ``FORMATS``, held equal by a test)
FORMAT_NAMES = (
    "binance-klines",
    "binance-aggtrades",
    "binance-trades",
    "cryptodatadownload",
    "csv",
    "long-csv",
    "parquet",
    "feather",
    # tick data (data ingest)
    "binance-ws",
    "bybit-orderbook",
    "tardis-book-snapshot",
    "tardis-incremental-book",
    "tardis-quotes",
    "tardis-trades",
    "book-csv",
    "quotes-csv",
    "trades-csv",
)

#: whether the running command's --store came from the environment (set as it is parsed)
_STORE_FROM_ENV: ContextVar[bool] = ContextVar("store_from_env", default=False)


def _note_store_source(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    # by name: typer carries its own copy of click's ParameterSource enum
    source = ctx.get_parameter_source(param.name or "store")
    _STORE_FROM_ENV.set(getattr(source, "name", None) == "ENVIRONMENT")
    return value


from quantarena.cli.help import agents_help  # noqa: E402

AGENT = typer.Option("momentum", "--agent", "-a", help=agents_help("Agent"))
STORE = typer.Option(
    None,
    "--store",
    envvar=STORE_ENV,
    show_envvar=True,
    callback=_note_store_source,
    help="Store directory (see `quantarena data`).",
)
STORE_REQUIRED = typer.Option(
    ...,
    "--store",
    "-s",
    envvar=STORE_ENV,
    show_envvar=True,
    help="Store directory (created on first ingest).",
)
SYMBOL = typer.Option(None, "--symbol", "-s", help="Symbol in the store or file.")
FILE = typer.Option(None, "--file", help="A data file instead of a store.")
FORMAT = typer.Option(
    "auto",
    "--format",
    "-f",
    help=f"File layout: auto (from the content), {', '.join(FORMAT_NAMES)}.",
)
MAP = typer.Option(
    None,
    "--map",
    metavar="FIELD=COLUMN",
    help="Name a file column for a field: field=column, e.g. --map ts=when --map close=last. "
    "Fields: ts, open, high, low, close, volume, quote_volume, trades, taker_buy_volume, "
    "symbol. Repeat.",
)
START = typer.Option(None, "--start", help="First bar time (ISO, UTC), inclusive.")
END = typer.Option(None, "--end", help="End time (ISO, UTC), exclusive.")
INTERVAL = typer.Option(
    None, "--interval", help="Bar interval, e.g. 1m, 1h (resamples finer stored or file bars)."
)

# cost flags: None = the engine's default (quantarena.engine.costs.DEFAULT_COSTS), so the CLI,
# the Python API and a tournament charge the same; the costs applied are printed with results
FEE_BPS = typer.Option(
    None,
    "--fee-bps",
    help="Taker fee, bps of traded notional; left out: the engine's DEFAULT_COSTS, as in "
    "quantarena.backtest and a tournament. The costs applied are printed with the results.",
    show_default=False,
)
SLIPPAGE_BPS = typer.Option(
    None,
    "--slippage-bps",
    help="Slippage, bps of price; left out: the engine's DEFAULT_COSTS.",
    show_default=False,
)


def costs_from_options(fee_bps: float | None, slippage_bps: float | None) -> Any:
    """The :class:`~quantarena.engine.costs.Costs` of the ``--fee-bps`` / ``--slippage-bps``
    flags: each flag left out keeps its part of ``DEFAULT_COSTS``; 0 turns that part off."""
    import dataclasses

    from quantarena.engine.costs import DEFAULT_COSTS, Fees, Slippage

    for flag, v in (("--fee-bps", fee_bps), ("--slippage-bps", slippage_bps)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{flag} must be a number of bps >= 0, got {v:g}")
    costs = DEFAULT_COSTS
    if fee_bps is not None:
        maker = costs.fees.maker_bps if costs.fees is not None else 0.0
        fees = Fees(taker_bps=fee_bps, maker_bps=maker) if fee_bps else None
        costs = dataclasses.replace(costs, fees=fees)
    if slippage_bps is not None:
        slip = Slippage(bps=slippage_bps) if slippage_bps else None
        costs = dataclasses.replace(costs, slippage=slip)
    return costs


def parse_map(items: list[str] | None) -> dict[str, str] | None:
    """``["ts=when", "close=last"]`` → ``{"ts": "when", "close": "last"}`` (None when empty).

    Raises ``ValueError`` (one line) for an item without ``=`` or a field given twice; the
    loader checks the field names."""
    out: dict[str, str] = {}
    for item in items or []:
        field, sep, column = item.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise ValueError(f"bad --map {item!r}: use field=column, e.g. --map ts=when")
        if field in out:
            raise ValueError(f"--map {field} given twice: name one column per field")
        out[field] = column
    return out or None


def store_from_env(store: Path | None) -> bool:
    """True when the running command's ``--store`` came from ``QUANTARENA_STORE`` rather
    than the command line (so a ``--file`` on the command line takes precedence)."""
    return store is not None and _STORE_FROM_ENV.get()
