"""Volatility-targeted trend.

At the close of bar t: direction = sign of the ``lookback``-bar return
``close[t] / close[t-lookback] - 1``; realised volatility = the std (ddof=0) of one-bar log
returns over the last ``vol_window`` bars, annualised with ``sqrt(bars per 365-day year)``;
weight = ``direction * max_position * min(1, target_vol / realised_vol)``. So the position is
``max_position`` when the market is calmer than the target and shrinks in proportion when it
is wilder. Zero return or an unfilled window → 0; zero volatility → full ``max_position``.
``long_only`` turns shorts flat.

Rebalance band: a weight that changes on nearly every bar makes the engine trade on nearly
every bar, paying costs for tiny adjustments. With ``band > 0`` (a fraction of
``max_position``) the previous weight is kept while the new one has the same sign and lies
within ``band * max_position`` of it; a move to flat or across zero always goes through. The
weight then depends on the path (it is carried across blocks); ``band = 0`` (the default) is
the plain rule.

One return series per distinct lookback and one volatility series per distinct vol_window.
"""

from __future__ import annotations

import numpy as np

from quantarena.strategies.base import Agent, Carry, host_block
from quantarena.strategies.indicators import is_cupy, lag, log_returns, rolling_stds, to_numpy
from quantarena.strategies.params import Float, Int, unique_index
from quantarena.strategies.streaming import AgentStream, MomentsStream, Ring

NS_PER_YEAR = 365 * 86400 * 1_000_000_000


class VolTarget(Agent):
    """Trend sign × volatility scaling. Params: ``lookback`` (bars), ``vol_window`` (bars),
    ``target_vol`` (annualised, 0.5 = 50%), ``band`` (rebalance band, a fraction of
    ``max_position``; 0 = trade on every change)."""

    name = "vol_target"
    description = "sign of the lookback return, scaled to a target annualised volatility"
    space = {
        "lookback": Int(1, 10000, default=60),
        "vol_window": Int(2, 10000, default=60),
        "target_vol": Float(0.01, 5.0, default=0.5),
        "band": Float(0.0, 1.0, default=0.0),
    }
    default_grid = {
        "lookback": "30:240:30",
        "vol_window": "60,240",
        "target_vol": "0.25,0.5,1.0",
        "band": "0",
    }

    def indicators(self, bars, params, xp=np):
        ls, li = unique_index(params["lookback"])
        vs, vi = unique_index(params["vol_window"])
        close = xp.asarray(bars.close, dtype=xp.float64)
        ret = xp.stack([close / lag(close, int(k), xp) - 1.0 for k in ls], axis=-1)
        ppy = NS_PER_YEAR / float(bars.interval_ns)
        vol = rolling_stds(log_returns(close, xp), vs, xp) * float(np.sqrt(ppy))
        return {
            "ret": xp.ascontiguousarray(ret),
            "vol": xp.ascontiguousarray(vol),
            "li": li,
            "vi": vi,
            "target": np.asarray(params["target_vol"], np.float64),
            "band": np.asarray(params["band"], np.float64),
            "n_assets": bars.n_assets,
            "carry": Carry(bars.n_assets, li.shape[0]),
        }

    def _kernel(self, state):
        from quantarena.strategies import kernels

        if "ret_h" not in state:  # host copies (the indicators may live on a GPU)
            state["ret_h"] = np.ascontiguousarray(to_numpy(state["ret"]), dtype=np.float64)
            state["vol_h"] = np.ascontiguousarray(to_numpy(state["vol"]), dtype=np.float64)

        def run(a, b, carry, out):
            kernels.voltarget_block(
                state["ret_h"],
                state["vol_h"],
                state["li"],
                state["vi"],
                state["target"],
                state["band"],
                self.max_position,
                self.long_only,
                a,
                b,
                carry,
                out,
            )

        return run

    def signal(self, state, params, xp, t0, t1):
        A = state["n_assets"]
        li, vi, target = state["li"], state["vi"], state["target"]
        if is_cupy(xp) and not np.any(state["band"] > 0):
            r = state["ret"][t0:t1][:, :, xp.asarray(li)]
            v = state["vol"][t0:t1][:, :, xp.asarray(vi)]
            tgt = xp.asarray(target)
            f = xp.where(v > 0, xp.minimum(1.0, tgt / xp.where(v > 0, v, 1.0)), 1.0)
            sgn = xp.sign(r)
            if self.long_only:
                sgn = xp.maximum(sgn, 0.0)
            out = xp.where(xp.isfinite(r) & xp.isfinite(v), sgn * f * self.max_position, 0.0)
            return self.shape_block(out.astype(xp.float32), A)
        out = self.new_block(np, t1 - t0, A, li.shape[0])
        out = state["carry"].run(self._kernel(state), t0, t1, out)
        return host_block(xp, self.shape_block(out, A))

    def fused(self, state, params, t0):
        from quantarena.engine import fused as R

        if "ret_tl" not in state:
            state["ret_tl"] = R.time_last(to_numpy(state["ret"]))
            state["vol_tl"] = R.time_last(to_numpy(state["vol"]))
        carry = state["carry"]
        return R.FusedSignal(
            R.KIND_VOLTARGET, int(t0), R.empty_x0(), state["ret_tl"], state["vol_tl"],
            state["li"], state["vi"], state["target"], state["band"], self.max_position,
            self.long_only, carry.at(self._kernel(state), int(t0)),
            lambda c, raw, t_end: carry.set(c, t_end),
        )  # fmt: skip

    def _stream(self, params, n_assets, interval_ns):
        if interval_ns is None:
            raise ValueError("vol_target's stream needs interval_ns (or history) to annualise")
        return VolTargetStream(self, params, n_assets, int(interval_ns))


