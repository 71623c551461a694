"""Bar replay of a population of target-weight series: :func:`simulate`.

Conventions (docs/engine.md has every formula):

* **Weights** are target fractions of current equity per asset, shaped ``(T, P)`` for one
  asset or ``(T, A, P)`` (a ``(T,)`` series is one parameter set). Each bar the engine sets
  NaN to 0 (flat), clips ``|w|`` to ``max_position`` and scales the bar's weights down so that
  ``sum_a |w_a| <= leverage``.
* **Fills**: a target decided at the close of bar ``t`` fills at the open of bar ``t + 1``
  (``fill="open"``, no look-ahead). ``fill="close"`` fills at the close of bar ``t`` itself:
  optimistic, for comparison with other tools only.
* **Share-based accounting**: cash and shares per parameter set (one cash account shared by
  all assets). Only when an asset's target *changes* from the target last acted on does the
  engine trade it, to ``w * E_f / price`` shares where ``E_f`` is the equity valued at the
  fill prices; otherwise the shares are held (weights drift with prices). Masked bars
  (``bars.mask`` False) never trade: a change waits for the asset's next real bar.
* **Equity** is marked at each bar's close; ``r_t = E_t / E_{t-1} - 1`` with
  ``E_{-1} = init_cash`` (so ``r_0 = 0`` with ``fill="open"``).
* **Costs** (:mod:`quantarena.engine.costs`) and **stops** (:mod:`quantarena.engine.stops`).
* **Exchange filters** (:mod:`quantarena.engine.filters`, ``filters=``): target quantities
  rounded to the lot size, trades below the minimum notional not filled (CPU backend).
* **Ruin**: when equity reaches ``<= 0`` at a close, every position is closed at that close
  (free of costs) and the parameter set stays flat with zero returns.
* **Carrying an account** (``start=``, ``pending=``): a replay may start from the account
  another replay ended with (:meth:`SimResult.account`): its cash, shares, open trades and
  last target, with ``init_cash`` its equity. ``pending`` gives the targets decided at the
  close of the bar *before* ``bars[0]``; they fill at ``bars[0]``'s open like any other
  target, trading only the difference from what the account holds. Two replays chained
  this way give exactly the numbers of one replay over both spans.
* **Fused rules**: a source with a ``fused()`` method returning a
  :class:`~quantarena.engine.fused.FusedSignal` (the shipped agents' sources) has its
  targets computed inside the replay loop on the CPU, from the shared indicators, instead of
  built as blocks and replayed: the same numbers, without the blocks (``fuse=False`` replays
  the blocks).
* **Streaming**: ``block`` bars at a time, state carried across blocks, so memory stays
  ``O(block * A * P)`` unless ``record`` asks for full arrays. Results do not depend on
  ``block``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from quantarena.data.calendars import ALWAYS_OPEN, bars_per_year
from quantarena.data.panel import BarPanel
from quantarena.engine import layout as L
from quantarena.engine.backend import Backend, get_backend, to_host
from quantarena.engine.costs import CompiledCosts, Costs
from quantarena.engine.filters import ExchangeFilters
from quantarena.engine.fused import FusedSignal
from quantarena.engine.metrics import metrics_from_state
from quantarena.engine.stops import Stops
from quantarena.engine.trades import open_trades, trades_frame

if TYPE_CHECKING:  # pandas loads on first use: an agent actor's replay never needs it
    import pandas as pd

RECORDABLE = ("returns", "equity", "positions")


class SimulationError(ValueError):
    """Bad input to :func:`simulate` (a one-line message naming the argument)."""


@runtime_checkable
class PositionSource(Protocol):
    """Produces target weights block by block so ``(T, P)`` is never materialised at once.

    ``source(t0, t1)`` returns rows ``t0 .. t1 - 1``: ``(t1 - t0, P)`` or ``(t1 - t0, A, P)``,
    float32 or float64, on the backend's device. Calls come in increasing, contiguous
    order; the trade list (``trades=True``) replays the source a second time.
    """

    n_params: int

    def __call__(self, t0: int, t1: int) -> Any: ...


def _fused_of(source: Any, A: int, P: int, T: int) -> FusedSignal | None:
    """The source's fused rule for this replay (None: replay its blocks), checked."""
    getter = getattr(source, "fused", None)
    if not callable(getter):
        return None
    sig = getter()
    if sig is None:
        return None
    if not isinstance(sig, FusedSignal):
        raise SimulationError(f"positions.fused() returned {type(sig).__name__}, not a FusedSignal")
    if sig.n_params != P or sig.carry.shape != (A, P):
        raise SimulationError(
            f"positions.fused(): a rule for {sig.n_params} sets / {sig.carry.shape[0]} assets, "
            f"but the replay has {P} sets and {A} assets"
        )
    if sig.offset < 0 or sig.offset + T > sig.n_rows:
        raise SimulationError(
            f"positions.fused(): indicators hold {sig.n_rows} rows, the replay needs rows "
            f"{sig.offset}..{sig.offset + T - 1}"
        )
    return sig


