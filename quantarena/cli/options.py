"""Command-line options shared by the commands that read bars (backtest, audit, tune)."""

from __future__ import annotations

import typer

from quantarena.cli.help import agents_help

AGENT = typer.Option("momentum", "--agent", "-a", help=agents_help("Agent"))
STORE = typer.Option(None, "--store", help="Store directory (see `quantarena data`).")
SYMBOL = typer.Option(None, "--symbol", "-s", help="Symbol in the store or file.")
FILE = typer.Option(None, "--file", help="A data file instead of a store.")
START = typer.Option(None, "--start", help="First bar time (ISO, UTC), inclusive.")
END = typer.Option(None, "--end", help="End time (ISO, UTC), exclusive.")
INTERVAL = typer.Option(None, "--interval", help="Bar interval, e.g. 1m, 1h.")
