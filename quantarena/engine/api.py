"""``quantarena.backtest``: one call from bars and an agent to a ranked table of parameter sets.

Example::

    import quantarena as qa

    res = qa.backtest("data/sample/btc-perp-20211231-20220201_1m.csv", "momentum",
                      {"fast": "5:50:5", "slow": "50:200:10"},
                      costs=Costs(fees=Fees(taker_bps=10)))
    res.best(5)                 # top 5 parameter sets by Sharpe
    res.equity()                # equity curve of the best set (pandas Series, UTC index)
    res.plot("best.png")        # equity curves of the top 5 + drawdown panel
    res.to_parquet("results.parquet")

Conventions are the engine's (:mod:`quantarena.engine.simulate`): target weights decided at
the close of bar t fill at the open of bar t+1 (``fill="open"``), equity starts at 1.0 and
is marked at each close, metrics are annualised with a 365-day year from the bar interval.
The agent's ``max_position`` (default 0.10 of equity per asset) is both the size of its
signals and the engine's cap; pass ``max_position=`` to change both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from quantarena.data.panel import BarPanel
from quantarena.strategies import params as P
from quantarena.strategies.base import Agent
from quantarena.strategies.registry import get_agent

if TYPE_CHECKING:
    from quantarena.engine.costs import Costs
    from quantarena.engine.simulate import SimResult
    from quantarena.engine.stops import Stops

#: metrics where a smaller value ranks higher in :meth:`BacktestResult.best`
LOWER_IS_BETTER = frozenset(
    {
        "max_drawdown",
        "max_drawdown_duration",
        "volatility",
        "fees_paid",
        "turnover",
        "turnover_annual",
        "funding_paid",
    }
)
#: record full curves automatically when T * P is at most this many cells
AUTO_RECORD_CELLS = 5_000_000

_TIME_COLUMNS = ("ts", "timestamp", "time", "date", "datetime", "open_time")


# ------------------------------------------------------------------------------ bars input


def _panel_from_frame(df: pd.DataFrame, symbol: str | None) -> BarPanel:
    frame = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"bars DataFrame lacks column {missing[0]!r}: it needs open, high, low, close "
            "(and volume) with a DatetimeIndex or a ts/timestamp column"
        )
    if "symbol" in frame.columns:
        syms = sorted(frame["symbol"].astype(str).unique())
        if len(syms) > 1:
            if symbol is None:
                raise ValueError(f"the bars hold symbols {', '.join(syms)}: pass symbol=")
            frame = frame[frame["symbol"].astype(str) == symbol]
            if frame.empty:
                raise ValueError(
                    f"symbol {symbol!r} not in the bars: choose from {', '.join(syms)}"
                )
    if "ts" in frame.columns and np.issubdtype(frame["ts"].dtype, np.integer):
        ts = frame["ts"].to_numpy(np.int64)
    else:
        tcol = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
        if tcol is not None:
            idx = pd.DatetimeIndex(pd.to_datetime(frame[tcol], utc=True))
        elif isinstance(frame.index, pd.DatetimeIndex):
            idx = frame.index
            idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        else:
            raise ValueError(
                "bars DataFrame has no time: give it a DatetimeIndex or a ts/timestamp column"
            )
        ts = idx.as_unit("ns").asi8
    order = np.argsort(ts, kind="stable")
    if not np.array_equal(order, np.arange(ts.size)):
        frame = frame.iloc[order]
        ts = ts[order]
    if ts.size > 1 and (np.diff(ts) <= 0).any():
        i = int(np.flatnonzero(np.diff(ts) <= 0)[0]) + 1
        raise ValueError(f"bars DataFrame row {i}: duplicate timestamp — drop duplicates first")
    out = frame.assign(ts=ts)[
        ["ts", "open", "high", "low", "close"] + (["volume"] if "volume" in frame.columns else [])
    ]
    name = symbol or (str(frame["symbol"].iloc[0]) if "symbol" in frame.columns else "ASSET")
    return BarPanel.from_frame(out.reset_index(drop=True), symbol=name)


def _norm_symbol(s: str) -> str:
    return "".join(ch for ch in s.upper() if ch.isalnum())


def _panel_from_file(
    path: Path,
    symbol: str | None,
    interval: str | None = None,
    *,
    mapping: dict[str, str] | None = None,
    format: str = "auto",
) -> BarPanel:
    from quantarena.data.errors import DataError
    from quantarena.data.intervals import interval_ns, interval_str
    from quantarena.data.loaders import load_file
    from quantarena.data.read import align, resample_columns

    try:
        loaded = load_file(path, format, mapping=mapping)
    except DataError as exc:
        if getattr(exc, "field", None) != "symbol":
            raise
        # a file that names no symbol: use the one given, else the file's stem
        loaded = load_file(
            path, format, mapping=mapping, symbol=_norm_symbol(symbol or path.stem) or "ASSET"
        )
        symbol = None
    if loaded.kind != "bars":
        raise ValueError(f"{path}: holds {loaded.kind}, not bars — make bars from it first")
    table = loaded.table
    syms = loaded.symbols
    if symbol is not None and len(syms) > 1:
        match = [s for s in syms if _norm_symbol(s) == _norm_symbol(symbol)]
        if not match:
            raise ValueError(
                f"{path}: symbol {symbol!r} not in the file: it holds {', '.join(syms)}"
            )
        syms = match
    import pyarrow.compute as pc

    per = []
    for s in syms:
        sub = table.filter(pc.equal(table.column("symbol"), s))
        per.append(
            {
                k: sub.column(k)
                .to_numpy(zero_copy_only=False)
                .astype(np.int64 if k == "ts" else np.float64)
                for k in ("ts", "open", "high", "low", "close", "volume")
            }
        )
    step = loaded.interval_ns
    if step is None:
        d = np.diff(per[0]["ts"])
        step = int(np.median(d)) if d.size else 60_000_000_000
    step = int(step)
    if interval is not None and interval_ns(interval) != step:
        # the same resampling as a store read: whole multiples of the file's interval only
        target = interval_ns(interval)
        if target % step:
            raise ValueError(
                f"cannot make {interval_str(target)} bars from {path.name}: it holds "
                f"{interval_str(step)} bars (resampling goes only to whole multiples of them)"
            )
        per = [resample_columns(p, step, target) for p in per]
        step = target
    return align(per, syms, step)


def load_bars_any(
    bars: BarPanel | pd.DataFrame | str | Path,
    symbol: str | None = None,
    start: Any = None,
    end: Any = None,
    interval: str | None = None,
    *,
    mapping: dict[str, str] | None = None,
    format: str = "auto",
) -> BarPanel:
    """A :class:`BarPanel` from a panel, a DataFrame (OHLCV with a DatetimeIndex or a
    ts/timestamp column), a data file (any layout :func:`~quantarena.data.loaders.load_file`
    reads; ``format`` and the column ``mapping`` as there) or a store directory (``symbol``
    picks the symbols); then cut to ``[start, end)``.

    ``interval`` resamples a store's or a file's bars to a whole multiple of their interval
    (:mod:`quantarena.data.resample`); a panel or DataFrame must already be at it. A range
    without bars raises :class:`~quantarena.data.errors.EmptyRangeError` naming the span
    the data holds."""
    from quantarena.data.read import no_bars_error, timestamp_ns

    holder = "the bars"
    if isinstance(bars, BarPanel):
        panel = bars if symbol is None or bars.n_assets == 1 else bars.asset(symbol)
    elif isinstance(bars, pd.DataFrame):
        panel = _panel_from_frame(bars, symbol)
    elif isinstance(bars, str | Path):
        path = Path(bars)
        if path.is_dir():
            from quantarena.data.read import load_bars

            syms = None if symbol is None else [s.strip() for s in symbol.split(",")]
            return load_bars(path, syms, start, end, interval)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or store directory")
        panel = _panel_from_file(path, symbol, interval, mapping=mapping, format=format)
        holder = f"the file {path.name}"
    else:
        raise ValueError(
            f"bars must be a BarPanel, a DataFrame, a file or a store path, not {type(bars).__name__}"
        )
    if interval is not None:
        from quantarena.data.intervals import interval_ns

        if interval_ns(interval) != panel.interval_ns:
            raise ValueError(
                f"interval {interval!r}: the bars are {panel.interval_ns // 10**9}s bars; "
                "resample them (quantarena.data.resample) or ingest them into a store"
            )
    whole = panel
    lo, hi = timestamp_ns(start), timestamp_ns(end)
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"end ({end}) must come after start ({start})")
    if lo is not None or hi is not None:
        panel = panel.between(lo, hi)
    if panel.n_bars == 0:
        first = int(whole.ts[0]) if whole.n_bars else None
        last = int(whole.ts[-1]) if whole.n_bars else None
        raise no_bars_error(list(panel.symbols), lo, hi, first, last, holder)
    return panel


# ------------------------------------------------------------------------------ the result


@dataclass
class BacktestResult:
    """What :func:`backtest` returns.

    Attributes:
        metrics: one row per parameter set (index 0..P-1): the parameter columns, then the
            engine's metrics (:mod:`quantarena.engine.metrics`).
        params: the population, name -> (P,) array.
        agent: the agent (with its ``max_position``).
        bars: the panel that was replayed.
        sim: the engine's :class:`~quantarena.engine.simulate.SimResult`.
    """

    metrics: pd.DataFrame
    params: P.Params
    agent: Agent
    bars: BarPanel
    sim: SimResult
    settings: dict[str, Any] = field(default_factory=dict)
    _cache: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def trades(self) -> pd.DataFrame | None:
        """The trade list (``backtest(..., trades=True)``), else None: columns param, asset,
        entry_ts, exit_ts, direction, size, entry_price, exit_price, pnl, return, exit_reason."""
        return self.sim.trades

    @property
    def n_params(self) -> int:
        return P.n_params(self.params)

    def __len__(self) -> int:
        return self.n_params

    def ranked(self, by: str = "sharpe") -> pd.DataFrame:
        """All rows sorted best first by ``by`` (NaN last; smaller is better for drawdown,
        volatility, turnover and costs)."""
        if by not in self.metrics.columns:
            raise ValueError(f"unknown metric {by!r}: use one of {', '.join(self._metric_names())}")
        asc = by in LOWER_IS_BETTER
        return self.metrics.sort_values(by, ascending=asc, na_position="last", kind="stable")

    def best(self, n: int = 1, by: str = "sharpe") -> pd.DataFrame:
        """The ``n`` best parameter sets by ``by`` (a DataFrame, index = parameter set)."""
        return self.ranked(by).head(int(n))

    def best_index(self, by: str = "sharpe") -> int:
        return int(self.ranked(by).index[0])

    def param_set(self, i: int) -> dict[str, Any]:
        """The parameters of set ``i`` as plain Python values."""
        self._check_index(i)
        return {k: np.asarray(v)[i].item() for k, v in self.params.items()}

    def _metric_names(self) -> list[str]:
        return [c for c in self.metrics.columns if c not in self.params]

    def _check_index(self, i: int) -> None:
        if not 0 <= int(i) < self.n_params:
            raise IndexError(f"parameter set {i} out of range: there are {self.n_params}")

    def _curves(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(returns, equity) of set ``i``: from the recorded arrays, else re-simulated for
        that one set (identical numbers: the engine treats sets independently)."""
        from quantarena.engine.backend import to_host

        self._check_index(i)
        if self.sim.returns is not None and self.sim.equity is not None:
            return to_host(self.sim.returns[:, i]), to_host(self.sim.equity[:, i])
        if i not in self._cache:
            sub = P.take(self.params, [i])
            one = _run(self.agent, self.bars, sub, record=("returns", "equity"), **self.settings)
            self._cache[i] = (to_host(one.returns[:, 0]), to_host(one.equity[:, 0]))
        return self._cache[i]

    def _index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self.bars.ts, unit="ns", utc=True), name="ts")

    def equity(self, i: int | None = None) -> pd.Series:
        """Equity curve of set ``i`` (default: the best by Sharpe), marked at each bar's
        close, starting from ``init_cash``; UTC DatetimeIndex of bar open times."""
        i = self.best_index() if i is None else int(i)
        return pd.Series(self._curves(i)[1], index=self._index(), name=f"equity[{i}]")

    def returns(self, i: int | None = None) -> pd.Series:
        """Per-bar simple returns of set ``i`` (default: the best by Sharpe)."""
        i = self.best_index() if i is None else int(i)
        return pd.Series(self._curves(i)[0], index=self._index(), name=f"returns[{i}]")

    def plot(self, path: str | Path, top: int = 5, by: str = "sharpe") -> Path:
        """Write a PNG: equity curves of the ``top`` sets by ``by`` and their drawdowns."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path)
        fig = Figure(figsize=(11, 7), dpi=110)
        FigureCanvasAgg(fig)
        ax, axd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        for i in self.best(top, by).index:
            eq = self.equity(int(i))
            label = ", ".join(f"{k}={_fmt(v)}" for k, v in self.param_set(int(i)).items())
            ax.plot(eq.index, eq.to_numpy(), lw=1.0, label=f"#{i} {label}")
            dd = eq.to_numpy() / np.maximum.accumulate(eq.to_numpy()) - 1.0
            axd.plot(eq.index, 100 * dd, lw=0.8)
        name = self.agent.name or type(self.agent).__name__
        sym = ",".join(self.bars.symbols)
        ax.set_title(f"{name} on {sym}: top {min(top, self.n_params)} by {by}")
        ax.set_ylabel("equity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        axd.set_ylabel("drawdown %")
        axd.grid(alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
        return path

    def to_parquet(self, path: str | Path) -> Path:
        """Write :attr:`metrics` (parameters + metrics, one row per set) as Parquet,
        atomically (temp file then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        df = self.metrics.reset_index()
        df.attrs = {}
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------------------ backtest


def _run(
    agent: Agent,
    bars: BarPanel,
    params: P.Params,
    *,
    record: Sequence[str],
    trades: bool = False,
    **settings: Any,
) -> SimResult:
    from quantarena.engine.backend import get_backend
    from quantarena.engine.simulate import simulate

    be = get_backend(settings.get("backend", "auto"))
    source = agent.source(bars, params, be.xp)
    return simulate(
        bars,
        source,
        record=record,
        trades=trades,
        max_position=agent.max_position,
        **{**settings, "backend": be},
    )


def backtest(
    bars: BarPanel | pd.DataFrame | str | Path,
    agent: str | Agent = "momentum",
    params: Mapping[str, Any] | None = None,
    costs: Costs | None = None,
    *,
    backend: str = "auto",
    fill: str = "open",
    stops: Stops | None = None,
    max_position: float | None = None,
    leverage: float = 1.0,
    record: Sequence[str] | str = "auto",
    symbol: str | None = None,
    periods_per_year: float | None = None,
    start: Any = None,
    end: Any = None,
    interval: str | None = None,
    grid: bool = True,
    trades: bool = False,
    block: int = 4096,
    init_cash: float = 1.0,
    **agent_options: Any,
) -> BacktestResult:
    """Backtest every parameter set of ``agent`` on ``bars`` in one vectorised pass.

    Args:
        bars: a :class:`BarPanel`, a DataFrame (OHLCV, DatetimeIndex or ts/timestamp column),
            a data file, or a store directory (with ``symbol``).
        agent: a registered name (``quantarena.strategies.list_agents()``), an import path
            ``"module:Class"`` / ``"file.py:Class"``, or an :class:`Agent`.
        params: name -> values ("5:50:5", list, range, array, scalar); their cartesian grid is
            run (invalid sets such as fast >= slow dropped). None: the agent's default grid.
            With ``grid=False``, equal-length arrays are taken as the population itself.
        costs: fees, slippage, impact, funding (``None``: free).
        backend: "auto" | "cpu" | "gpu".
        fill: "open" (next bar's open, default) or "close" (optimistic, comparison only).
        stops: stop-loss / take-profit / trailing (fractions).
        max_position: per-asset cap and signal size (None: the agent's, default 0.10).
        leverage: cap on the sum of |weights| per bar.
        record: curves to keep in memory ("returns", "equity"); "auto" keeps both when
            bars × sets <= 5 million, else none (``equity(i)`` then re-simulates set ``i``).
        symbol: which symbol(s) of a file or store.
        periods_per_year: annualisation (default: from the bar interval, 365-day year).
        start, end: keep bars with ``start <= ts < end``.
        trades: also build the trade list (``result.trades``, a DataFrame; a second pass).
        **agent_options: passed to the agent's constructor (e.g. ``long_only=True``).
    """
    ag = get_agent(agent, **agent_options)
    if max_position is not None:
        ag = ag.replace(max_position=max_position)
    panel = load_bars_any(bars, symbol, start, end, interval)
    pop = ag.grid(**dict(params or {})) if (grid or params is None) else ag.check_params(params)
    n = P.n_params(pop)
    if record == "auto":
        record = ("returns", "equity") if panel.n_bars * n <= AUTO_RECORD_CELLS else ()
    elif isinstance(record, str):
        record = (record,)
    settings = {
        "costs": costs,
        "backend": backend,
        "fill": fill,
        "stops": stops,
        "leverage": leverage,
        "periods_per_year": periods_per_year,
        "block": block,
        "init_cash": init_cash,
    }
    sim = _run(ag, panel, pop, record=tuple(record), trades=trades, **settings)
    mf = sim.metrics_frame()
    cols = {k: (v if v.dtype.kind in "if" else v.astype(str)) for k, v in pop.items()}
    table = pd.concat([pd.DataFrame(cols, index=mf.index), mf], axis=1)
    table.index.name = "param_set"
    return BacktestResult(
        metrics=table, params=pop, agent=ag, bars=panel, sim=sim, settings=settings
    )
