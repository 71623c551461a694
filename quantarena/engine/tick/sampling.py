"""Tick → bar: a tick replay's equity sampled on a bar clock, and the engine's metrics of it.

Bar ``b`` covers ``[t_b, t_b + I)`` with ``t_b`` on multiples of the interval ``I`` (UTC);
its equity ``E_b`` is ``cash + position × mid`` after the last event before ``t_b + I``
(the bar's close), so a tick agent's curve lives on the same clock as a bar agent's. The
metrics use the bar engine's formulas (:mod:`quantarena.engine.metrics`) on
``r_b = E_b / E_{b−1} − 1`` with ``E_{−1}`` = the starting capital; the trade-based ones
(win rate, profit factor, expectancy) are NaN — a market maker's "trade" is a fill, counted
in ``n_trades``.
"""

from __future__ import annotations

import numpy as np

from quantarena.engine.metrics import NS_PER_DAY, _div

#: metrics a tick replay adds (name -> higher is better)
TICK_METRICS: dict[str, bool] = {
    "n_fills": True,
    "maker_share": True,
    "peak_inventory": False,
    "end_position": False,
}


def bar_closes(ts: np.ndarray, interval_ns: int) -> np.ndarray:
    """Close times ``t_b + I`` of the bars that hold events from ``ts[0]`` to ``ts[-1]``."""
    if ts.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    first = (int(ts[0]) // interval_ns) * interval_ns
    last = (int(ts[-1]) // interval_ns) * interval_ns
    return np.arange(first, last + 1, interval_ns, dtype=np.int64) + interval_ns


def metrics_from_equity(
    equity: np.ndarray, init_cash: float, periods_per_year: float, interval_ns: int
) -> dict[str, np.ndarray]:
    """The engine's metrics of ``(T, P)`` bar equity curves (see the module docstring)."""
    E = np.asarray(equity, dtype=np.float64)
    T, n_par = E.shape
    prev = np.vstack([np.full((1, n_par), init_cash), E[:-1]])
    r = E / prev - 1.0
    n = float(T)
    years = n / periods_per_year
    ann = np.sqrt(periods_per_year)
    growth = E[-1] / init_cash
    peak = np.maximum.accumulate(np.vstack([np.full((1, n_par), init_cash), E]), axis=0)[1:]
    dd = 1.0 - E / peak
    below = dd > 0
    longest = np.zeros(n_par)
    run = np.zeros(n_par)
    for t in range(T):
        run = np.where(below[t], run + 1, 0)
        longest = np.maximum(longest, run)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cagr = np.where(growth > 0, np.power(np.maximum(growth, 0), 1 / years) - 1, -1.0)
        std = r.std(axis=0, ddof=1) if T > 1 else np.full(n_par, np.nan)
        mean = r.mean(axis=0)
        down = np.sqrt(np.mean(np.minimum(r, 0) ** 2, axis=0))
    max_dd = dd.max(axis=0)
    nan = np.full(n_par, np.nan)
    return {
        "total_return": growth - 1.0,
        "cagr": cagr,
        "volatility": std * ann,
        "sharpe": _div(mean, std) * ann,
        "sortino": _div(mean, down) * ann,
        "calmar": _div(cagr, max_dd),
        "max_drawdown": max_dd,
        "max_drawdown_duration": longest * interval_ns / NS_PER_DAY,
        "win_rate": nan,
        "profit_factor": nan.copy(),
        "expectancy": nan.copy(),
        "n_trades": nan.copy(),
        "exposure": nan.copy(),
        "turnover": nan.copy(),
        "turnover_annual": nan.copy(),
        "end_equity": E[-1].copy(),
        "fees_paid": nan.copy(),
        "funding_paid": np.zeros(n_par),
    }
