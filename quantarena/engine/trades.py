"""The trade list: one row per trade, from the records of the recording pass.

A trade runs from the fill that opens a position in an asset (from flat, or the opening
part of a flip) to the fill that brings it back to zero (a target change, a stop, or the
closing part of a flip). Adds and partial exits stay inside the trade:

* ``size``: shares entered in total (adds included);
* ``entry_price`` / ``exit_price``: average executed prices (post slippage and impact);
* ``pnl`` (cash): ``direction * (exit notional - entry notional) - fees - funding`` of the
  trade, so the pnl of all trades sums to the change of equity;
* ``return``: ``pnl / entry notional``;
* ``entry_ts`` / ``exit_ts``: the open time (``ts``) of the bar whose fill opened / closed
  it (with ``fill="close"`` the fill is at that bar's close); ``entry_bar`` / ``exit_bar``
  are the bar indices (a trade carried in from an earlier replay, ``simulate(start=...)``,
  has ``entry_bar`` -1 and ``entry_ts`` NaT);
* ``exit_reason``: ``signal``, ``stop_loss``, ``take_profit``, ``trailing_stop``, ``ruin``, or
  ``open`` for a trade still open after the last bar, marked to the last close without exit
  costs (metrics count only closed trades).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from quantarena.engine import layout as L

if TYPE_CHECKING:  # pandas loads on first use (trade lists), not with the engine
    import pandas as pd

TRADE_COLUMNS: tuple[str, ...] = (
    "param",
    "asset",
    "entry_ts",
    "exit_ts",
    "direction",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "return",
    "exit_reason",
    "entry_bar",
    "exit_bar",
)


def open_trades(SA: np.ndarray, last_close: np.ndarray, last_bar: int) -> tuple[np.ndarray, ...]:
    """Records ``(RF, RI)`` of the trades still open in the final state ``SA`` (host)."""
    sh = SA[L.SH]  # (A, P)
    a_idx, p_idx = np.nonzero(sh != 0.0)
    n = a_idx.size
    RF = np.zeros((n, L.NRF))
    RI = np.zeros((n, L.NRI), dtype=np.int64)
    if n == 0:
        return RF, RI
    s = np.abs(sh[a_idx, p_idx])
    c = last_close[a_idx]
    d = SA[L.DIR, a_idx, p_idx]
    xval = SA[L.XVAL, a_idx, p_idx] + s * c
    xqty = SA[L.XQTY, a_idx, p_idx] + s
    ev = SA[L.EVAL, a_idx, p_idx]
    pnl = d * (xval - ev) - SA[L.TCOST, a_idx, p_idx]
    RF[:, L.R_ENTRY_T] = SA[L.ETS, a_idx, p_idx]
    RF[:, L.R_EXIT_T] = last_bar
    RF[:, L.R_DIR] = d
    RF[:, L.R_SIZE] = SA[L.EQTY, a_idx, p_idx]
    RF[:, L.R_ENTRY_PX] = SA[L.EPX, a_idx, p_idx]
    RF[:, L.R_EXIT_PX] = xval / xqty
    RF[:, L.R_PNL] = pnl
    RF[:, L.R_RET] = np.where(ev > 0, pnl / np.where(ev > 0, ev, 1.0), 0.0)
    RI[:, L.R_PARAM] = p_idx
    RI[:, L.R_ASSET] = a_idx
    RI[:, L.R_REASON] = L.EXIT_OPEN
    return RF, RI


def trades_frame(
    RF: np.ndarray, RI: np.ndarray, ts: np.ndarray, symbols: list[str]
) -> pd.DataFrame:
    """The trade list as a DataFrame (columns :data:`TRADE_COLUMNS`), sorted by param,
    exit bar, asset."""
    import pandas as pd

    entry_bar = RF[:, L.R_ENTRY_T].astype(np.int64)
    exit_bar = RF[:, L.R_EXIT_T].astype(np.int64)
    ts = np.asarray(ts, dtype=np.int64)
    reasons = np.asarray(L.EXIT_REASONS, dtype=object)
    sym = np.asarray(symbols, dtype=object)
    df = pd.DataFrame(
        {
            "param": RI[:, L.R_PARAM].astype(np.int64),
            "asset": sym[RI[:, L.R_ASSET]] if len(RI) else np.array([], dtype=object),
            "entry_ts": pd.to_datetime(
                np.where(entry_bar >= 0, ts[np.maximum(entry_bar, 0)], np.iinfo(np.int64).min),
                utc=True,
            ),
            "exit_ts": pd.to_datetime(ts[exit_bar], utc=True),
            "direction": RF[:, L.R_DIR].astype(np.int8),
            "size": RF[:, L.R_SIZE],
            "entry_price": RF[:, L.R_ENTRY_PX],
            "exit_price": RF[:, L.R_EXIT_PX],
            "pnl": RF[:, L.R_PNL],
            "return": RF[:, L.R_RET],
            "exit_reason": reasons[RI[:, L.R_REASON]] if len(RI) else np.array([], dtype=object),
            "entry_bar": entry_bar,
            "exit_bar": exit_bar,
        },
        columns=list(TRADE_COLUMNS),
    )
    df = df.sort_values(["param", "exit_bar", "asset", "entry_bar"], kind="stable")
    return df.reset_index(drop=True)