@dataclass(frozen=True)
class Account:
    """One parameter set's account at the close of a replay's last bar, to start another
    replay from (``simulate(..., start=account)``).

    Attributes:
        cash: cash balance (negative: borrowed for leverage).
        equity: equity at the last close (cash + shares valued at the closes).
        ruined: True once equity reached <= 0 (the account then stays flat).
        assets: ``(NSA, A)`` float64 per-asset state (:mod:`quantarena.engine.layout`):
            shares, the target last acted on, the target decided at the last close (it
            fills at the next replay's first open unless that replay is given ``pending``)
            and the open trade (entry price, trailing anchor, costs so far) that stops and
            trade statistics continue from.
    """

    cash: float
    equity: float
    ruined: bool
    assets: np.ndarray

    @property
    def shares(self) -> np.ndarray:
        """``(A,)`` shares held per asset (negative = short)."""
        return self.assets[L.SH].copy()

    @classmethod
    def flat(cls, n_assets: int, cash: float = 1.0) -> Account:
        """An account holding only ``cash``."""
        return cls(float(cash), float(cash), False, np.zeros((L.NSA, int(n_assets))))


@dataclass
class Accounts:
    """Every parameter set's own account at the close of a replay's last bar
    (``SimResult.accounts()``), to continue each set from where it stood
    (``simulate(..., start=accounts)``): the per-set form of :class:`Account`.

    Attributes:
        cash, equity: ``(P,)`` cash and equity at the last close.
        ruined: ``(P,)`` bool.
        assets: ``(NSA, A, P)`` per-asset state (as :attr:`Account.assets`, one column per set).
    """

    cash: np.ndarray
    equity: np.ndarray
    ruined: np.ndarray
    assets: np.ndarray

    @property
    def n_params(self) -> int:
        return int(self.cash.shape[0])

    @classmethod
    def flat(cls, n_assets: int, n_params: int, cash: float = 1.0) -> Accounts:
        """``n_params`` accounts holding only ``cash``."""
        P = int(n_params)
        return cls(
            np.full(P, float(cash)),
            np.full(P, float(cash)),
            np.zeros(P, bool),
            np.zeros((L.NSA, int(n_assets), P)),
        )

    def take(self, column: int) -> Account:
        """Set ``column``'s account."""
        c = int(column)
        return Account(
            float(self.cash[c]), float(self.equity[c]), bool(self.ruined[c]),
            self.assets[:, :, c].copy(),
        )  # fmt: skip


