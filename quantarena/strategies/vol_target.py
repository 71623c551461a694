"""Volatility-targeted trend.

At the close of bar t: direction = sign of the ``lookback``-bar return
``close[t] / close[t-lookback] - 1``; realised volatility = the std (ddof=0) of one-bar log
returns over the last ``vol_window`` bars, annualised with ``sqrt(bars per 365-day year)``;
weight = ``direction * max_position * min(1, target_vol / realised_vol)``. So the position is
``max_position`` when the market is calmer than the target and shrinks in proportion when it
is wilder. Zero return or an unfilled window → 0; zero volatility → full ``max_position``.
``long_only`` turns shorts flat.

One return series per distinct lookback and one volatility series per distinct vol_window.
"""

from __future__ import annotations

import numpy as np

from quantarena.strategies.base import Agent
from quantarena.strategies.indicators import is_cupy, lag, log_returns, rolling_stds
from quantarena.strategies.params import Float, Int, unique_index
from quantarena.strategies.streaming import AgentStream, MomentsStream, Ring

NS_PER_YEAR = 365 * 86400 * 1_000_000_000


class VolTarget(Agent):
    """Trend sign × volatility scaling. Params: ``lookback`` (bars), ``vol_window`` (bars),
    ``target_vol`` (annualised, 0.5 = 50%)."""

    name = "vol_target"
    description = "sign of the lookback return, scaled to a target annualised volatility"
    space = {
        "lookback": Int(1, 10000, default=60),
        "vol_window": Int(2, 10000, default=60),
        "target_vol": Float(0.01, 5.0, default=0.5),
    }
    default_grid = {"lookback": "30:240:30", "vol_window": "60,240", "target_vol": "0.25,0.5,1.0"}

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
            "n_assets": bars.n_assets,
        }

    def signal(self, state, params, xp, t0, t1):
        A = state["n_assets"]
        li, vi, target = state["li"], state["vi"], state["target"]
        if is_cupy(xp):
            r = state["ret"][t0:t1][:, :, xp.asarray(li)]
            v = state["vol"][t0:t1][:, :, xp.asarray(vi)]
            tgt = xp.asarray(target)
            f = xp.where(v > 0, xp.minimum(1.0, tgt / xp.where(v > 0, v, 1.0)), 1.0)
            sgn = xp.sign(r)
            if self.long_only:
                sgn = xp.maximum(sgn, 0.0)
            out = xp.where(xp.isfinite(r) & xp.isfinite(v), sgn * f * self.max_position, 0.0)
            return self.shape_block(out.astype(xp.float32), A)
        from quantarena.strategies import kernels

        out = self.new_block(np, t1 - t0, A, li.shape[0])
        kernels.voltarget_block(
            state["ret"],
            state["vol"],
            li,
            vi,
            target,
            self.max_position,
            self.long_only,
            t0,
            t1,
            out,
        )
        return self.shape_block(out, A)

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

    def _step(self, o, h, lo, c, v):
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
                if not (np.isfinite(x) and np.isfinite(s)) or x == 0.0:
                    out[a, p] = 0.0
                    continue
                f = 1.0
                if s > 0.0:
                    f = min(1.0, self.target[p] / s)
                if x > 0.0:
                    out[a, p] = np.float32(ag.max_position * f)
                elif ag.long_only:
                    out[a, p] = 0.0
                else:
                    out[a, p] = np.float32(-ag.max_position * f)
        return out
