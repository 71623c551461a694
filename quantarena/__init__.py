"""quantarena: a Ray-distributed GPU tournament platform for trading agents.

The package is split into a pure core (``data``, ``engine``, ``strategies``,
``tournaments``, ``training``) that imports no Ray, MLflow or Redis, and a thin
shell (``actors``, ``cluster``, ``tracking``, ``live``, ``cli``) that talks to the
world. Importing :mod:`quantarena` is cheap: heavy modules load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_COSTS",
    "Costs",
    "Fees",
    "Funding",
    "Slippage",
    "VolumeImpact",
    "__version__",
    "backtest",
]

#: names served lazily from :mod:`quantarena.engine.costs`
_COSTS = ("DEFAULT_COSTS", "Costs", "Fees", "Funding", "Slippage", "VolumeImpact")


def __getattr__(name: str) -> Any:  # lazy public API, keeps `import quantarena` fast
    if name == "backtest":  # the module is callable: qa.backtest(...) runs a backtest
        import quantarena.backtest as module

        return module
    if name in _COSTS:
        from quantarena.engine import costs

        return getattr(costs, name)
    raise AttributeError(f"module 'quantarena' has no attribute {name!r}")
