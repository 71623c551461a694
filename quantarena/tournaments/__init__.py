"""quantarena.tournaments: the pure tournament mathematics (no Ray, MLflow or Redis).

- :mod:`.schedule`: walk-forward rounds (warm-up, in-sample lookback, out-of-sample round).
- :mod:`.gates`: threshold gates an agent must clear before it gets capital.
- :mod:`.overfitting`: probabilistic / deflated Sharpe ratio, PBO by CSCV.
- :mod:`.allocation`: fractional multivariate Kelly with Ledoit–Wolf shrinkage; baselines.
- :mod:`.ranking`: per-round and cumulative leaderboards.

Formulas and references: docs/tournaments.md.
"""

from quantarena.tournaments.allocation import (
    equal_weights,
    inverse_vol_weights,
    kelly_weights,
    ledoit_wolf,
    shrunk_covariance,
    solve_kelly,
)
from quantarena.tournaments.gates import GateConfig, GateResult, GateStatus, evaluate_gates
from quantarena.tournaments.overfitting import (
    PBOResult,
    SharpeStats,
    annualize_sharpe,
    deannualize_sharpe,
    deflated_sharpe,
    expected_max_sharpe,
    pbo,
    probabilistic_sharpe,
    probabilistic_sharpe_z,
    sharpe_ratio,
    sharpe_stats,
    sharpe_std,
    trials_sharpe_variance,
)
from quantarena.tournaments.ranking import cumulative_leaderboard, rank_agents
from quantarena.tournaments.schedule import Round, duration_ns, walk_forward

__all__ = [
    "GateConfig",
    "GateResult",
    "GateStatus",
    "PBOResult",
    "Round",
    "SharpeStats",
    "annualize_sharpe",
    "cumulative_leaderboard",
    "deannualize_sharpe",
    "deflated_sharpe",
    "duration_ns",
    "equal_weights",
    "evaluate_gates",
    "expected_max_sharpe",
    "inverse_vol_weights",
    "kelly_weights",
    "ledoit_wolf",
    "pbo",
    "probabilistic_sharpe",
    "probabilistic_sharpe_z",
    "rank_agents",
    "sharpe_ratio",
    "sharpe_stats",
    "sharpe_std",
    "shrunk_covariance",
    "solve_kelly",
    "trials_sharpe_variance",
    "walk_forward",
]
