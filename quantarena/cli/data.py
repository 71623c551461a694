"""``quantarena data``: ingest files into a store, show what it holds, synthesise bars.

Only typer and rich are imported at module level; the data layer loads inside commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from quantarena.cli import options as opt
from quantarena.cli.errors import user_errors

app = typer.Typer(
    name="data",
    help="Ingest, inspect and synthesise market data.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

STORE_OPTION = opt.STORE_REQUIRED


def _console() -> Console:
    import sys

    # pipes and captured output get a wide page instead of rich's 80 columns
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _when(ts_ns: int | None) -> str:
    """ISO-8601 UTC to the minute (seconds only when not zero): 2024-01-31T12:00Z."""
    from quantarena.data.store import iso

    text = iso(ts_ns)
    if text.endswith(":00Z") and len(text) == 20:
        return text[:-4] + "Z"
    return text


def _rows(n: int) -> str:
    return f"{n:,}"


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(
        ..., help="Files or directories (their data files) to ingest."
    ),
    store: Path = STORE_OPTION,
    symbol: str | None = typer.Option(
        None, "--symbol", help="Symbol to record when the file does not name one."
    ),
    format: str = opt.FORMAT,
    map_: list[str] = opt.MAP,
    fill: str = typer.Option(
        "none",
        "--fill",
        help="Gaps: none (report only) or ffill (insert bars at the previous close, volume 0).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Load files, validate them and add their rows to the store (idempotent, all or nothing).

    A Binance websocket capture (.gz) adds its L2 book, quotes and trades at once."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with user_errors():
        from quantarena.data.store import Store, expand_paths

        mapping = opt.parse_map(map_)
        files = expand_paths(paths)
        if not files:
            raise ValueError(f"no data files found in {', '.join(map(str, paths))}")
        progress = Progress(
            TextColumn("[bold]ingest[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
            disable=as_json,
        )
        with progress:
            task = progress.add_task(files[0].name, total=len(files))

            def advance(path: str, done: int, total: int) -> None:
                nxt = files[done].name if done < total else "writing"
                progress.update(task, completed=done, description=nxt)

            report = Store(store).ingest(
                files, format=format, symbol=symbol, mapping=mapping, fill=fill, progress=advance
            )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=1))
        return
    table = Table(title=f"ingest → {store}", title_justify="left")
    for col, just in (
        ("file", "left"),
        ("kind", "left"),
        ("symbols", "left"),
        ("interval", "left"),
        ("rows", "right"),
        ("added", "right"),
        ("present", "right"),
        ("first", "left"),
        ("last", "left"),
        ("notes", "left"),
    ):
        table.add_column(
            col,
            justify=just,  # type: ignore[arg-type]
            no_wrap=col in ("file", "first", "last"),
            overflow="fold",
        )
    for f in report.files:
        d = f.as_dict()
        if f.skipped_same_hash:
            table.add_row(
                Path(f.path).name,
                "-",
                "-",
                "-",
                "-",
                "0",
                "-",
                "-",
                "-",
                "[dim]skipped: same bytes already ingested[/]",
            )
            continue
        syms = ", ".join(f.symbols[:4]) + (f" +{len(f.symbols) - 4}" if len(f.symbols) > 4 else "")
        table.add_row(
            Path(f.path).name,
            f.kind or "-",
            syms,
            d["interval"] or "-",
            _rows(f.rows),
            _rows(f.rows_added),
            _rows(f.rows_present),
            _when(f.start_ns),
            _when(f.end_ns),
            "; ".join(f.notes),
        )
    con = _console()
    con.print(table)
    skipped = sum(f.skipped_same_hash for f in report.files)
    con.print(
        f"{len(report.files)} files: {_rows(report.rows_added)} rows added, "
        f"{_rows(report.rows_present)} already present, {skipped} skipped (same bytes)"
        + ("" if report.changed else " — store unchanged")
    )


@app.command()
def info(
    store: Path = STORE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the catalog entries as JSON."),
) -> None:
    """Show the datasets in the store: kind, symbol, interval, first and last time, rows;
    then a summary per kind (bars, trades, quotes, book)."""
    with user_errors():
        from quantarena.data.errors import StoreError
        from quantarena.data.store import Store, iso

        st = Store(store)
        if not st.exists():
            raise StoreError(
                "no store here (catalog.json is missing)",
                path=store,
                hint="create one with `quantarena data ingest FILE --store DIR`",
            )
        entries = st.catalog()
    if as_json:
        out: list[dict[str, Any]] = []
        for d in entries:
            d = {k: v for k, v in d.items() if k != "parts"} | {"parts": len(d["parts"])}
            d["first"], d["last"] = iso(d["start_ns"]), iso(d["end_ns"])
            out.append(d)
        typer.echo(json.dumps(out, indent=1))
        return
    df = st.info()
    df["start_ns"] = [d["start_ns"] for d in entries]
    df["end_ns"] = [d["end_ns"] for d in entries]
    table = Table(title=f"store {store}", title_justify="left")
    for col in ("kind", "symbol", "interval", "first", "last", "rows", "sources"):
        table.add_column(col, justify="right" if col in ("rows", "sources") else "left")
    for r in df.itertuples(index=False):
        table.add_row(
            r.kind,
            r.symbol,
            r.interval,
            _when(r.start_ns),
            _when(r.end_ns),
            _rows(r.rows),
            str(r.sources),
        )
    con = _console()
    con.print(table)
    con.print(f"{len(df)} datasets, {_rows(int(df['rows'].sum()))} rows")
    con.print(_kinds_table(entries))


def _kinds_table(entries: list[dict[str, Any]]) -> Table:
    """One row per kind of data (bars, trades, quotes, book): rows, time range, symbols."""
    from quantarena.data.kinds import KIND_NAMES

    table = Table(title="by kind", title_justify="left")
    for col in ("kind", "rows", "first", "last", "symbols"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    order = {k: i for i, k in enumerate(KIND_NAMES)}
    for kind in sorted({d["kind"] for d in entries}, key=lambda k: (order.get(k, 99), k)):
        ds = [d for d in entries if d["kind"] == kind]
        starts = [d["start_ns"] for d in ds if d["start_ns"] is not None]
        ends = [d["end_ns"] for d in ds if d["end_ns"] is not None]
        syms = sorted({d["symbol"] for d in ds})
        table.add_row(
            kind,
            _rows(sum(int(d["rows"]) for d in ds)),
            _when(min(starts)) if starts else "-",
            _when(max(ends)) if ends else "-",
            ", ".join(syms[:6]) + (f" +{len(syms) - 6}" if len(syms) > 6 else ""),
        )
    return table


@app.command()
def synth(
    store: Path = STORE_OPTION,
    symbols: int = typer.Option(
        4, "--symbols", min=1, help="Number of symbols (PREFIX000, PREFIX001, ...)."
    ),
    prefix: str = typer.Option(
        "SYN",
        "--prefix",
        help="Start of the symbol names: SYN gives SYN000, SYN001, ... Pick another to keep "
        "bars of another seed or settings in the same store.",
    ),
    bars: int = typer.Option(10_000, "--bars", min=1, help="Bars per symbol."),
    interval: str = typer.Option("1m", "--interval", help="Bar interval, e.g. 1m, 5m, 1h, 1d."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same bars."),
    start: str = typer.Option("2024-01-01", "--start", help="Time of the first bar (ISO, UTC)."),
) -> None:
    """Write synthetic bars (GBM with jumps and volatility regimes) into the store."""
    with user_errors():
        import pyarrow.compute as pc

        from quantarena.data.errors import ConflictError
        from quantarena.data.intervals import interval_ns
        from quantarena.data.loaders import normalise_symbol
        from quantarena.data.schema import LoadedData
        from quantarena.data.store import Store
        from quantarena.data.synthetic import synthetic_bars

        name = normalise_symbol(prefix)
        if not name:
            raise ValueError(f"--prefix {prefix!r}: give letters or digits, e.g. --prefix SIM")
        step = interval_ns(interval)
        table = synthetic_bars(symbols, bars, step, start, seed)
        if name != "SYN":
            col = table.schema.get_field_index("symbol")
            renamed = pc.replace_substring_regex(table.column(col), "^SYN", name)
            table = table.set_column(col, "symbol", renamed)
        source = (
            f"synthetic:seed={seed},symbols={symbols},bars={bars},interval={interval},start={start}"
        )
        try:
            report = Store(store).write(LoadedData("bars", table, source, "synthetic", step))
        except ConflictError as exc:
            raise ConflictError(
                exc.reason,
                path=store,
                field=exc.field,
                hint=f"nothing was written; {name}000… already hold other synthetic bars "
                "(another seed or settings): name the new symbols with --prefix (e.g. --prefix "
                f"{'SIM' if name != 'SIM' else 'SIMB'}) or use another --store",
            ) from None
    f = report.files[0]
    _console().print(
        f"synthetic {len(f.symbols)} symbols × {_rows(bars)} {interval} bars (seed {seed}) → {store}: "
        f"{_rows(f.rows_added)} rows added, {_rows(f.rows_present)} already present"
    )
