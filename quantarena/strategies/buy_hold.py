"""Buy and hold: the baseline every agent should beat.

Holds ``weight * max_position`` of each asset from the first bar on which the asset has a
price (the engine fills it at the next open) to the end; 0 before an asset's first price.
One parameter, ``weight`` in [0, 1] (default 1: the full ``max_position``).
"""

from __future__ import annotations

import numpy as np

from quantarena.strategies.base import Agent
from quantarena.strategies.params import Float
from quantarena.strategies.streaming import AgentStream


class BuyHold(Agent):
    """Baseline: always long. Param: ``weight`` (fraction of ``max_position``, default 1)."""

    name = "buy_hold"
    description = "baseline: hold weight * max_position of every asset from its first price"
    space = {"weight": Float(0.0, 1.0, default=1.0)}
    default_grid = {"weight": [1.0]}

    def indicators(self, bars, params, xp=np):
        has_price = xp.asarray(np.isfinite(bars.close)).astype(xp.float32)  # (T, A)
        w = xp.asarray(np.asarray(params["weight"], np.float32) * np.float32(self.max_position))
        return {"has_price": has_price, "w": w, "n_assets": bars.n_assets}

    def signal(self, state, params, xp, t0, t1):
        out = state["has_price"][t0:t1, :, None] * state["w"][None, None, :]
        return self.shape_block(xp.ascontiguousarray(out.astype(xp.float32)), state["n_assets"])

    def _stream(self, params, n_assets, interval_ns):
        return BuyHoldStream(self, params, n_assets)


class BuyHoldStream(AgentStream):
    """:class:`BuyHold` one bar at a time (no state: the weight wherever the close is known)."""

    def __init__(self, agent: BuyHold, params, n_assets: int) -> None:
        super().__init__(agent, params, n_assets)
        self.w = np.asarray(params["weight"], np.float32) * np.float32(agent.max_position)

    def _step(self, o, h, lo, c, v):
        has = np.isfinite(c).astype(np.float32)
        return (has[:, None] * self.w[None, :]).astype(np.float32)
