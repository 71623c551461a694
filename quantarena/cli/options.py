"""Command-line options shared by the commands that read bars (backtest, audit, tune)."""

from __future__ import annotations

import math
from typing import Any

import typer

from quantarena.cli.help import agents_help

AGENT = typer.Option("momentum", "--agent", "-a", help=agents_help("Agent"))
STORE = typer.Option(None, "--store", help="Store directory (see `quantarena data`).")
SYMBOL = typer.Option(None, "--symbol", "-s", help="Symbol in the store or file.")
FILE = typer.Option(None, "--file", help="A data file instead of a store.")
START = typer.Option(None, "--start", help="First bar time (ISO, UTC), inclusive.")
END = typer.Option(None, "--end", help="End time (ISO, UTC), exclusive.")
INTERVAL = typer.Option(None, "--interval", help="Bar interval, e.g. 1m, 1h.")
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
