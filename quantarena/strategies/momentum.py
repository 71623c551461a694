"""Moving-average crossover (trend following).

Weight of bar t: ``+max_position`` when the fast MA is above the slow MA at the close of
bar t, ``-max_position`` when below (0 instead with ``long_only=True``), 0 when equal or
while either MA's window is not yet full. Windows count in bars. ``ma`` picks simple
("sma") or exponential ("ema", alpha = 2/(w+1), SMA-seeded) averages.

Every distinct (ma, window) pair among ``fast`` and ``slow`` is computed once; each
parameter set is then a gather-compare of two columns per bar (a Numba kernel writing a
float32 block on the CPU, array indexing on a GPU). On the CPU the averages are written
time-last, ``(A, W, T)``, the layout the fused replay reads, so no transpose is needed.
"""

from __future__ import annotations

import numpy as np

from quantarena.strategies.base import Agent
from quantarena.strategies.indicators import (
    is_cupy,
    moving_averages,
    moving_averages_time_last,
)
from quantarena.strategies.params import Choice, Int
from quantarena.strategies.streaming import AgentStream, EMAStream, SMAStream


class Momentum(Agent):
    """MA crossover, long/short (or long-only). Params: ``fast``, ``slow`` (bars, fast < slow),
    ``ma`` ("sma" | "ema")."""

    name = "momentum"
    description = "moving-average crossover: long when fast MA > slow MA, short below"
    space = {
        "fast": Int(2, 1000, default=10),
        "slow": Int(3, 5000, default=50),
        "ma": Choice(["sma", "ema"]),
    }
    default_grid = {"fast": "5:50:5", "slow": "50:200:10", "ma": "sma"}

    def valid(self, params):
        return np.asarray(params["fast"]) < np.asarray(params["slow"])

    def indicators(self, bars, params, xp=np):
        kinds = np.asarray(params["ma"]).astype(str)
        keys = sorted(
            {(k, int(w)) for k, w in zip(kinds, params["fast"], strict=True)}
            | {(k, int(w)) for k, w in zip(kinds, params["slow"], strict=True)}
        )
        col = {key: j for j, key in enumerate(keys)}
        fi = np.array([col[(k, int(w))] for k, w in zip(kinds, params["fast"], strict=True)])
        si = np.array([col[(k, int(w))] for k, w in zip(kinds, params["slow"], strict=True)])
        stacks = []
        state = {}
        for kind in sorted({k for k, _ in keys}):  # same order as `keys`
            ws = [w for k, w in keys if k == kind]
            if ws and is_cupy(xp):
                stacks.append(moving_averages(bars.close, ws, xp, kind))
            elif ws:  # the CPU: written time-last, the fused kernels' layout (no transpose)
                stacks.append(moving_averages_time_last(bars.close, ws, kind))
        if is_cupy(xp):
            ma = stacks[0] if len(stacks) == 1 else xp.concatenate(stacks, axis=-1)
            ma = xp.ascontiguousarray(ma)
        else:
            tl = stacks[0] if len(stacks) == 1 else np.concatenate(stacks, axis=1)
            state["ma_tl"] = tl
            ma = tl.transpose(2, 0, 1)  # (T, A, W): a view; signal() makes it contiguous
        return {
            **state,
            "ma": ma,
            "fi": fi.astype(np.int64),
            "si": si.astype(np.int64),
            "n_assets": bars.n_assets,
            "n_windows": len(keys),
        }

    def signal(self, state, params, xp, t0, t1):
        fi, si, A = state["fi"], state["si"], state["n_assets"]
        if is_cupy(xp):
            blk = state["ma"][t0:t1]
            f, s = blk[:, :, xp.asarray(fi)], blk[:, :, xp.asarray(si)]
            lo = 0.0 if self.long_only else -self.max_position
            out = xp.where(f > s, self.max_position, xp.where(f < s, lo, 0.0))
            return self.shape_block(out.astype(xp.float32), A)
        from quantarena.strategies import kernels

        if not state["ma"].flags.c_contiguous:  # once per state: the block path's layout
            state["ma"] = np.ascontiguousarray(state["ma"])
        out = self.new_block(np, t1 - t0, A, fi.shape[0])
        kernels.cross_block(state["ma"], fi, si, self.max_position, self.long_only, t0, t1, out)
        return self.shape_block(out, A)

    def fused(self, state, params, t0):
        from quantarena.engine import fused as R

        if "ma_tl" not in state:
            state["ma_tl"] = R.time_last(state["ma"])
        fi = state["fi"]
        none = np.zeros(fi.shape[0])
        return R.FusedSignal(
            R.KIND_CROSS, int(t0), R.empty_x0(), state["ma_tl"], R.empty_x(), fi, state["si"],
            none, none, self.max_position, self.long_only,
            np.zeros((state["n_assets"], fi.shape[0]), np.float32),
        )  # fmt: skip

    def _stream(self, params, n_assets, interval_ns):
        return MomentumStream(self, params, n_assets)


class MomentumStream(AgentStream):
    """:class:`Momentum` one bar at a time: one running average per distinct (ma, window)."""

    def __init__(self, agent: Momentum, params, n_assets: int) -> None:
        super().__init__(agent, params, n_assets)
        kinds = np.asarray(params["ma"]).astype(str)
        fast = [(k, int(w)) for k, w in zip(kinds, params["fast"], strict=True)]
        slow = [(k, int(w)) for k, w in zip(kinds, params["slow"], strict=True)]
        keys = sorted(set(fast) | set(slow))
        self.streams = []  # (stream, columns of `keys` it fills)
        for kind, cls in (("ema", EMAStream), ("sma", SMAStream)):
            ws = [w for k, w in keys if k == kind]
            if ws:
                cols = [keys.index((kind, w)) for w in ws]
                self.streams.append((cls(ws, n_assets), cols))
        self.n_keys = len(keys)
        self.fi = [keys.index(k) for k in fast]
        self.si = [keys.index(k) for k in slow]
        self.pos = np.float32(agent.max_position)
        self.neg = np.float32(0.0) if agent.long_only else np.float32(-agent.max_position)

    def _step(self, o, h, lo, c, v):
        ma = np.empty((self.n_assets, self.n_keys))
        for st, cols in self.streams:
            ma[:, cols] = st.update(c)
        f, s = ma[:, self.fi], ma[:, self.si]
        up = (f > s).astype(np.float32)
        dn = (f < s).astype(np.float32)
        return (self.pos * up + self.neg * dn).astype(np.float32)
