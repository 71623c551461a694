"""One-line error reporting for CLI commands.

Library errors name the field they check (``Fees.taker_bps``, ``interval=``,
``max_position``); on the command line the user typed a flag, so :data:`FLAG_NAMES`
rewrites those names to the flags that set them (``--fee-bps``, ``--interval``,
``--max-position``) before the message is shown.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

#: (pattern, flag): internal field names in library messages -> the CLI flag that sets them
FLAG_NAMES: tuple[tuple[str, str], ...] = (
    (r"\bFees\.taker_bps\b", "--fee-bps"),
    (r"\bSlippage\.bps\b", "--slippage-bps"),
    (r"\bpass interval=", "pass --interval"),
    (r"^max_position\b", "--max-position"),
    (r"^leverage\b", "--leverage"),
    (r"^unknown backend\b", "--backend: unknown backend"),
)


def cli_message(text: str) -> str:
    """``text`` with internal field names replaced by the CLI flags (:data:`FLAG_NAMES`)."""
    for pattern, flag in FLAG_NAMES:
        text = re.sub(pattern, flag, text)
    return text


@contextlib.contextmanager
def user_errors(exit_code: int = 2) -> Iterator[None]:
    """Turn :class:`~quantarena.data.errors.DataError`, ``ValueError``, ``KeyError``,
    ``FileNotFoundError`` and :class:`~quantarena.engine.backend.BackendError` raised inside
    the block into a one-line red message on stderr (field names rewritten to CLI flags)
    and exit code ``exit_code``; anything else propagates with its traceback."""
    from quantarena.data.errors import DataError
    from quantarena.engine.backend import BackendError

    try:
        yield
    except (DataError, ValueError, FileNotFoundError, KeyError, BackendError) as exc:
        text = str(exc).strip()
        if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
            text = exc.args[0].strip()  # str(KeyError) adds quotes
        msg = text.splitlines()[0] if text else type(exc).__name__
        err_console.print(f"[bold red]error:[/] {escape(cli_message(msg))}", markup=True)
        raise typer.Exit(exit_code) from None
