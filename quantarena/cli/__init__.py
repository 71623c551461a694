"""The ``quantarena`` command line.

Sub-commands live in small modules (``cli/data.py``, ``cli/backtest.py``, ...). Each
imports only typer and rich at module level; the work they call is imported inside the
command, so ``quantarena --help`` and ``quantarena backtest`` never import Ray, MLflow
or torch. ``cli/help.py`` holds every command's example (its ``--help`` epilog);
``cli/quiet.py`` keeps library noise off unless ``--verbose``.
"""

from __future__ import annotations

import typer

from quantarena import __version__
from quantarena.cli.help import add_examples, tidy_typer_help

tidy_typer_help()

app = typer.Typer(
    name="quantarena",
    help="Tournaments of trading agents: ingest market data, backtest populations of "
    "parameter sets on CPU or GPU, and run walk-forward tournaments on Ray.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    epilog="First time? Start with: quantarena data ingest FILE --store store, then "
    "quantarena backtest --store store --symbol SYMBOL. Each command's --help ends with an "
    "example.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"quantarena {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Show library warnings and logs (Optuna, MLflow, Ray, torch), hidden by default.",
    ),
) -> None:
    """quantarena — tournaments of trading agents."""
    if not verbose:
        from quantarena.cli.quiet import quiet_library_noise

        quiet_library_noise()


def _register() -> None:
    from quantarena.cli import backtest as backtest_cli
    from quantarena.cli import data as data_cli
    from quantarena.cli import live as live_cli
    from quantarena.cli import tournament as submit_cli
    from quantarena.cli import tournament_run as tournament_cli
    from quantarena.cli import tune as tune_cli

    app.add_typer(data_cli.app, name="data", help="Ingest, inspect and synthesise market data.")
    backtest_cli.register(app)
    tournament_cli.register(app)
    submit_cli.register(app)
    tune_cli.register(app)
    live_cli.register(app)
    add_examples(app)


_register()


def main() -> None:
    """Entry point of the ``quantarena`` console script."""
    app()
