"""Donchian channel breakout (trend following), path-dependent.

Channels use the PRIOR bars only: ``upper_w[t] = max(high[t-w .. t-1])``,
``lower_w[t] = min(low[t-w .. t-1])``. At the close of bar t, from flat: close > upper of
``window`` → long, close < lower of ``window`` → short. Long: close < lower of ``window``
→ short (reversal), else close < lower of ``exit_window`` → flat. Short mirrors it.
Until ``window`` prior bars exist the position is flat. Weights are ``±max_position``;
``long_only`` turns shorts flat.

One channel per distinct window among ``window`` and ``exit_window``; the state machine is
a Numba kernel (sequential in time, parallel over parameter chunks, position carried across
blocks). On a GPU it runs on the host and the block moves to the device.
"""

from __future__ import annotations

import numpy as np

from quantarena.strategies.base import Agent, Carry, host_block
from quantarena.strategies.indicators import lag, rolling_maxes, rolling_mins, to_numpy
from quantarena.strategies.params import Int


class Breakout(Agent):
    """Donchian breakout. Params: ``window`` (entry channel, bars) and ``exit_window``
    (exit channel, bars, <= window)."""

    name = "breakout"
    description = "Donchian channel: long above the prior window-bar high, short below the low"
    space = {"window": Int(2, 5000, default=20), "exit_window": Int(1, 5000, default=10)}
    default_grid = {"window": "20:100:20", "exit_window": "5:50:5"}

    def valid(self, params):
        return np.asarray(params["exit_window"]) <= np.asarray(params["window"])

    def indicators(self, bars, params, xp=np):
        keys = np.unique(np.concatenate([params["window"], params["exit_window"]]))
        col = {int(w): j for j, w in enumerate(keys)}
        hi = lag(rolling_maxes(bars.high, keys), 1)
        lo = lag(rolling_mins(bars.low, keys), 1)
        c = np.ascontiguousarray(np.asarray(to_numpy(bars.close), np.float64))
        return {
            "close": c.reshape(c.shape[0], -1),
            "hi": np.ascontiguousarray(hi.reshape(hi.shape[0], -1, keys.size)),
            "lo": np.ascontiguousarray(lo.reshape(lo.shape[0], -1, keys.size)),
            "wi": np.array([col[int(w)] for w in params["window"]], np.int64),
            "ei": np.array([col[int(w)] for w in params["exit_window"]], np.int64),
            "n_assets": bars.n_assets,
            "carry": Carry(bars.n_assets, len(params["window"])),
        }

    def _kernel(self, state):
        from quantarena.strategies import kernels

        def run(a, b, carry, out):
            kernels.donchian_block(
                state["close"],
                state["hi"],
                state["lo"],
                state["wi"],
                state["ei"],
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

        if "hi_tl" not in state:
            state["close_tl"] = np.ascontiguousarray(state["close"].T)
            state["hi_tl"] = R.time_last(state["hi"])
            state["lo_tl"] = R.time_last(state["lo"])
        carry = state["carry"]
        none = np.zeros(state["wi"].shape[0])
        return R.FusedSignal(
            R.KIND_DONCHIAN, int(t0), state["close_tl"], state["hi_tl"], state["lo_tl"],
            state["wi"], state["ei"], none, none, self.max_position, self.long_only,
            carry.at(self._kernel(state), int(t0)), lambda c, raw, t_end: carry.set(c, t_end),
        )  # fmt: skip
