"""``quantarena live promote --from DIR``: which agents the live director would promote.

Reads the newest finished tournament under ``--from`` (:mod:`quantarena.live.promotion`)
and prints every agent with its rank, gates, last-round parameters, paper account and the
decision (promote, or why not). It changes nothing: a live run with a ``promote:`` section
(``quantarena live run CONFIG``) does the promoting, at its start and at each reallocation.
"""

from __future__ import annotations

import json

import typer

from quantarena.cli.errors import user_errors


def promote_cmd(
    source: str = typer.Option(
        ..., "--from", help="A tournament's output folder, or a folder of them (newest wins)."
    ),
    top: int = typer.Option(5, "--top", help="Promote at most this many (best rank first)."),
    require_gates: bool = typer.Option(
        True, "--require-gates/--any-gates", help="Only agents that passed the tournament gates."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the candidates as JSON."),
    tick_feed: str = typer.Option(
        None,
        "--tick-feed",
        help="The live config's tick feed: market makers and arbitrageurs can be promoted.",
    ),
) -> None:
    """Show the candidates for paper trading from the latest backtest tournament (a dry run:
    `quantarena live run` with a `promote:` section promotes them)."""
    with user_errors():
        from quantarena.live.promotion import read_tournament, select

        if top < 1:
            raise ValueError(f"--top must be >= 1, got {top}")
        t = select(read_tournament(source, tick_feed), top, require_gates)
    if as_json:
        rows = [
            {"agent": c.agent, "kind": c.kind, "rank": c.rank, "params": c.params,
             "options": c.options, "symbol": c.symbol, "gates_failed": list(c.gates_failed),
             "account": c.account,
             "promote": c.promote, "reason": c.reason}
            for c in t.candidates
        ]  # fmt: skip
        payload = {"tournament": t.name, "path": str(t.path), "finished_at": t.finished_at}
        typer.echo(json.dumps({**payload, "candidates": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from quantarena.numfmt import fmt

    tab = Table(title=f"{t.name} (finished {t.finished_at}) — {t.path}", title_justify="left")
    for col in ("#", "agent", "kind", "sharpe", "dsr", "gates", "params", "account", "decision"):
        tab.add_column(col, justify="right" if col in ("#", "sharpe", "dsr") else "left")
    for c in t.candidates:
        tab.add_row(
            str(c.rank),
            c.agent,
            c.kind,
            fmt(c.sharpe),
            fmt(c.dsr),
            "pass" if c.gates_passed else "fail " + ", ".join(c.gates_failed),
            " ".join(f"{k}={v}" for k, v in c.params.items()),
            c.account,
            "[green]promote[/]" if c.promote else f"[yellow]skip[/]: {c.reason}",
        )
    import sys

    Console(width=None if sys.stdout.isatty() else 200).print(tab)
    n = sum(c.promote for c in t.candidates)
    typer.echo(f"{n} of {len(t.candidates)} agents would be promoted (nothing was changed)")
