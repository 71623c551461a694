"""One-line error reporting for CLI commands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console

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
        err_console.print(f"[bold red]error:[/] {msg}", markup=True)
        raise typer.Exit(exit_code) from None
