"""Layout of the simulation state carried across blocks (shared by the CPU and GPU kernels).

Per parameter set: ``S`` is ``(NS, P)`` float64, one row per field below.
Per asset and parameter set: ``SA`` is ``(NSA, A, P)`` float64.
Trade records (when asked for): ``RF`` ``(N, NRF)`` float64 and ``RI`` ``(N, NRI)`` int64.
Both kernels index these with the same constants; the GPU source gets them as ``#define``.
"""

from __future__ import annotations

# ---- S: per parameter set -------------------------------------------------------------
CASH = 0  # cash balance (may go negative: borrowing for leverage)
EQ_PREV = 1  # equity at the previous close (init_cash before the first bar)
PEAK = 2  # running peak of equity (init_cash at start)
INV_PEAK = 3  # 1 / PEAK
LAST_PEAK_T = 4  # bar index of the running peak (-1: init_cash, before bar 0)
MAX_DD = 5  # max drawdown of the finished episodes, a positive fraction
MAX_DD_DUR = 6  # longest finished drawdown episode, bars below the peak
SUM_R = 7  # sum of per-bar simple returns
SUM_R2 = 8  # sum of squared returns
SUM_D2 = 9  # sum of min(r, 0)^2
EXPO = 10  # bars with a non-zero position at the close
TURN = 11  # sum over fills of traded notional / equity
NTR = 12  # closed trades
WINS = 13  # closed trades with pnl > 0
GP = 14  # gross profit of closed trades (cash)
GL = 15  # gross loss of closed trades (cash, positive)
SUM_TRET = 16  # sum of closed-trade returns
RUINED = 17  # 1.0 once equity reached <= 0 (then flat for good)
FEES = 18  # commissions paid (cash)
FUND = 19  # funding paid (cash; negative = received)
NREC = 20  # trade records written so far (recording pass only)
TROUGH = 21  # lowest equity since the running peak
NS = 22

# ---- SA: per asset and parameter set ---------------------------------------------------
SH = 0  # shares held (negative = short)
LAST = 1  # the target weight last acted on
PEND = 2  # processed target decided at the previous close, to fill at this open
EVAL = 3  # open trade: sum of entry notional (shares * fill price) over entries/adds
EQTY = 4  # open trade: sum of shares entered
XVAL = 5  # open trade: sum of exit notional over partial exits
XQTY = 6  # open trade: shares exited so far
TCOST = 7  # open trade: fees + funding paid so far
DIR = 8  # open trade: +1 long, -1 short, 0 none
ETS = 9  # open trade: entry bar index (global)
BEST = 10  # open trade: best close since entry (trailing stop anchor)
EPX = 11  # open trade: average entry price EVAL / EQTY
NSA = 12

# ---- trade records ---------------------------------------------------------------------
R_ENTRY_T = 0
R_EXIT_T = 1
R_DIR = 2
R_SIZE = 3
R_ENTRY_PX = 4
R_EXIT_PX = 5
R_PNL = 6
R_RET = 7
NRF = 8
R_PARAM = 0
R_ASSET = 1
R_REASON = 2
NRI = 3

# exit reasons
EXIT_SIGNAL = 0
EXIT_STOP_LOSS = 1
EXIT_TAKE_PROFIT = 2
EXIT_TRAILING = 3
EXIT_OPEN = 4  # still open at the end (marked to the last close)
EXIT_RUIN = 5
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "open", "ruin")


def c_defines() -> str:
    """The constants above as C ``#define`` lines (for the CUDA source)."""
    names = [
        k
        for k, v in globals().items()
        if k.isupper() and isinstance(v, int) and not k.startswith("_")
    ]
    return "\n".join(f"#define {k} {globals()[k]}" for k in names) + "\n"


def stamp() -> str:
    """A short hash of the constants above (see ``kernels_cpu._LAYOUT_STAMP``)."""
    import hashlib

    return hashlib.sha1(c_defines().encode()).hexdigest()[:12]
