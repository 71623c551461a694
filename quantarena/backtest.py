"""``quantarena.backtest``: one call from bars and an agent to a ranked table of parameter sets.

Example::

    import quantarena as qa

    res = qa.backtest("data/sample/btc-perp-20211231-20220201_1m.csv", "momentum",
                      {"fast": "5:50:5", "slow": "50:200:10"},
                      costs=qa.Costs(fees=qa.Fees(taker_bps=5)))  # default: qa.DEFAULT_COSTS
    res.best(5)                 # top 5 parameter sets by Sharpe
    res.equity()                # equity curve of the best set (pandas Series, UTC index)
    res.plot("best.png")        # equity curves of the top 5 + drawdown panel
    res.to_parquet("results.parquet")

Conventions are the engine's (:mod:`quantarena.engine.simulate`): target weights decided at
the close of bar t fill at the open of bar t+1 (``fill="open"``), equity starts at 1.0 and
is marked at each close, metrics are annualised with a 365-day year from the bar interval.
The agent's ``max_position`` (default 0.10 of equity per asset) is both the size of its
signals and the engine's cap; pass ``max_position=`` to change both. The replay itself is
:func:`quantarena.strategies.runner.run_population`, the same path tuning and tournaments use.

This module is a facade above the agents and the engine. It is callable:
``quantarena.backtest(...)`` and ``quantarena.backtest.backtest(...)`` are the same call.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from quantarena.data.panel import BarPanel
from quantarena.engine.api import load_bars_any
from quantarena.engine.costs import DEFAULT_COSTS
from quantarena.engine.filters import ExchangeFilters
from quantarena.engine.metrics import higher_is_better
from quantarena.strategies import params as P
from quantarena.strategies.base import Agent
from quantarena.strategies.registry import get_agent
from quantarena.strategies.runner import PopulationRun

if TYPE_CHECKING:
    from quantarena.engine.costs import Costs
    from quantarena.engine.simulate import SimResult
    from quantarena.engine.stops import Stops

__all__ = ["AUTO_RECORD_CELLS", "BacktestResult", "backtest"]

#: record full curves automatically when T * P is at most this many cells
AUTO_RECORD_CELLS = 5_000_000


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
        settings: the replay settings (costs, stops, leverage, fill, ...), to re-run one set.
        init_cash: the starting equity.
    """

    metrics: pd.DataFrame
    params: P.Params
    agent: Agent
    bars: BarPanel
    sim: SimResult
    settings: dict[str, Any] = field(default_factory=dict)
    init_cash: float = 1.0
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
        volatility, turnover and costs: :data:`quantarena.engine.metrics.METRICS`)."""
        if by not in self._metric_names():
            raise ValueError(f"unknown metric {by!r}: use one of {', '.join(self._metric_names())}")
        asc = not higher_is_better(by)
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
            one = PopulationRun(self.agent, self.bars, sub, **self.settings).replay(
                record=("returns", "equity"), init_cash=self.init_cash
            )
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
        for rank, i in enumerate(self.best(top, by).index, start=1):  # named as in the table
            eq = self.equity(int(i))
            label = " ".join(f"{k}={_fmt(v)}" for k, v in self.param_set(int(i)).items())
            ax.plot(eq.index, eq.to_numpy(), lw=1.0, label=f"{rank}. {label}")
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
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator()  # labels that never overlap
        axd.xaxis.set_major_locator(locator)
        axd.xaxis.set_major_formatter(ConciseDateFormatter(locator))
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


def backtest(
    bars: BarPanel | pd.DataFrame | str | Path,
    agent: str | Agent = "momentum",
    params: Mapping[str, Any] | None = None,
    costs: Costs | None = DEFAULT_COSTS,
    *,
    backend: str = "auto",
    fill: str = "open",
    stops: Stops | None = None,
    max_position: float | None = None,
    leverage: float = 1.0,
    record: Sequence[str] | str = "auto",
    symbol: str | None = None,
    periods_per_year: float | None = None,
    calendar: str = "24/7",
    start: Any = None,
    end: Any = None,
    interval: str | None = None,
    grid: bool = True,
    trades: bool = False,
    block: int = 4096,
    init_cash: float = 1.0,
    filters: ExchangeFilters | None = None,
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
        costs: fees, slippage, impact, funding; default
            :data:`~quantarena.engine.costs.DEFAULT_COSTS` (10 bps fee + 2 bps slippage, the
            same as the CLI and a tournament); ``Costs.none()`` or ``None``: free.
        backend: "auto" | "cpu" | "gpu".
        fill: "open" (next bar's open, default) or "close" (optimistic, comparison only).
        stops: stop-loss / take-profit / trailing (fractions).
        max_position: per-asset cap and signal size (None: the agent's, default 0.10).
        leverage: cap on the sum of |weights| per bar.
        record: curves to keep in memory ("returns", "equity"); "auto" keeps both when
            bars × sets <= 5 million, else none (``equity(i)`` then re-simulates set ``i``).
        symbol: which symbol(s) of a file or store.
        periods_per_year: bars per year for annualised figures and CAGR (default: from
            ``calendar`` and the bar interval).
        calendar: the market's trading calendar: ``"24/7"`` (crypto) or an exchange code such
            as ``"XNYS"`` (1-minute NYSE bars: 98,280 a year; see
            :mod:`quantarena.data.calendars`).
        start, end: keep bars with ``start <= ts < end``.
        trades: also build the trade list (``result.trades``, a DataFrame; a second pass).
        init_cash: starting equity, in the quote currency when ``filters`` are given.
        filters: the exchange's lot size and minimum notional
            (:class:`~quantarena.engine.filters.ExchangeFilters`; None: none).
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
        "calendar": calendar,
        "block": block,
        "filters": filters,
    }
    sim = PopulationRun(ag, panel, pop, **settings).replay(
        record=tuple(record), trades=trades, init_cash=init_cash
    )
    mf = sim.metrics_frame()
    cols = {k: (v if v.dtype.kind in "if" else v.astype(str)) for k, v in pop.items()}
    table = pd.concat([pd.DataFrame(cols, index=mf.index), mf], axis=1)
    table.index.name = "param_set"
    return BacktestResult(
        metrics=table,
        params=pop,
        agent=ag,
        bars=panel,
        sim=sim,
        settings=settings,
        init_cash=float(init_cash),
    )


class _CallableModule(types.ModuleType):
    """``quantarena.backtest`` is this module once imported; calling it calls
    :func:`backtest` (so ``qa.backtest(...)`` works whichever of the two it names)."""

    def __call__(self, *args: Any, **kwargs: Any) -> BacktestResult:
        return backtest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
