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

from dataclasses import dataclass

import numpy as np

from quantarena.engine import layout as L


@dataclass(frozen=True)
class Metric:
    """What a metric means to a ranking: its direction and unit (the formula is in the table
    above and in :func:`metrics_from_state`).

    Attributes:
        name: the key in the engine's metrics.
        higher_is_better: True when a larger value is better (Sharpe), False when a smaller
            one is (drawdown, costs, turnover).
        unit: ``"ratio"`` (dimensionless, annualised where the table says so), ``"fraction"``
            (0.23 = 23 %), ``"days"``, ``"count"``, ``"per_year"`` or ``"cash"`` (in units of
            ``init_cash``).
    """

    name: str
    higher_is_better: bool
    unit: str

    @property
    def direction(self) -> str:
        """``"maximize"`` or ``"minimize"`` (Optuna's words)."""
        return "maximize" if self.higher_is_better else "minimize"


def _m(name: str, higher_is_better: bool, unit: str) -> tuple[str, Metric]:
    return name, Metric(name, higher_is_better, unit)


#: every metric the engine emits, in its output order: name -> :class:`Metric`. The one place
#: where a metric's direction is defined; rankings, tuning, selection and sorting read it.
METRICS: dict[str, Metric] = dict(
    (
        _m("total_return", True, "fraction"),
        _m("cagr", True, "fraction"),
        _m("volatility", False, "ratio"),
        _m("sharpe", True, "ratio"),
        _m("sortino", True, "ratio"),
        _m("calmar", True, "ratio"),
        _m("max_drawdown", False, "fraction"),
        _m("max_drawdown_duration", False, "days"),
        _m("win_rate", True, "fraction"),
        _m("profit_factor", True, "ratio"),
        _m("expectancy", True, "fraction"),
        _m("n_trades", True, "count"),
        _m("exposure", True, "fraction"),
        _m("turnover", False, "ratio"),
        _m("turnover_annual", False, "per_year"),
        _m("end_equity", True, "cash"),
        _m("fees_paid", False, "cash"),
        _m("funding_paid", False, "cash"),
    )
)

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)

#: the engine's metrics where a smaller value is better (derived from :data:`METRICS`)
LOWER_IS_BETTER: frozenset[str] = frozenset(k for k, m in METRICS.items() if not m.higher_is_better)


def higher_is_better(name: str, extra: dict[str, bool] | None = None) -> bool:
    """Whether a larger value of metric ``name`` is better. ``extra`` adds directions of
    metrics computed outside the engine (e.g. ``{"deflated_sharpe": True}``); an unknown
    name raises ``ValueError`` listing the known ones."""
    if extra and name in extra:
        return bool(extra[name])
    m = METRICS.get(name)
    if m is None:
        known = sorted({*METRICS, *(extra or {})})
        raise ValueError(f"unknown metric {name!r}: use one of {', '.join(known)}")
    return m.higher_is_better


def direction(name: str, extra: dict[str, bool] | None = None) -> str:
    """``"maximize"`` or ``"minimize"`` for metric ``name`` (see :func:`higher_is_better`)."""
    return "maximize" if higher_is_better(name, extra) else "minimize"


def score(values: np.ndarray, name: str, extra: dict[str, bool] | None = None) -> np.ndarray:
    """``values`` of metric ``name`` turned so that larger is better, NaN/inf-free: the
    negated values for a lower-is-better metric, and ``-inf`` for non-finite values (so NaN
    never wins an ``argmax``). float64, same shape."""
    v = np.asarray(values, dtype=np.float64)
    s = v if higher_is_better(name, extra) else -v
    return np.where(np.isfinite(s), s, -np.inf)


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
    init_cash: float | np.ndarray,
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
