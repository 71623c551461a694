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
from quantarena.strategies.indicators import (
    lag,
    readonly_view,
    rolling_maxes,
    rolling_mins,
    to_numpy,
)
from quantarena.strategies.params import Int
from quantarena.strategies.streaming import AgentStream, ChannelStream


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
            "close": readonly_view(c.reshape(c.shape[0], -1)),
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

    def _stream(self, params, n_assets, interval_ns):
        return BreakoutStream(self, params, n_assets)


class BreakoutStream(AgentStream):
    """:class:`Breakout` one bar at a time: channels of the prior bars from a ring, the
    position carried from bar to bar."""

    def __init__(self, agent: Breakout, params, n_assets: int) -> None:
        super().__init__(agent, params, n_assets)
        keys = [
            int(w) for w in np.unique(np.concatenate([params["window"], params["exit_window"]]))
        ]
        self.channels = ChannelStream(keys, n_assets)
        self.wi = [keys.index(int(w)) for w in params["window"]]
        self.ei = [keys.index(int(w)) for w in params["exit_window"]]
        self.carry = np.zeros((n_assets, self.n_params))

    def _step(self, o, h, lo, c, v):
        from quantarena.engine.signal_rules import donchian_rule

        up, dn = self.channels.update(h, lo)
        ag = self.agent
        out = np.empty((self.n_assets, self.n_params), np.float32)
        for a in range(self.n_assets):
            x = float(c[a])
            for p in range(self.n_params):
                eh, el = up[a, self.wi[p]], dn[a, self.wi[p]]
                xh, xl = up[a, self.ei[p]], dn[a, self.ei[p]]
                # the engine's own rule (signal_rules.donchian_rule), as the block path
                cur = donchian_rule(x, eh, el, xh, xl, self.carry[a, p], ag.long_only)
                self.carry[a, p] = cur
                out[a, p] = cur * ag.max_position
        return out
