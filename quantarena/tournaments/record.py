"""An agent's out-of-sample track record, updated round by round.

Recomputing a record from every round's per-bar returns after each round would cost
O(rounds²) over a tournament (a year of weekly 1-minute rounds: 52 re-reads of up to half a
million returns per agent). :class:`TrackRecord` keeps running sums instead — count, mean and
central moments 2-4 merged round by round (Pébay 2008), the equity level and its peak, trade
and trial counts — so each round costs O(its own bars), and gives the numbers of the direct
computation over all returns at once (to ~1e-12 relative, tested).
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

__all__ = ["Moments", "TrackRecord"]

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


class TrackRecord:
    """One agent's OOS record so far; :meth:`add` a round's result, read :meth:`stats`."""

    def __init__(self) -> None:
        self.returns = Moments()
        self.trial_sr = Moments()  # per-period IS Sharpe of every set tried (finite only)
        self.level = 1.0  # equity, compounded from 1
        self.peak = 1.0
        self.max_dd = 0.0
        self.trades = 0.0
        self.wins = 0.0
        self.days = 0.0
        self.n_trials = 0

    def add(self, res: object, periods_per_year: float) -> None:
        """Fold in one round's :class:`~quantarena.tournaments.rounds.RoundResult`."""
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
        ts = res.oos_ts
        if ts.size:
            self.days += float(ts[-1] - ts[0]) / DAY_NS
        if ts.size > 1:  # one bar per round, so a week of 1m bars counts as 7 days
            self.days += float(np.median(np.diff(ts))) / DAY_NS
        self.n_trials += int(res.n_trials)
        sr = np.asarray(res.is_sharpe_all, dtype=np.float64)
        self.trial_sr.merge(Moments.of(sr[np.isfinite(sr)] / math.sqrt(periods_per_year)))

    def sharpe_stats(self) -> SharpeStats | None:
        """Per-period Sharpe, skewness and kurtosis of all OOS returns (None below 3)."""
        mo = self.returns
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
        tr = self.trial_sr
        var_sr = tr.m2 / (tr.n - 1) if tr.n > 1 else 0.0
        if st is not None and np.isfinite(st.sr):
            dsr = float(deflated_sharpe(st, max(self.n_trials, 1), var_sr))
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
            "history_days": float(self.days),
            "n_trials": float(self.n_trials),
            "dsr": dsr,
            "sharpe_pp": float(st.sr) if st is not None else nan,
            "n_obs": float(mo.n),
        }
