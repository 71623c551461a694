"""Mean reversion on the z-score of the close, with hysteresis.

``z = (close - SMA(window)) / std(window)`` (population std, ddof=0). At the close of each
bar: ``z > entry`` → short, ``z < -entry`` → long, ``|z| < exit`` → flat, otherwise the
previous position is kept (hysteresis: path-dependent). NaN z (window not full, or a flat
window with std 0) → flat. Weights are ``±max_position``; ``long_only`` turns shorts flat.

One z-score series per distinct window; the state machine is a Numba kernel, sequential in
time and parallel over chunks of parameter sets, carrying the position across blocks. On a
GPU the z-scores are computed on the device and the state machine runs on the host
(documented limitation), the block being moved to the device.
"""

from __future__ import annotations

import numpy as np

from quantarena.strategies.base import Agent, Carry, host_block
from quantarena.strategies.indicators import rolling_zscores, to_numpy
from quantarena.strategies.params import Float, Int, unique_index
from quantarena.strategies.streaming import AgentStream, MomentsStream


class MeanReversion(Agent):
    """Z-score mean reversion. Params: ``window`` (bars), ``entry`` and ``exit`` (z units,
    exit < entry)."""

    name = "mean_reversion"
    description = "z-score of close vs rolling mean: fade |z| > entry, exit at |z| < exit"
    space = {
        "window": Int(2, 5000, default=20),
        "entry": Float(0.1, 10.0, default=2.0),
        "exit": Float(0.0, 10.0, default=0.5),
    }
    default_grid = {"window": "20:100:20", "entry": "1.5:3.0:0.5", "exit": "0,0.5,1.0"}

    def valid(self, params):
        return np.asarray(params["exit"]) < np.asarray(params["entry"])

    def indicators(self, bars, params, xp=np):
        ws, wi = unique_index(params["window"])
        z = np.ascontiguousarray(to_numpy(rolling_zscores(bars.close, ws, xp)))
        if z.ndim == 2:
            z = z[:, None, :]
        return {
            "z": z,
            "wi": wi,
            "entry": np.asarray(params["entry"], np.float64),
            "exit": np.asarray(params["exit"], np.float64),
            "n_assets": bars.n_assets,
            "carry": Carry(bars.n_assets, wi.shape[0]),
        }

    def _kernel(self, state):
        from quantarena.strategies import kernels

        def run(a, b, carry, out):
            kernels.zscore_block(
                state["z"],
                state["wi"],
                state["entry"],
                state["exit"],
                self.max_position,
                self.long_only,
                a,
                b,
                carry,
                out,
            )

        return run

    def signal(self, state, params, xp, t0, t1):
        A, P = state["n_assets"], state["wi"].shape[0]
        out = state["carry"].run(self._kernel(state), t0, t1, self.new_block(np, t1 - t0, A, P))
        return host_block(xp, self.shape_block(out, A))

    def fused(self, state, params, t0):
        from quantarena.engine import fused as R

        if "z_tl" not in state:
            state["z_tl"] = R.time_last(state["z"])
        carry = state["carry"]
        return R.FusedSignal(
            R.KIND_ZSCORE, int(t0), R.empty_x0(), state["z_tl"], R.empty_x(), state["wi"],
            state["wi"], state["entry"], state["exit"], self.max_position, self.long_only,
            carry.at(self._kernel(state), int(t0)), lambda c, raw, t_end: carry.set(c, t_end),
        )  # fmt: skip

    def _stream(self, params, n_assets, interval_ns):
        return MeanReversionStream(self, params, n_assets)


class MeanReversionStream(AgentStream):
    """:class:`MeanReversion` one bar at a time: rolling moments per distinct window and the
    hysteresis position carried from bar to bar."""

    def __init__(self, agent: MeanReversion, params, n_assets: int) -> None:
        super().__init__(agent, params, n_assets)
        ws, self.wi = unique_index(params["window"])
        self.moments = MomentsStream([int(w) for w in ws], n_assets)
        self.entry = [float(x) for x in params["entry"]]
        self.exit = [float(x) for x in params["exit"]]
        self.carry = np.zeros((n_assets, self.n_params))

    def _step(self, o, h, lo, c, v):
        from quantarena.engine.signal_rules import zscore_rule

        mean, std = self.moments.update(c)
        ag = self.agent
        out = np.empty((self.n_assets, self.n_params), np.float32)
        for a in range(self.n_assets):
            x = float(c[a])
            for p in range(self.n_params):
                j = int(self.wi[p])
                sd = float(std[a, j])
                z = (x - float(mean[a, j])) / sd if sd > 0 else float("nan")
                # the engine's own rule (signal_rules.zscore_rule), as the block path
                cur = zscore_rule(z, self.carry[a, p], self.entry[p], self.exit[p], ag.long_only)
                self.carry[a, p] = cur
                out[a, p] = cur * ag.max_position
        return out
