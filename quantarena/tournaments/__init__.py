"""quantarena.tournaments: the pure tournament mathematics (no Ray, MLflow or Redis).

- :mod:`.schedule`: walk-forward rounds (warm-up, in-sample lookback, out-of-sample round).
- :mod:`.gates`: threshold gates an agent must clear before it gets capital.
- :mod:`.overfitting`: probabilistic / deflated Sharpe ratio, PBO by CSCV.
- :mod:`.allocation`: fractional multivariate Kelly with Ledoit–Wolf shrinkage; baselines.
- :mod:`.ranking`: per-round and cumulative leaderboards.

Formulas and references: docs/tournaments.md.
"""

#: public name -> the submodule that defines it (imported on first use: an agent actor
#: that needs only the rounds does not pay for SciPy's optimizers and pandas here)
_LAZY = {
    "GateConfig": "gates",
    "GateResult": "gates",
    "GateStatus": "gates",
    "PBOResult": "overfitting",
    "Round": "schedule",
    "SharpeStats": "overfitting",
    "annualize_sharpe": "overfitting",
    "cumulative_leaderboard": "ranking",
    "deannualize_sharpe": "overfitting",
    "deflated_sharpe": "overfitting",
    "duration_ns": "schedule",
    "equal_weights": "allocation",
    "evaluate_gates": "gates",
    "expected_max_sharpe": "overfitting",
    "inverse_vol_weights": "allocation",
    "kelly_weights": "allocation",
    "ledoit_wolf": "allocation",
    "pbo": "overfitting",
    "probabilistic_sharpe": "overfitting",
    "probabilistic_sharpe_z": "overfitting",
    "rank_agents": "ranking",
    "sharpe_ratio": "overfitting",
    "sharpe_stats": "overfitting",
    "sharpe_std": "overfitting",
    "shrunk_covariance": "allocation",
    "solve_kelly": "allocation",
    "trials_sharpe_variance": "overfitting",
    "walk_forward": "schedule",
}


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


def __getattr__(name: str) -> object:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value
