"""An agent's out-of-sample track record, updated round by round.

Recomputing a record from every round's per-bar returns after each round would cost
O(rounds²) over a tournament (a year of weekly 1-minute rounds: 52 re-reads of up to half a
million returns per agent). :class:`TrackRecord` keeps running sums instead — count, mean and
central moments 2-4 merged round by round (Pébay 2008) of the per-bar and the daily returns,
the mean and variance of every parameter set's daily OOS returns, the equity level and its
peak, the first and last OOS bar times, trade and trial counts — so each round costs O(its
own bars), and gives the numbers of the direct computation over all returns at once (to
~1e-12 relative, tested).
:func:`~quantarena.tournaments.director.agent_record` folds a list of rounds into one.

Conventions as :func:`~quantarena.tournaments.director.agent_record`: per-bar simple returns,
Sharpe annualised with ``sqrt(periods_per_year)`` (ddof=1), drawdowns as positive fractions of
the running peak (starting at 1), skewness and (non-excess) kurtosis as the biased moment
estimators of :func:`~quantarena.tournaments.overfitting.sharpe_stats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from quantarena.tournaments.overfitting import SharpeStats, _safe_sharpe, deflated_sharpe
from quantarena.tournaments.rounds import daily_returns

__all__ = ["ColumnMoments", "Moments", "TrackRecord"]

DAY_NS = 86_400 * 1_000_000_000
_RESOLUTION = float(np.finfo(np.float64).resolution)


@dataclass
class Moments:
    """Count, mean and central moment sums ``M_k = Σ (x - mean)^k`` (k = 2, 3, 4)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """The moments of the values ``x`` (1-D)."""
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return cls()
        mean = float(x.mean())
        d = x - mean
        d2 = d * d
        return cls(
            int(x.size), mean, float(d2.sum()), float((d2 * d).sum()), float((d2 * d2).sum())
        )

    def merge(self, b: Moments) -> None:
        """Add ``b``'s values to these (Pébay's pairwise update, exact in real arithmetic)."""
        if b.n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2, self.m3, self.m4 = b.n, b.mean, b.m2, b.m3, b.m4
            return
        na, nb = float(self.n), float(b.n)
        n = na + nb
        d = b.mean - self.mean
        d_n = d / n
        m2 = self.m2 + b.m2 + d * d_n * na * nb
        m3 = (
            self.m3
            + b.m3
            + d * d_n * d_n * na * nb * (na - nb)
            + 3.0 * d_n * (na * b.m2 - nb * self.m2)
        )
        m4 = (
            self.m4
            + b.m4
            + d * d_n * d_n * d_n * na * nb * (na * na - na * nb + nb * nb)
            + 6.0 * d_n * d_n * (na * na * b.m2 + nb * nb * self.m2)
            + 4.0 * d_n * (na * b.m3 - nb * self.m3)
        )
        self.n = int(n)
        self.mean = self.mean + d_n * nb
        self.m2, self.m3, self.m4 = m2, m3, m4