@dataclass
class SimResult:
    """What :func:`simulate` returns.

    ``metrics``: name -> ``(P,)`` float64 on the host (see :mod:`quantarena.engine.metrics`).
    ``returns`` / ``equity``: ``(T, P)`` if recorded (on the backend's device);
    ``positions``: held weights at each close, ``shares * close / equity``, ``(T, P)`` for a
    one-asset input or ``(T, A, P)``. ``trades``: the trade list if asked for
    (:mod:`quantarena.engine.trades`).
    """

    metrics: dict[str, np.ndarray]
    returns: Any | None
    equity: Any | None
    positions: Any | None
    trades: pd.DataFrame | None
    backend: str
    n_bars: int
    n_params: int
    state: tuple[np.ndarray, np.ndarray] | None = None

    def account(self, column: int = 0) -> Account:
        """The account of parameter set ``column`` after the last bar (to continue from)."""
        if self.state is None:
            raise ValueError("this result holds no final state")
        S, SA = self.state
        if not 0 <= int(column) < S.shape[1]:
            raise IndexError(f"column {column} out of range: there are {S.shape[1]} sets")
        c = int(column)
        return Account(
            cash=float(S[L.CASH, c]),
            equity=float(S[L.EQ_PREV, c]),
            ruined=bool(S[L.RUINED, c] != 0.0),
            assets=SA[:, :, c].copy(),
        )

    def accounts(self) -> Accounts:
        """Every set's account after the last bar (to continue each set from)."""
        if self.state is None:
            raise ValueError("this result holds no final state")
        S, SA = self.state
        return Accounts(
            cash=np.array(S[L.CASH], dtype=np.float64),
            equity=np.array(S[L.EQ_PREV], dtype=np.float64),
            ruined=S[L.RUINED] != 0.0,
            assets=np.array(SA, dtype=np.float64),
        )

    def metrics_frame(self) -> pd.DataFrame:
        """The metrics as a DataFrame: one row per parameter set (index ``param``)."""
        import pandas as pd

        df = pd.DataFrame({k: np.asarray(v) for k, v in self.metrics.items()})
        df.index.name = "param"
        return df


def _check_panel(bars: BarPanel) -> None:
    m = to_host(bars.mask).astype(bool, copy=False)
    for name in ("open", "high", "low", "close"):
        a = to_host(getattr(bars, name))
        bad = m & ~(np.isfinite(a) & (a > 0))
        if bad.any():
            t, j = np.argwhere(bad)[0]
            raise SimulationError(
                f"bars row {t} ({bars.symbols[j]}), field {name!r}: price {a[t, j]!r} is not a "
                "positive number on an unmasked bar — fix the data or mask the bar"
            )
    v = to_host(bars.volume)
    if (m & ~(np.isfinite(v) & (v >= 0))).any():
        t, j = np.argwhere(m & ~(np.isfinite(v) & (v >= 0)))[0]
        raise SimulationError(
            f"bars row {t} ({bars.symbols[j]}), field 'volume': {v[t, j]!r} is not a number "
            ">= 0 — fix the data or mask the bar"
        )


def _kernel_array(xp: Any, a: Any, dtype: Any) -> Any:
    """``a`` on the device as a C-contiguous array of ``dtype``; on the CPU also writeable
    (Numba compiles a separate kernel for read-only arrays, e.g. pandas' copy-on-write ones),
    copying only when needed."""
    if xp is np:
        return np.require(a, dtype=dtype, requirements=["C_CONTIGUOUS", "WRITEABLE"])
    return xp.ascontiguousarray(xp.asarray(a, dtype=dtype))


def _kernel_prices(bars: BarPanel) -> tuple[np.ndarray, ...]:
    """open, high, low, close, volume for the kernels: on masked cells a non-finite price
    becomes the last known close (0 before the asset's first bar: never traded, never held)
    so that held positions are valued at their last close; non-finite volume becomes 0."""
    m = to_host(bars.mask).astype(bool, copy=False)
    close = to_host(bars.close).astype(np.float64, copy=False)
    bad = ~np.isfinite(close)
    if bad.any():
        import pandas as pd

        close = pd.DataFrame(np.where(bad, np.nan, close)).ffill().fillna(0.0).to_numpy()
    out = []
    for name in ("open", "high", "low"):
        a = to_host(getattr(bars, name)).astype(np.float64, copy=False)
        fix = ~m & ~np.isfinite(a)
        out.append(np.where(fix, close, a) if fix.any() else a)
    vol = to_host(bars.volume).astype(np.float64, copy=False)
    vol = np.where(np.isfinite(vol), vol, 0.0)
    return (*out, close, vol)


def _param_array(name: str, value: Any, n_params: int, *, positive: bool = False) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(n_params, float(a))
    if a.shape != (n_params,):
        raise SimulationError(
            f"{name} has shape {np.shape(value)}, expected a scalar or ({n_params},): one value "
            "per parameter set"
        )
    if not np.all(np.isfinite(a)) or np.any(a < 0) or (positive and np.any(a == 0)):
        raise SimulationError(f"{name} must be finite and {'> 0' if positive else '>= 0'}")
    return np.ascontiguousarray(a)


