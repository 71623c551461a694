"""A complete user agent in one small file: RSI mean reversion.

Run it without registering anything:

    quantarena backtest --file data/sample/btc-perp-20211231-20220201_1m.csv \
        --agent examples/my_agent.py:RSIReversion --param window=7:28:7 --param band=20,30
    quantarena audit --agent examples/my_agent.py:RSIReversion

or from Python:

    import quantarena as qa
    from examples.my_agent import RSIReversion
    res = qa.backtest("data/sample/btc-perp-20211231-20220201_1m.csv", RSIReversion(),
                      {"window": [14], "band": [20, 30]})
"""

from __future__ import annotations

import numpy as np

from quantarena.strategies import Agent, Int, register_agent
from quantarena.strategies.indicators import lag, moving_averages
from quantarena.strategies.params import unique_index


@register_agent  # optional: makes get_agent("rsi_reversion") find it once imported
class RSIReversion(Agent):
    """Long when RSI(window) < band, short when RSI > 100 - band, flat otherwise.

    RSI uses simple averages of gains and losses over ``window`` bars (Cutler's RSI), from
    closes up to and including bar t; the weight of bar t fills at the open of bar t+1.
    """

    name = "rsi_reversion"
    description = "RSI mean reversion: long below band, short above 100 - band"
    space = {"window": Int(2, 500, default=14), "band": Int(5, 45, default=30)}
    default_grid = {"window": "7:28:7", "band": "20,30"}

    def indicators(self, bars, params, xp=np):
        # ONE RSI series per distinct window, shared by every parameter set that uses it
        windows, col = unique_index(params["window"])
        close = xp.asarray(bars.close, dtype=xp.float64)  # (T, A)
        change = close - lag(close, 1, xp)  # causal: bar t vs bar t-1
        gain = moving_averages(xp.maximum(change, 0.0), windows, xp)  # (T, A, W)
        loss = moving_averages(xp.maximum(-change, 0.0), windows, xp)
        total = gain + loss
        rsi = xp.where(total > 0, 100.0 * gain / xp.where(total > 0, total, 1.0), 50.0)
        rsi = xp.where(xp.isfinite(total), rsi, xp.nan)  # NaN until the window is full
        return {"rsi": rsi, "col": xp.asarray(col), "band": xp.asarray(params["band"])}

    def signal(self, state, params, xp, t0, t1):
        rsi = state["rsi"][t0:t1][:, :, state["col"]]  # (n, A, P): gather per set
        band = state["band"]
        w = xp.where(rsi < band, 1.0, xp.where(rsi > 100.0 - band, -1.0, 0.0))
        if self.long_only:
            w = xp.maximum(w, 0.0)
        out = (w * self.max_position).astype(xp.float32)  # NaN RSI compares False → 0
        return out[:, 0, :] if out.shape[1] == 1 else out  # (n, P) for one asset