class ColumnMoments:
    """Count, mean and ``M2`` of each of K columns, merged block by block (Chan et al.)."""

    def __init__(self) -> None:
        self.n = np.zeros(0)
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)

    def merge(self, x: np.ndarray) -> None:
        """Add the rows of ``x`` ``(rows, K)``. With a different K than before, only the
        columns common to both are kept (a column must cover the whole record)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            return
        k = x.shape[1] if self.n.size == 0 else min(self.n.size, x.shape[1])
        if self.n.size == 0:
            self.n, self.mean, self.m2 = np.zeros(k), np.zeros(k), np.zeros(k)
        x = x[:, :k]
        n_a, mean_a, m2_a = self.n[:k], self.mean[:k], self.m2[:k]
        n_b = float(x.shape[0])
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        n = n_a + n_b
        d = mean_b - mean_a
        self.mean = mean_a + d * (n_b / n)
        self.m2 = m2_a + m2_b + d * d * n_a * n_b / n
        self.n = n

    def sharpe(self) -> np.ndarray:
        """Per-period Sharpe (ddof=1) of each column; 0 for a constant zero column."""
        if self.n.size == 0:
            return np.zeros(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(np.maximum(self.m2, 0.0) / (self.n - 1.0))
        return np.where(self.n > 1, _safe_sharpe(self.mean, sd), np.nan)


def _stats_of(mo: Moments) -> SharpeStats | None:
    """Per-period Sharpe, skewness and kurtosis of the values in ``mo`` (None below 3)."""
    if mo.n <= 2:
        return None
    sd = math.sqrt(max(mo.m2, 0.0) / (mo.n - 1))
    sr = float(_safe_sharpe(mo.mean, sd))
    var_b = mo.m2 / mo.n  # biased moments, as scipy.stats.skew / kurtosis(bias=True)
    if var_b <= (_RESOLUTION * mo.mean) ** 2:
        skew = kurt = float("nan")
    else:
        skew = (mo.m3 / mo.n) / var_b**1.5
        kurt = (mo.m4 / mo.n) / var_b**2
    if sr == 0:  # a constant series: the normal moments
        skew, kurt = 0.0, 3.0
    return SharpeStats(sr, mo.n, skew, kurt)


class TrackRecord:
    """One agent's OOS record so far; :meth:`add` a round's result, read :meth:`stats`.

    The deflated Sharpe ratio (``dsr``) is computed on **daily** OOS returns (UTC days,
    compounded from the bars), for the agent and for its population alike:

    * SR, T, γ3, γ4: per-day Sharpe, number of days, skewness and kurtosis of the agent's
      OOS record (the sets it chose, round after round);
    * N: every parameter set the agent tried in sample, summed over the rounds played;
    * V: the variance across the population's sets of the per-day Sharpe of each set's own
      OOS record over the same days (``oos_daily_all``, column by column; with a changing
      number of columns, the columns common to every round).

    So V is measured on the horizon and frequency of the Sharpe it deflates. Using the trial
    Sharpes of the short in-sample windows instead would make V (and SR0) too large by
    about ``T_oos / T_is`` (``√`` of that for SR0) and pin every agent's DSR at 0.
    """

    def __init__(self) -> None:
        self.returns = Moments()
        self.daily = Moments()  # the agent's daily OOS returns
        self.trials = ColumnMoments()  # each set's daily OOS returns
        self.level = 1.0  # equity, compounded from 1
        self.peak = 1.0
        self.max_dd = 0.0
        self.trades = 0.0
        self.wins = 0.0
        self.first_ts: int | None = None  # open of the first OOS bar
        self.end_ts: int | None = None  # end of the last OOS bar
        self.bar_ns = 0
        self.n_trials = 0

    @property
    def days(self) -> float:
        """Calendar days from the first OOS bar's open to the end of the last OOS bar."""
        if self.first_ts is None or self.end_ts is None:
            return 0.0
        return float(self.end_ts - self.first_ts) / DAY_NS

    def add(self, res: object, periods_per_year: float) -> None:
        """Fold in one round's :class:`~quantarena.tournaments.rounds.RoundResult`
        (``periods_per_year`` is unused: the record keeps per-period figures)."""
        r = np.asarray(res.oos_returns, dtype=np.float64)
        self.returns.merge(Moments.of(r))
        if r.size:
            eq = self.level * np.cumprod(1.0 + r)
            peak = np.maximum.accumulate(np.maximum(eq, self.peak))
            self.max_dd = max(self.max_dd, float(np.max(1.0 - eq / peak)))
            self.level = float(eq[-1])
            self.peak = float(peak[-1])
        m = res.oos_metrics
        n_tr = m.get("n_trades", 0.0)
        self.trades += n_tr
        wr = m.get("win_rate", np.nan)
        if np.isfinite(wr):
            self.wins += wr * n_tr
        ts = np.asarray(res.oos_ts, dtype=np.int64)
        if ts.size:
            if ts.size > 1:  # the bar length: the median spacing (a week of 1m bars: 7 days)
                self.bar_ns = int(np.median(np.diff(ts)))
            if self.first_ts is None:
                self.first_ts = int(ts[0])
            self.end_ts = int(ts[-1]) + self.bar_ns
            self.daily.merge(Moments.of(daily_returns(ts, r)))
        self.trials.merge(np.asarray(res.oos_daily_all, dtype=np.float64))
        self.n_trials += int(res.n_trials)

    def sharpe_stats(self) -> SharpeStats | None:
        """Per-bar Sharpe, skewness and kurtosis of all OOS returns (None below 3)."""
        return _stats_of(self.returns)

    def daily_stats(self) -> SharpeStats | None:
        """Per-day Sharpe, skewness and kurtosis of the daily OOS record (None below 3 days)."""
        return _stats_of(self.daily)

    def var_trials_sharpe(self) -> float:
        """V: variance (ddof=1) across the population's sets of their per-day OOS Sharpe."""
        sr = self.trials.sharpe()
        sr = sr[np.isfinite(sr)]
        return float(np.var(sr, ddof=1)) if sr.size > 1 else 0.0

    def stats(self, periods_per_year: float) -> dict[str, float]:
        """The record, with the keys and meaning of
        :func:`~quantarena.tournaments.director.agent_record`."""
        mo = self.returns
        if mo.n == 0:
            sharpe, total, mdd = float("nan"), 0.0, 0.0
        else:
            sd = math.sqrt(max(mo.m2, 0.0) / (mo.n - 1)) if mo.n > 1 else 0.0
            sharpe = mo.mean / sd * math.sqrt(periods_per_year) if sd > 0 else float("nan")
            total, mdd = self.level - 1.0, self.max_dd
        st = self.sharpe_stats()
        var_sr = self.var_trials_sharpe()
        day = self.daily_stats()
        if day is not None and np.isfinite(day.sr):
            dsr = float(deflated_sharpe(day, max(self.n_trials, 1), var_sr))
        else:
            dsr = float("nan")
        nan = float("nan")
        return {
            "total_return": float(total),
            "sharpe": float(sharpe),
            "max_drawdown": float(mdd),
            "skew": float(st.skew) if st is not None else nan,
            "kurt": float(st.kurt) if st is not None else nan,
            "var_trials_sharpe": float(var_sr),
            "win_rate": self.wins / self.trades if self.trades > 0 else nan,
            "n_trades": float(self.trades),
            "history_days": self.days,
            "n_trials": float(self.n_trials),
            "dsr": dsr,
            "sharpe_pp": float(st.sr) if st is not None else nan,
            "n_obs": float(mo.n),
        }