class VolTargetStream(AgentStream):
    """:class:`VolTarget` one bar at a time: lookback returns from a ring of closes, rolling
    volatility of one-bar log returns per distinct vol_window."""

    def __init__(self, agent: VolTarget, params, n_assets: int, interval_ns: int) -> None:
        super().__init__(agent, params, n_assets)
        ls, self.li = unique_index(params["lookback"])
        vs, self.vi = unique_index(params["vol_window"])
        self.lookbacks = [int(k) for k in ls]
        self.closes = Ring(max(self.lookbacks) + 1, n_assets)
        self.vol = MomentsStream([int(w) for w in vs], n_assets)
        self.sqrt_ppy = float(np.sqrt(NS_PER_YEAR / float(interval_ns)))
        self.target = [float(x) for x in params["target_vol"]]
        band = params["band"] if "band" in params else np.zeros(self.n_params)
        self.band = [float(x) for x in band]
        self.prev = np.zeros((n_assets, self.n_params), np.float32)

    def _step(self, o, h, lo, c, v):
        from quantarena.engine.signal_rules import voltarget_rule

        r = self.closes
        t = r.t + 1
        prev = np.array([r.at(t - 1, a) for a in range(self.n_assets)]) if t >= 1 else None
        lr = np.log(c / prev) if prev is not None else np.full(self.n_assets, np.nan)
        r.push(c)
        _, sd = self.vol.update(lr)
        vol = sd * self.sqrt_ppy
        ag = self.agent
        out = np.empty((self.n_assets, self.n_params), np.float32)
        for a in range(self.n_assets):
            rets = [
                float(c[a]) / r.at(t - k, a) - 1.0 if t >= k else float("nan")
                for k in self.lookbacks
            ]
            for p in range(self.n_params):
                x = rets[int(self.li[p])]
                s = float(vol[a, int(self.vi[p])])
                # the engine's own rule (signal_rules.voltarget_rule), rebalance band included
                w = voltarget_rule(
                    x, s, self.target[p], ag.max_position, ag.long_only, self.prev[a, p],
                    self.band[p],
                )  # fmt: skip
                self.prev[a, p] = w
                out[a, p] = w
        return out
