"""One-line error reporting for CLI commands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors(exit_code: int = 2) -> Iterator[None]:
    """Turn :class:`~quantarena.data.errors.DataError`, ``ValueError`` and
    ``FileNotFoundError`` raised inside the block into a one-line red message on stderr
    and exit code ``exit_code``; anything else propagates with its traceback."""
    from quantarena.data.errors import DataError

    try:
        yield
    except (DataError, ValueError, FileNotFoundError, KeyError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # escaped: a message may hold brackets (pip install "quantarena[gpu]")
        err_console.print(f"[bold red]error:[/] {escape(msg)}", markup=True)
        raise typer.Exit(exit_code) from None
