"""``quantarena backtest`` and ``quantarena audit``.

Only typer and rich are imported at module level; pandas, numpy, numba and the engine load
inside the commands, and nothing here ever imports Ray, MLflow or torch.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from quantarena.cli import options as opt
from quantarena.cli.errors import user_errors
from quantarena.cli.help import agents_help
from quantarena.cli.quiet import compiling_status

# piped output (tests, logs) gets a wide table instead of rich's 80-column default
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)

SAMPLE_FILE = (
    Path(__file__).resolve().parents[2] / "data" / "sample" / "btc-perp-20211231-20220201_1m.csv"
)


def _parse_params(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise ValueError(
                f"bad --param {item!r}: use name=values, e.g. fast=5:50:5 or slow=50,100"
            )
        if name in out:
            raise ValueError(
                f"--param {name} given twice: put all values in one, e.g. {name}=5,10,20"
            )
        out[name] = value.strip()
    return out


def _bars_source(store: Path | None, file: Path | None, default_sample: bool) -> Path:
    if store is not None and file is not None:
        if not opt.store_from_env(store):
            raise ValueError("give --store or --file, not both")
        store = None  # --file on the command line wins over $QUANTARENA_STORE
    if store is not None:
        if not store.is_dir():
            named = f" (from ${opt.STORE_ENV})" if opt.store_from_env(store) else ""
            raise FileNotFoundError(
                f"store {store}{named} not found: create it with `quantarena data ingest`"
            )
        return store
    if file is not None:
        if not file.is_file():
            raise FileNotFoundError(f"file {file} not found")
        return file
    if default_sample and SAMPLE_FILE.is_file():
        return SAMPLE_FILE
    raise ValueError(
        f"no data: give --store DIR --symbol S (or set {opt.STORE_ENV}), or --file PATH"
    )


def _load_bars(
    src: Path,
    symbol: str | None,
    start: str | None,
    end: str | None,
    interval: str | None,
    format: str,
    map_: list[str] | None,
) -> Any:
    """The bars of a store or a file, with ``--format`` and ``--map`` for a file."""
    from quantarena.engine.api import load_bars_any

    mapping = opt.parse_map(map_)
    if src.is_dir() and (mapping or format != "auto"):
        raise ValueError("--map and --format apply to --file; a store's columns are named already")
    return load_bars_any(src, symbol, start, end, interval, mapping=mapping, format=format)


def _check_backend(backend: str) -> None:
    """Fail before loading data when ``--backend`` cannot be used here."""
    from quantarena.engine.backend import get_backend

    get_backend(backend)


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _pct(v: Any) -> str:
    return "—" if v is None or not math.isfinite(float(v)) else f"{100 * float(v):.2f}%"


def _num(v: Any, fmt: str = ".2f") -> str:
    return "—" if v is None or not math.isfinite(float(v)) else format(float(v), fmt)


def backtest_cmd(
    agent: str = opt.AGENT,
    param: list[str] = typer.Option(
        None, "--param", "-p", help="name=values: 5:50:5 (stop included), 5,10,20 or 7. Repeat."
    ),
    store: Path = opt.STORE,
    symbol: str = opt.SYMBOL,
    file: Path = opt.FILE,
    format: str = opt.FORMAT,
    map_: list[str] = opt.MAP,
    start: str = opt.START,
    end: str = opt.END,
    interval: str = opt.INTERVAL,
    calendar: str = typer.Option(
        "24/7",
        "--calendar",
        help="Trading calendar for annualised figures: 24/7 (crypto) or an exchange code "
        "(XNYS, XLON, ...).",
    ),
    fee_bps: float = opt.FEE_BPS,
    slippage_bps: float = opt.SLIPPAGE_BPS,
    max_position: float = typer.Option(
        None, "--max-position", help="Per-asset weight (0.1 = 10%)."
    ),
    leverage: float = typer.Option(1.0, "--leverage", help="Cap on the sum of |weights|."),
    long_only: bool = typer.Option(False, "--long-only", help="No short positions."),
    init_cash: float = typer.Option(
        1.0,
        "--init-cash",
        help="Starting equity (in the quote currency with --lot-size or "
        "--min-notional, e.g. 10000).",
    ),
    lot_size: float = typer.Option(
        0.0, "--lot-size", help="Exchange lot size in asset units (0.0001 BTC); 0 = off."
    ),
    min_notional: float = typer.Option(
        0.0, "--min-notional", help="Smallest trade in the quote currency (5 USDT); 0 = off."
    ),
    backend: str = typer.Option("auto", "--backend", help="auto | cpu | gpu."),
    fill: str = typer.Option("open", "--fill", help="open (next bar's open) | close (optimistic)."),
    by: str = typer.Option("sharpe", "--by", help="Metric to rank by."),
    top: int = typer.Option(10, "--top", help="Rows to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG of the best equity curves."),
    out: Path = typer.Option(None, "--out", help="Write all results as Parquet."),
) -> None:
    """Backtest a grid of parameter sets of an agent and rank them."""
    with user_errors(), compiling_status():
        if fill not in ("open", "close"):
            raise ValueError(f"--fill must be open or close, got {fill!r}")
        if top < 1:
            raise ValueError(f"--top must be at least 1, got {top}")
        specs = _parse_params(param)
        src = _bars_source(store, file, default_sample=False)
        _check_backend(backend)
        from quantarena.strategies.registry import get_agent_class

        if getattr(get_agent_class(agent), "tick", False):
            if store is None or symbol is None:
                raise ValueError(
                    f"agent {agent!r} trades on ticks: give --store DIR --symbol SYM "
                    "(a store with the symbol's trades and quotes)"
                )
            _tick_backtest(agent, specs, store, symbol, start, end, interval, calendar, by, top,
                           as_json)  # fmt: skip
            return
        bars = _load_bars(src, symbol, start, end, interval, format, map_)

        from quantarena.backtest import backtest
        from quantarena.engine.filters import ExchangeFilters

        filters = None
        if lot_size or min_notional:
            filters = ExchangeFilters(lot_size=lot_size, min_notional=min_notional)
        costs = opt.costs_from_options(fee_bps, slippage_bps)
        opts: dict[str, Any] = {"long_only": True} if long_only else {}
        t0 = time.perf_counter()
        res = backtest(
            bars,
            agent,
            specs,
            costs,
            backend=backend,
            fill=fill,
            max_position=max_position,
            leverage=leverage,
            calendar=calendar,
            record=(),
            init_cash=init_cash,
            filters=filters,
            **opts,
        )
        elapsed = time.perf_counter() - t0
        best = res.best(top, by)
        if out is not None:
            res.to_parquet(out)
        if plot is not None:
            res.plot(plot, top=min(top, 5), by=by)
    names = list(res.params)
    if as_json:
        rows = []
        for rank, (i, row) in enumerate(best.iterrows(), start=1):
            rows.append(
                {
                    "rank": rank,
                    "param_set": int(i),
                    "params": res.param_set(int(i)),
                    "metrics": {k: _jsonable(v) for k, v in row.items() if k not in names},
                }
            )
        doc = {
            "agent": res.agent.name,
            "symbols": res.bars.symbols,
            "n_bars": res.bars.n_bars,
            "n_params": res.n_params,
            "backend": res.sim.backend,
            "by": by,
            "calendar": calendar,
            "elapsed_s": round(elapsed, 4),
            "costs": costs.describe(),
            **{k: costs.as_dict()[k] for k in ("fee_bps", "slippage_bps")},
            "max_position": res.agent.max_position,
            "top": rows,
            "out": str(out) if out else None,
            "plot": str(plot) if plot else None,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    title = (
        f"{res.agent.name} on {','.join(res.bars.symbols)}: {res.n_params} parameter sets × "
        f"{res.bars.n_bars:,} bars in {elapsed:.2f} s ({res.sim.backend}), best by {by}; "
        f"costs: {costs.describe()}"
    )
    table = Table(title=title, title_justify="left")
    for col in ("rank", "params", "sharpe", "total return", "CAGR", "max DD", "win rate", "trades"):
        table.add_column(
            col, justify="left" if col == "params" else "right", no_wrap=col == "params"
        )
    for rank, (i, row) in enumerate(best.iterrows(), start=1):
        ptxt = " ".join(f"{k}={v}" for k, v in res.param_set(int(i)).items())
        table.add_row(
            str(rank),
            ptxt,
            _num(row["sharpe"]),
            _pct(row["total_return"]),
            _pct(row["cagr"]),
            _pct(row["max_drawdown"]),
            _pct(row["win_rate"]),
            _num(row["n_trades"], ".0f"),
        )
    console.print(table)
    if out is not None:
        console.print(f"results: {out.resolve()}")
    if plot is not None:
        console.print(f"plot: {plot.resolve()}")


def _tick_backtest(
    agent: str,
    specs: dict[str, str],
    store: Path,
    symbol: str,
    start: str | None,
    end: str | None,
    interval: str | None,
    calendar: str,
    by: str,
    top: int,
    as_json: bool,
) -> None:
    """``backtest`` for a tick agent (market making, arbitrage): the tick simulator."""
    from quantarena.tick_backtest import tick_backtest

    res = tick_backtest(
        store, agent, specs, symbol=symbol, start=start, end=end, interval=interval or "1m",
        calendar=calendar,
    )  # fmt: skip
    best = res.best(top, by)
    names = list(res.params)
    evs = res.events if isinstance(res.events, list) else [res.events]
    n_ev, n_bars = sum(len(e) for e in evs), len(res.bar_ts)
    if as_json:
        rows = [
            {
                "rank": rank,
                "param_set": int(i),
                "params": res.param_set(int(i)),
                "metrics": {k: _jsonable(v) for k, v in row.items() if k not in names},
            }
            for rank, (i, row) in enumerate(best.iterrows(), start=1)
        ]
        doc = {
            "agent": res.agent.name,
            "symbols": symbol.split(","),
            "n_events": n_ev,
            "n_bars": n_bars,
            "n_params": res.n_params,
            "backend": "cpu",
            "by": by,
            "calendar": calendar,
            "elapsed_s": round(res.elapsed_s, 4),
            "venue": res.venue,
            "top": rows,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    title = (
        f"{res.agent.name} on {symbol}: {res.n_params} parameter sets × {n_ev:,} events "
        f"({n_bars:,} bars) in {res.elapsed_s:.2f} s (cpu, tick simulator), best by {by}; "
        f"venue: {res.venue}"
    )
    table = Table(title=title, title_justify="left")
    cols = ("rank", "params", "sharpe", "total return", "max DD", "fills", "maker %", "peak inv")
    for col in cols:
        table.add_column(col, justify="left" if col == "params" else "right", no_wrap=True)
    for rank, (i, row) in enumerate(best.iterrows(), start=1):
        ptxt = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in res.param_set(int(i)).items())  # fmt: skip
        table.add_row(
            str(rank),
            ptxt,
            _num(row["sharpe"]),
            _pct(row["total_return"]),
            _pct(row["max_drawdown"]),
            _num(row["n_fills"], ".0f"),
            _pct(row["maker_share"]),
            _num(row["peak_inventory"], ".4g"),
        )
    console.print(table)


def audit_cmd(
    agent: list[str] = typer.Option(
        None, "--agent", "-a", help=agents_help("Agents to audit (repeat; default: all but ml)")
    ),
    param: list[str] = typer.Option(None, "--param", "-p", help="name=values, as for backtest."),
    store: Path = opt.STORE,
    symbol: str = opt.SYMBOL,
    file: Path = typer.Option(None, "--file", help="A data file (default: bundled sample)."),
    format: str = opt.FORMAT,
    map_: list[str] = opt.MAP,
    start: str = typer.Option(None, "--start", help="First bar time (ISO, UTC)."),
    end: str = opt.END,
    cuts: int = typer.Option(6, "--cuts", help="Number of cut points."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cut points and random walks."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Check agents for look-ahead: weights up to bar t must not depend on later bars.

    Exit code 1 if any agent fails."""
    with user_errors(), compiling_status():
        if cuts < 1:
            raise ValueError(f"--cuts must be at least 1, got {cuts}")
        specs = _parse_params(param)
        src = _bars_source(store, file, default_sample=True)

        from quantarena.strategies.audit import audit
        from quantarena.strategies.registry import list_agents

        names = list(agent or ["all"])
        if "all" in names:
            # "all" = the array agents; the ML agent trains models at every audit cut, so it
            # is audited when named (`--agent ml`), not in the quick sweep
            # tick agents (market making, arbitrage) have no bar weights to audit
            from quantarena.strategies.registry import get_agent_class

            bar_agents = [
                a
                for a in list_agents()
                if a != "ml" and not getattr(get_agent_class(a), "tick", False)
            ]
            names = [n for n in names if n != "all"] + bar_agents
        bars = _load_bars(src, symbol, start, end, None, format, map_)
        results = [audit(n, bars, specs or None, n_cuts=cuts, seed=seed) for n in names]
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        k: _jsonable(v) if not isinstance(v, list | dict) else v
                        for k, v in r.to_dict().items()
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    else:
        table = Table(
            title=f"look-ahead audit on {','.join(bars.symbols)} ({bars.n_bars:,} bars)",
            title_justify="left",
        )
        for col in ("agent", "verdict", "sets", "detail"):
            table.add_column(col)
        for r in results:
            verdict = "[green]PASS[/]" if r.passed else "[bold red]FAIL[/]"
            detail = (
                f"{', '.join(r.checks)} ({len(r.cuts)} cuts)"
                if r.passed
                else r.message().split(" — ", 1)[1]
            )
            table.add_row(r.agent, verdict, str(r.n_params), detail)
        console.print(table)
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``backtest`` and ``audit`` commands to the root app."""
    app.command("backtest", help="Backtest a grid of parameter sets of an agent and rank them.")(
        backtest_cmd
    )
    app.command("audit", help="Check agents for look-ahead (exit 1 on a failure).")(audit_cmd)
