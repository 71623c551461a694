"""The live director's decisions: rank paper traders, gate them, reallocate paper capital.

Pure (no Redis, Ray or MLflow): :func:`reallocate` takes each agent's **daily equity** on
paper (its unit account marked at the last bar of each UTC day) and returns the leaderboard,
the gate results and the new capital weights. The service (:mod:`.service`) feeds it from
Redis on a schedule (weekly by default) and applies the result.

Conventions:

* daily returns ``r_d = E_d / E_{d-1} - 1`` of the agent's own account (the allocation does
  not change them: capital is a multiplier on the unit account);
* ``sharpe`` = mean / std (ddof=1) of the daily returns × sqrt(365) (crypto trades every day);
  ``max_drawdown`` the largest fall from a running peak of daily equity (positive fraction);
  ``win_rate`` the fraction of days with a positive return among days with a non-zero one;
  ``paper_days`` the days from the first to the last daily mark, plus one;
* gates are the tournament's (:mod:`quantarena.tournaments.gates`), with ``min_paper_days``
  (default 7) binding here: an agent with less than a week of paper trading gets no capital;
  ``min_history_days`` is off (the paper record is the history);
* weights are the tournament's allocator (:func:`quantarena.tournaments.allocation.kelly_weights`,
  fractional Kelly with caps) on the daily paper returns of the last ``estimation_days`` days;
  the capital not allocated stays in cash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantarena.tournaments.allocation import kelly_weights
from quantarena.tournaments.gates import GateConfig, GateStatus, evaluate_gates

__all__ = ["LiveAllocationConfig", "Reallocation", "paper_stats", "reallocate"]

NS_PER_DAY = 86_400_000_000_000

#: the live director's gates: the tournament's, the paper gate binding, no history gate
LIVE_GATES = GateConfig(min_history_days=None, binding=("sharpe", "max_drawdown", "paper"))


@dataclass(frozen=True)
class LiveAllocationConfig:
    """How the live director reallocates.

    Attributes:
        every_days: days of bar time between reallocations (7: weekly).
        capital: the paper capital shared by the agents (quote currency).
        kelly_fraction, shrinkage, cap_per_agent, gross_cap, long_only: the allocator's
            settings (as a tournament's ``allocation`` section).
        estimation_days: trailing days of paper returns used to estimate μ and Σ.
        gates: the gate thresholds (default :data:`LIVE_GATES`).
    """

    every_days: float = 7.0
    capital: float = 1.0
    kelly_fraction: float = 0.5
    shrinkage: str | float = "ledoit-wolf"
    cap_per_agent: float = 0.5
    gross_cap: float = 1.0
    long_only: bool = True
    estimation_days: int = 90
    gates: GateConfig = field(default_factory=lambda: LIVE_GATES)

    def __post_init__(self) -> None:
        if not self.every_days > 0:
            raise ValueError(f"schedule every_days must be > 0, got {self.every_days!r}")
        if not self.capital > 0:
            raise ValueError(f"capital must be > 0, got {self.capital!r}")
        if not 0 < self.kelly_fraction <= 1:
            raise ValueError(
                f"allocation kelly_fraction must be in (0, 1], got {self.kelly_fraction!r}"
            )
        if int(self.estimation_days) < 2:
            raise ValueError("allocation estimation_days must be >= 2")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> LiveAllocationConfig:
        """From a config's ``allocation`` section plus ``gates``; unknown keys are named."""
        d = dict(d or {})
        gates = d.pop("gates", None)
        known = set(cls.__dataclass_fields__) - {"gates"}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(
                f"allocation: unknown key {bad[0]!r}; known: {', '.join(sorted(known))}"
            )
        g = (
            LIVE_GATES
            if gates is None
            else GateConfig(**{**LIVE_GATES.model_dump(), **dict(gates)})
        )
        return cls(**d, gates=g)


@dataclass
class Reallocation:
    """One reallocation: the leaderboard (one row per agent, best first), the gates, the
    weights (fractions of capital) and the capital per agent."""

    day: int
    leaderboard: pd.DataFrame
    gates: dict[str, GateStatus]
    weights: dict[str, float]
    capital: dict[str, float]


def paper_stats(daily_equity: pd.Series) -> dict[str, float]:
    """Statistics of one agent's daily equity marks (index: UTC day number, sorted)."""
    e = pd.Series(daily_equity, dtype=np.float64).sort_index()
    if e.empty:
        return {"sharpe": np.nan, "max_drawdown": np.nan, "win_rate": np.nan,
                "paper_days": None, "total_return": np.nan, "days": 0}  # fmt: skip
    r = e.pct_change().dropna()
    sd = float(r.std(ddof=1)) if len(r) > 1 else np.nan
    sharpe = float(r.mean() / sd * np.sqrt(365.0)) if sd and np.isfinite(sd) and sd > 0 else np.nan
    peak = e.cummax()
    mdd = float((1.0 - e / peak).max())
    moved = r[r != 0.0]
    win = float((moved > 0).mean()) if len(moved) else np.nan
    return {
        "sharpe": sharpe,
        "max_drawdown": mdd,
        "win_rate": win,
        "paper_days": float(e.index[-1] - e.index[0] + 1),
        "total_return": float(e.iloc[-1] / e.iloc[0] - 1.0),
        "days": int(len(e)),
    }


def reallocate(
    daily: Mapping[str, pd.Series], config: LiveAllocationConfig | None = None
) -> Reallocation:
    """Rank, gate and reallocate (see the module docstring).

    Args:
        daily: agent → daily equity marks (index: UTC day number ``ts // 1 day``).
        config: the settings.
    """
    cfg = config or LiveAllocationConfig()
    names = list(daily)
    stats = {n: paper_stats(daily[n]) for n in names}
    gates = evaluate_gates(stats, cfg.gates) if names else {}
    board = pd.DataFrame.from_dict(stats, orient="index")
    day = max((int(pd.Series(s).index.max()) for s in daily.values() if len(s)), default=0)
    if not names:
        return Reallocation(day, board, gates, {}, {})
    eq = pd.DataFrame({n: pd.Series(daily[n], dtype=np.float64) for n in names}).sort_index()
    rets = eq.pct_change().iloc[1:].tail(int(cfg.estimation_days))
    binding = set(cfg.gates.binding)
    elig = np.array(
        [all(r.passed for g, r in gates[n].results.items() if g in binding) for n in names]
    )
    w = kelly_weights(
        rets.to_numpy(),
        fraction=cfg.kelly_fraction,
        shrinkage=cfg.shrinkage,
        cap=cfg.cap_per_agent,
        gross_cap=cfg.gross_cap,
        eligible=elig,
        long_only=cfg.long_only,
    ) if len(rets) >= 2 else np.zeros(len(names))  # fmt: skip
    weights = {n: float(x) for n, x in zip(names, w, strict=True)}
    board["weight"] = pd.Series(weights)
    board["capital"] = board["weight"] * cfg.capital
    board["gates_failed"] = [", ".join(gates[n].failed) for n in board.index]
    board = board.sort_values(["weight", "sharpe"], ascending=False, na_position="last")
    board.index.name = "agent"
    return Reallocation(day, board, gates, weights, {n: weights[n] * cfg.capital for n in names})
