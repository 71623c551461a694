"""quantarena.engine: bar replay of populations of target-weight series.

Public API::

    from quantarena.engine import simulate, SimResult, Account, PositionSource, Costs, Fees,
        Slippage, VolumeImpact, Funding, Stops, METRICS, get_backend, to_host

See docs/engine.md for every convention (fills, costs, stops, annualisation, metrics).
"""

from quantarena.engine.backend import Backend, BackendError, cuda_available, get_backend, to_host
from quantarena.engine.costs import Costs, Fees, Funding, Slippage, VolumeImpact
from quantarena.engine.filters import ExchangeFilters
from quantarena.engine.metrics import METRIC_NAMES, METRICS, Metric
from quantarena.engine.simulate import (
    Account,
    PositionSource,
    SimResult,
    SimulationError,
    simulate,
)
from quantarena.engine.stops import Stops
from quantarena.engine.trades import TRADE_COLUMNS

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "TRADE_COLUMNS",
    "Account",
    "Backend",
    "BackendError",
    "Costs",
    "ExchangeFilters",
    "Fees",
    "Funding",
    "Metric",
    "PositionSource",
    "SimResult",
    "SimulationError",
    "Slippage",
    "Stops",
    "VolumeImpact",
    "cuda_available",
    "get_backend",
    "simulate",
    "to_host",
]
