"""Performance metrics of a population, from the accumulators the kernels keep online.

Every metric is a ``(P,)`` float64 array on the host. With ``r_t`` the per-bar simple
return (``r_t = E_t / E_{t-1} - 1``, ``E_{-1} = init_cash``), ``n`` the number of bars,
``ppy`` the bars per year of the market's trading calendar
(:func:`quantarena.data.calendars.bars_per_year`: 525,600 one-minute bars for 24/7 crypto,
98,280 on the NYSE, 252 daily NYSE bars) and ``years = n / ppy``:

==========================  ==============================================================
total_return                ``E_T / init_cash - 1``
cagr                        ``(E_T / init_cash) ** (1 / years) - 1`` (``-1`` if ``E_T <= 0``)
volatility                  ``std(r, ddof=1) * sqrt(ppy)``
sharpe                      ``mean(r) / std(r, ddof=1) * sqrt(ppy)``, risk-free rate 0
sortino                     ``mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(ppy)`` — quantstats'
                            definition (downside deviation over *all* bars, target 0)
max_drawdown                ``max_t (1 - E_t / max_{s<=t} E_s)``, a positive fraction (0.23 =
                            23 %); the running peak starts at ``init_cash``
max_drawdown_duration       longest run of bars spent below the running peak, in days
                            (``bars * interval / 1 day``); a run not yet recovered counts
calmar                      ``cagr / max_drawdown``
win_rate                    winning closed trades / closed trades (win: pnl > 0)
profit_factor               gross profit / gross loss of closed trades (``inf`` if no loss)
expectancy                  mean return of closed trades (trade pnl / entry notional)
n_trades                    closed trades (a trade runs from opening a position in an asset
                            until it is closed or flipped; adds and partial exits stay in it)
exposure                    fraction of bars ending with a non-zero position in any asset
turnover                    sum over fills of traded notional / equity (1.0 = the whole
                            equity traded once; a round trip at weight 1 is 2.0)
turnover_annual             ``turnover / years``
end_equity                  ``E_T``
fees_paid, funding_paid     cash paid in commissions and funding (funding < 0: received)
==========================  ==============================================================

A ratio whose denominator is 0 (no variance, no downside, no drawdown, no trades) is NaN,
except profit_factor, which is ``inf`` with profit and no loss (as vectorbt reports it).
"""

from __future__ import annotations

import numpy as np

from quantarena.engine import layout as L

METRIC_NAMES: tuple[str, ...] = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "win_rate",
    "profit_factor",
    "expectancy",
    "n_trades",
    "exposure",
    "turnover",
    "turnover_annual",
    "end_equity",
    "fees_paid",
    "funding_paid",
)

NS_PER_DAY = 86_400_000_000_000


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    ok = den != 0
    np.divide(num, den, out=out, where=ok)
    return out


def metrics_from_state(
    S: np.ndarray,
    *,
    n_bars: int,
    interval_ns: int,
    init_cash: float,
    periods_per_year: float,
) -> dict[str, np.ndarray]:
    """The metrics of every parameter set from the host copy of the state ``S`` ``(NS, P)``."""
    n = float(n_bars)
    years = n / float(periods_per_year)  # the calendar's year: 252 daily bars on XNYS
    ann = np.sqrt(periods_per_year)
    end = S[L.EQ_PREV]
    growth = end / init_cash
    total_return = growth - 1.0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cagr = np.where(growth > 0, np.power(np.maximum(growth, 0.0), 1.0 / years) - 1.0, -1.0)
        mean = S[L.SUM_R] / n
        if n > 1:
            var = (S[L.SUM_R2] - S[L.SUM_R] * S[L.SUM_R] / n) / (n - 1.0)
        else:
            var = np.full_like(mean, np.nan)
        std = np.sqrt(np.maximum(var, 0.0))
        down = np.sqrt(S[L.SUM_D2] / n)
        ntr = S[L.NTR]
        gl = S[L.GL]
        gp = S[L.GP]
        pf = np.where(gl > 0, _div(gp, gl), np.where(gp > 0, np.inf, np.nan))
    # close the drawdown episode still open at the end
    open_ep = S[L.TROUGH] < S[L.PEAK]
    max_dd = np.where(
        open_ep, np.maximum(S[L.MAX_DD], 1.0 - S[L.TROUGH] * S[L.INV_PEAK]), S[L.MAX_DD]
    )
    dd_bars = np.where(
        open_ep, np.maximum(S[L.MAX_DD_DUR], (n - 1.0) - S[L.LAST_PEAK_T]), S[L.MAX_DD_DUR]
    )
    return {
        "total_return": total_return,
        "cagr": cagr,
        "volatility": std * ann,
        "sharpe": _div(mean, std) * ann,
        "sortino": _div(mean, down) * ann,
        "calmar": _div(cagr, max_dd),
        "max_drawdown": max_dd,
        "max_drawdown_duration": dd_bars * float(interval_ns) / NS_PER_DAY,
        "win_rate": _div(S[L.WINS], ntr),
        "profit_factor": pf,
        "expectancy": _div(S[L.SUM_TRET], ntr),
        "n_trades": ntr.copy(),
        "exposure": S[L.EXPO] / n,
        "turnover": S[L.TURN].copy(),
        "turnover_annual": S[L.TURN] / years,
        "end_equity": end.copy(),
        "fees_paid": S[L.FEES].copy(),
        "funding_paid": S[L.FUND].copy(),
    }
