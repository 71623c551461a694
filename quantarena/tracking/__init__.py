"""quantarena.tracking: MLflow runs of tournaments, and their plots and tables.

Shell code: the core never imports it. Only the driver / director process writes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TournamentLogger", "flatten"]


def __getattr__(name: str) -> Any:  # keep `import quantarena.tracking` free of mlflow
    if name in __all__:
        from quantarena.tracking import mlflow_logger

        return getattr(mlflow_logger, name)
    raise AttributeError(f"module 'quantarena.tracking' has no attribute {name!r}")
