"""Trading agents: a parameter space plus vectorised target weights for a population.

Shipped agents: ``momentum`` (MA crossover), ``mean_reversion`` (z-score with hysteresis),
``breakout`` (Donchian), ``vol_target`` (trend × volatility targeting), ``buy_hold``
(baseline). See :mod:`quantarena.strategies.base` for the interface and ``docs/agents.md``
for writing your own in one small file.

This package imports no Ray/MLflow/Redis; Numba loads only when a kernel first runs.
"""

from __future__ import annotations

from quantarena.strategies.base import Agent, AgentSource, Carry
from quantarena.strategies.params import Choice, Float, Int, grid, parse_param, sample
from quantarena.strategies.registry import get_agent, list_agents, register_agent

__all__ = [
    "Agent",
    "AgentSource",
    "Carry",
    "Choice",
    "Float",
    "Int",
    "get_agent",
    "grid",
    "list_agents",
    "parse_param",
    "register_agent",
    "sample",
]