class _ArraySource:
    """Wraps a full positions array as a source of blocks."""

    def __init__(self, arr: Any) -> None:
        self.arr = arr
        self.n_params = 1 if arr.ndim == 1 else int(arr.shape[-1])

    def __call__(self, t0: int, t1: int) -> Any:
        return self.arr[t0:t1]


def _kernel(backend: Backend):
    if backend.is_gpu:
        from quantarena.engine import kernels_gpu  # noqa: PLC0415

        return kernels_gpu.run_block
    from quantarena.engine import kernels_cpu  # noqa: PLC0415

    return kernels_cpu.run_block


def _as_block(blk: Any, xp: Any, B: int, A: int, P: int, t0: int) -> Any:
    blk = xp.asarray(blk)
    if blk.ndim == 1:
        blk = blk.reshape(-1, 1)
    if blk.ndim == 2:
        if A != 1:
            raise SimulationError(
                f"positions block at bar {t0} is 2-D {tuple(blk.shape)} but the panel has {A} "
                "assets — give (T, A, P) weights for a multi-asset panel"
            )
        blk = blk.reshape(blk.shape[0], 1, blk.shape[1])
    if blk.ndim != 3 or tuple(blk.shape) != (B, A, P):
        raise SimulationError(
            f"positions block at bar {t0} has shape {tuple(blk.shape)}, expected "
            f"({B}, {P}) or ({B}, {A}, {P})"
        )
    if blk.dtype not in (xp.float64, xp.float32):
        blk = blk.astype(xp.float64)
    return _kernel_array(xp, blk, blk.dtype)


def _pending_targets(
    xp: Any, pending: Any, A: int, P: int, maxpos: np.ndarray, leverage: float
) -> Any:
    """``pending`` ``(P,)`` / ``(A, P)`` processed as the kernels process a row of targets
    (NaN -> 0, clip to ``max_position``, scale so that ``sum_a |w_a| <= leverage``), with the
    same float64 operations in the same order, so the result is bit-identical."""
    w = xp.asarray(pending, dtype=xp.float64)
    given = tuple(w.shape)
    if w.ndim == 1 and A == 1:
        w = w.reshape(1, -1)
    if tuple(w.shape) != (A, P):
        raise SimulationError(
            f"pending has shape {given}, expected ({P},) or ({A}, {P}): one target "
            "per asset and parameter set"
        )
    mp = xp.asarray(maxpos, dtype=xp.float64)
    w = xp.where(w != w, 0.0, w)
    w = xp.where(w > mp, mp, xp.where(w < -mp, -mp, w))
    gross = xp.zeros(P, dtype=xp.float64)
    for a in range(A):
        gross = gross + xp.abs(w[a])
    lev = float(leverage)
    over = gross > lev
    sc = xp.where(over, lev / xp.where(over, gross, 1.0), 1.0)
    return xp.where(over, w * sc, w)


def simulate(
    bars: BarPanel,
    positions: Any,
    costs: Costs | None = None,
    *,
    fill: Literal["open", "close"] = "open",
    stops: Stops | None = None,
    max_position: float | np.ndarray = 1.0,
    leverage: float = 1.0,
    periods_per_year: float | None = None,
    record: Sequence[str] = (),
    trades: bool = False,
    backend: str | Backend = "auto",
    block: int = 4096,
    init_cash: float = 1.0,
    calendar: str = ALWAYS_OPEN,
    start: Account | Accounts | None = None,
    pending: Any = None,
    fuse: bool = True,
    filters: ExchangeFilters | None = None,
) -> SimResult:
    """Replay ``bars`` for every parameter set's target weights; see the module docstring.

    Args:
        bars: the panel (``T`` bars, ``A`` assets).
        positions: target weights ``(T,)``, ``(T, P)`` (one asset), ``(T, A, P)``, or a
            :class:`PositionSource`.
        costs: fees, slippage, impact, funding (``None``: free).
        fill: ``"open"`` (next bar's open, default) or ``"close"`` (same bar's close).
        stops: stop-loss / take-profit / trailing (``None``: none).
        max_position: cap on ``|w|`` of any one asset, scalar or ``(P,)``.
        leverage: cap on ``sum_a |w_a|``.
        periods_per_year: bars per year, for annualised figures and for CAGR's years
            (``n_bars / periods_per_year``); default from ``calendar`` and the bar interval
            (:func:`quantarena.data.calendars.bars_per_year`).
        record: any of ``"returns"``, ``"equity"``, ``"positions"``: full arrays.
        trades: also build the trade list (replays the positions a second time).
        backend: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        block: bars per block.
        init_cash: starting equity (flat). Ignored with ``start``: the account's equity.
        calendar: the market's trading calendar, ``"24/7"`` (crypto, default) or an
            exchange code such as ``"XNYS"``; used only when ``periods_per_year`` is None.
        start: the account every parameter set starts from (default: flat ``init_cash``),
            or :class:`Accounts`, one per set (each set continues its own); metrics
            (returns, drawdown, trades closed, fees) count from ``bars[0]`` on, from each
            set's starting equity.
        pending: target weights decided at the close of the bar before ``bars[0]``,
            ``(P,)`` (one asset) or ``(A, P)``, raw like ``positions`` (NaN, caps and
            leverage applied here); they fill at ``bars[0]``'s open (``fill="open"`` only).
        fuse: on the CPU, compute the targets of a source that offers a fused rule inside
            the replay loop (identical numbers, faster); False replays its blocks.
        filters: lot size and minimum notional of each asset (``None``: none); amounts in
            the account's units, so give ``init_cash`` in the quote currency.
    """
    be = get_backend(backend)
    xp = be.xp
    if not isinstance(bars, BarPanel):
        raise SimulationError(f"bars must be a BarPanel, got {type(bars).__name__}")
    T, A = bars.n_bars, bars.n_assets
    if T == 0:
        raise SimulationError("bars is empty: nothing to simulate — load some bars first")
    if fill not in ("open", "close"):
        raise SimulationError(f"fill must be 'open' or 'close', got {fill!r}")
    record = tuple(record)
    for r in record:
        if r not in RECORDABLE:
            raise SimulationError(f"record: unknown {r!r}, use any of {', '.join(RECORDABLE)}")
    block = int(block)
    if block < 1:
        raise SimulationError(f"block must be >= 1, got {block}")
    per_set = isinstance(start, Accounts)
    if start is not None:
        if start.assets.shape[:2] != (L.NSA, A):
            raise SimulationError(
                f"start: the account holds {start.assets.shape[1]} assets but bars has {A}"
            )
        init_cash = np.array(start.equity, dtype=np.float64) if per_set else float(start.equity)
    if pending is not None and fill != "open":
        raise SimulationError(
            'pending targets fill at the first open: use fill="open" (with fill="close" the '
            "previous bar's target traded at its own close)"
        )
    if start is None and not (np.isfinite(init_cash) and init_cash > 0):
        raise SimulationError(f"init_cash must be > 0, got {init_cash!r}")
    if not (np.isfinite(leverage) and leverage > 0):
        raise SimulationError(f"leverage must be > 0, got {leverage!r}")

    # positions: a source, or an array served block by block
    if isinstance(positions, PositionSource) and not hasattr(positions, "shape"):
        source = positions
        P = int(source.n_params)
        multi = A > 1
    else:
        arr = positions if hasattr(positions, "ndim") else np.asarray(positions)
        if arr.ndim not in (1, 2, 3):
            raise SimulationError(f"positions must be (T,), (T, P) or (T, A, P), got {arr.shape}")
        if arr.shape[0] != T:
            raise SimulationError(
                f"positions has {arr.shape[0]} rows but bars has {T} — one row per bar"
            )
        if arr.ndim == 3 and arr.shape[1] != A:
            raise SimulationError(f"positions has {arr.shape[1]} assets but bars has {A}")
        if arr.ndim < 3 and A != 1:
            raise SimulationError(
                f"positions is {arr.ndim}-D but the panel has {A} assets — give (T, A, P)"
            )
        multi = arr.ndim == 3
        source = _ArraySource(arr)
        P = source.n_params
    if P < 1:
        raise SimulationError("positions has no parameter sets (P = 0)")
    if per_set and start.assets.shape[2] != P:
        raise SimulationError(f"start holds {start.assets.shape[2]} accounts for {P} sets")
    sig = _fused_of(source, A, P, T) if (fuse and not be.is_gpu) else None

    _check_panel(bars)
    filt = None
    if filters is not None:
        try:
            filt = filters.compile(A)
        except ValueError as exc:
            raise SimulationError(str(exc)) from None
        if not (filt[0].any() or filt[1].any()):
            filt = None
        elif be.is_gpu:
            raise SimulationError(
                "filters: exchange filters run on the CPU backend only — use backend='cpu'"
            )
    fkw = {} if filt is None else {"filters": filt}
    cc: CompiledCosts = (costs or Costs()).compile(to_host(bars.ts), bars.interval_ns, A)
    st = stops or Stops()
    sl, tp, tr = st.compile(P)
    has_stops = bool(np.isfinite(sl).any() or np.isfinite(tp).any() or np.isfinite(tr).any())
    maxpos = _param_array("max_position", max_position, P)
    ppy = (
        float(periods_per_year)
        if periods_per_year is not None
        else bars_per_year(calendar, int(bars.interval_ns))
    )
    if not (np.isfinite(ppy) and ppy > 0):
        raise SimulationError(f"periods_per_year must be > 0, got {periods_per_year!r}")

    f64 = xp.float64
    start_assets = None
    if start is not None:
        start_assets = np.array(start.assets, dtype=np.float64)
        start_assets[L.ETS] = np.where(start_assets[L.DIR] != 0.0, -1.0, 0.0)  # entered before
        if not per_set:
            start_assets = start_assets[:, :, None]
    pend = None if pending is None else _pending_targets(xp, pending, A, P, maxpos, leverage)
    with np.errstate(divide="ignore"):
        inv_init = np.where(np.asarray(init_cash) != 0, 1.0 / np.asarray(init_cash), 0.0)
    panel = tuple(_kernel_array(xp, a, f64) for a in _kernel_prices(bars))
    mask = _kernel_array(xp, to_host(bars.mask), xp.bool_)
    fund = _kernel_array(xp, cc.funding, f64) if cc.funding is not None else xp.zeros((1, 1), f64)
    dev = {
        k: _kernel_array(xp, v, f64)
        for k, v in (("maxpos", maxpos), ("sl", sl), ("tp", tp), ("tr", tr))
    }
    kernel = _kernel(be)
    if sig is not None:
        from quantarena.engine import kernels_cpu  # noqa: PLC0415

    def run(rec_on: bool, offs: Any, RF: Any, RI: Any, recs: dict[str, Any]) -> tuple[Any, Any]:
        S = xp.zeros((L.NS, P), f64)
        SA = xp.zeros((L.NSA, A, P), f64)
        S[L.CASH] = init_cash if start is None else xp.asarray(start.cash)
        S[L.EQ_PREV] = xp.asarray(init_cash)
        S[L.PEAK] = xp.asarray(init_cash)
        S[L.INV_PEAK] = xp.asarray(inv_init)
        S[L.LAST_PEAK_T] = -1.0
        S[L.TROUGH] = xp.asarray(init_cash)
        if start is not None:
            S[L.RUINED] = xp.asarray(np.asarray(start.ruined, dtype=np.float64))
            SA[...] = xp.asarray(start_assets)
        if pend is not None:
            SA[L.PEND] = pend
        empty2 = xp.zeros((0, 0), f64)
        empty3 = xp.zeros((0, 0, 0), f64)
        if sig is not None:
            carry = np.array(sig.carry, dtype=np.float32, order="C")
            raw = np.zeros((A, P), np.float32)
            args = (
                sig.kind, int(sig.offset), _kernel_array(xp, sig.x0, f64),
                _kernel_array(xp, sig.x1, f64), _kernel_array(xp, sig.x2, f64),
                _kernel_array(xp, sig.i1, xp.int64), _kernel_array(xp, sig.i2, xp.int64),
                _kernel_array(xp, sig.f1, f64), _kernel_array(xp, sig.f2, f64),
                float(sig.scale), bool(sig.long_only), carry, raw,
            )  # fmt: skip
            step = max(block, 65536)  # no blocks to hold: long steps
            for t0 in range(0, T, step):
                t1 = min(T, t0 + step)
                kernels_cpu.run_block_fused(
                    t0, t1 - t0, args, *panel, mask, fund, cc.funding is not None,
                    dev["maxpos"], float(leverage), cc.fee_bps, cc.slippage_bps, cc.impact_k_bps,
                    cc.impact_alpha, cc.impact_max_bps, dev["sl"], dev["tp"], dev["tr"],
                    has_stops, fill == "close", S, SA,
                    recs["returns"][t0:t1] if "returns" in recs else empty2,
                    recs["equity"][t0:t1] if "equity" in recs else empty2,
                    recs["positions"][t0:t1] if "positions" in recs else empty3,
                    rec_on, offs, RF, RI, **fkw,
                )  # fmt: skip
            if not rec_on and sig.finish is not None:
                sig.finish(carry, raw, int(sig.offset) + T)
            return S, SA
        for t0 in range(0, T, block):
            t1 = min(T, t0 + block)
            blk = _as_block(source(t0, t1), xp, t1 - t0, A, P, t0)
            kernel(
                t0, blk, *panel, mask, fund, cc.funding is not None, dev["maxpos"],
                float(leverage), cc.fee_bps, cc.slippage_bps, cc.impact_k_bps,
                cc.impact_alpha, cc.impact_max_bps, dev["sl"], dev["tp"], dev["tr"], has_stops,
                fill == "close", S, SA,
                recs["returns"][t0:t1] if "returns" in recs else empty2,
                recs["equity"][t0:t1] if "equity" in recs else empty2,
                recs["positions"][t0:t1] if "positions" in recs else empty3,
                rec_on, offs, RF, RI, **fkw,
            )  # fmt: skip
        return S, SA

    recs = {k: xp.zeros((T, P), f64) for k in ("returns", "equity") if k in record}
    if "positions" in record:
        recs["positions"] = xp.zeros((T, A, P), f64)
    no_offs = xp.zeros(P, xp.int64)
    no_rf = xp.zeros((0, L.NRF), f64)
    no_ri = xp.zeros((0, L.NRI), xp.int64)
    S, SA = run(False, no_offs, no_rf, no_ri, recs)
    trade_df = None
    if trades:
        counts = to_host(S[L.NTR]).astype(np.int64)
        offs = np.zeros(P, np.int64)
        offs[1:] = np.cumsum(counts)[:-1]
        n_rec = int(counts.sum())
        RF = xp.zeros((n_rec, L.NRF), f64)
        RI = xp.zeros((n_rec, L.NRI), xp.int64)
        S2, SA2 = run(True, xp.asarray(offs), RF, RI, {})
        if not np.array_equal(to_host(S2[L.NREC]).astype(np.int64), counts):
            raise RuntimeError("trade recording pass disagrees with the first pass (a bug)")
        SA_h = to_host(SA2)
        last_close = to_host(bars.close[-1]).astype(np.float64)
        oRF, oRI = open_trades(SA_h, last_close, T - 1)
        RF_all = np.concatenate([to_host(RF), oRF])
        RI_all = np.concatenate([to_host(RI), oRI])
        trade_df = trades_frame(RF_all, RI_all, to_host(bars.ts), list(bars.symbols))

    S_h = to_host(S)
    metrics = metrics_from_state(
        S_h,
        n_bars=T,
        interval_ns=int(bars.interval_ns),
        init_cash=(
            np.where(init_cash != 0, init_cash, 1.0)
            if per_set
            else (float(init_cash) if init_cash != 0 else 1.0)
        ),
        periods_per_year=ppy,
    )
    pos_rec = recs.get("positions")
    if pos_rec is not None and not multi:
        pos_rec = pos_rec[:, 0, :]
    return SimResult(
        metrics=metrics,
        returns=recs.get("returns"),
        equity=recs.get("equity"),
        positions=pos_rec,
        trades=trade_df,
        backend=be.name,
        n_bars=T,
        n_params=P,
        state=(S_h, to_host(SA)),
    )
