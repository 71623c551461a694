"""The paper exchange: one agent's account, filled bar by bar by the backtest's own engine.

:class:`PaperExchange` holds the engine's state arrays (:mod:`quantarena.engine.layout`) for
one account and replays each new bar through the CPU bar kernel
(``kernels_cpu._multi_param``, the reference loop behind
:func:`quantarena.engine.kernels_cpu.run_block`) — the very code a backtest runs — so fills,
fees, funding and equity are those of :func:`quantarena.engine.simulate` over the same bars,
bit for bit. Conventions are the engine's:

* a target decided at the close of bar ``t`` fills at the open of bar ``t + 1`` (market order,
  taker fee, slippage and impact against the trader);
* targets are fractions of equity per asset; NaN → 0, ``|w|`` clipped to ``max_position``,
  scaled so that ``sum |w| <= leverage``; only a *changed* target trades;
* equity is marked at each close; cash and shares are in the quote currency and base units;
* exchange filters (:class:`~quantarena.engine.filters.ExchangeFilters`: lot size in asset
  units, minimum notional in the quote currency) are the engine's own, applied by the same
  kernel — give the account an ``init_cash`` in the quote currency when they are on;
* stops (:class:`~quantarena.engine.stops.Stops`: stop-loss, take-profit, trailing) are the
  engine's own rules, run by the same kernel inside each bar; a stop exit is a fill with the
  client id ``{account}:{bar}:{symbol}:{reason}`` (``stop_loss``, ``take_profit``,
  ``trailing_stop``) and its ``reason``, priced as the kernel prices it.

An **order** is a target change sent to the exchange at a close; its idempotent client id
is ``{account}:{bar index}:{symbol}`` (the bar whose close decided it), so re-sending the
same decision after a restart names the same order. A **fill** is its execution at the next
open. Pure: no Redis, no Ray.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from quantarena.engine import layout as L
from quantarena.engine.costs import DEFAULT_COSTS, Costs
from quantarena.engine.filters import ExchangeFilters
from quantarena.engine.stops import Stops

__all__ = ["BarStep", "Fill", "Order", "PaperExchange", "client_order_id"]


def client_order_id(account: str, bar: int, symbol: str) -> str:
    """The idempotent client id of the order decided at the close of ``bar``."""
    return f"{account}:{int(bar)}:{symbol}"


@dataclass(frozen=True)
class Order:
    """A target change decided at a close, to fill at the next open.

    ``target`` is the processed target weight (fraction of equity), ``prev`` the one it
    replaces; ``ts`` the deciding bar's open time (ns, UTC)."""

    client_id: str
    bar: int
    ts: int
    symbol: str
    target: float
    prev: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fill:
    """An executed order: ``qty`` shares (negative = sell) at ``price`` (the fill price,
    slippage and impact included), ``fee`` in cash, at the open of bar ``bar`` — or, for a
    stop exit (``reason`` ``stop_loss`` / ``take_profit`` / ``trailing_stop``; ``""`` for
    an order's fill), inside the bar at the stop's price."""

    client_id: str
    bar: int
    ts: int
    symbol: str
    qty: float
    price: float
    fee: float
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BarStep:
    """What one bar did to the account: the fills at its open, the orders decided at its
    close, and the account marked at its close."""

    bar: int
    ts: int
    fills: list[Fill]
    orders: list[Order]
    equity: float
    cash: float
    shares: np.ndarray
    weights: np.ndarray  # held weights at the close, shares * close / equity


class PaperExchange:
    """One account traded bar by bar with the bar engine's fill and cost models.

    Args:
        account: the account's name (prefix of its client order ids).
        symbols: the ``A`` instruments, in column order.
        interval_ns: the bar length (funding times fall inside ``[ts, ts + interval)``).
        costs: fees, slippage, impact, funding; default the backtest's
            :data:`~quantarena.engine.costs.DEFAULT_COSTS`.
        max_position: cap on ``|w|`` per asset (fraction of equity).
        leverage: cap on ``sum |w|``.
        init_cash: starting equity (quote currency when ``filters`` are on).
        filters: lot size / minimum notional per asset (None: none), as the backtest's
            ``simulate(filters=...)``.
        stops: stop-loss / take-profit / trailing stop (fractions of price; None: none), as
            the backtest's ``simulate(stops=...)``.
    """

    def __init__(
        self,
        account: str,
        symbols: list[str],
        interval_ns: int,
        costs: Costs | None = DEFAULT_COSTS,
        *,
        max_position: float = 0.10,
        leverage: float = 1.0,
        init_cash: float = 1.0,
        filters: ExchangeFilters | None = None,
        stops: Stops | None = None,
    ) -> None:
        if not (np.isfinite(init_cash) and init_cash > 0):
            raise ValueError(f"init_cash must be > 0, got {init_cash!r}")
        self.account = str(account)
        self.symbols = list(symbols)
        self.A = len(self.symbols)
        self.interval_ns = int(interval_ns)
        self.costs = costs or Costs()
        self.maxpos = np.full(1, float(max_position))
        self.leverage = float(leverage)
        self.S = np.zeros((L.NS, 1))
        self.SA = np.zeros((L.NSA, self.A, 1))
        self.S[L.CASH] = init_cash
        self.S[L.EQ_PREV] = init_cash
        self.S[L.PEAK] = init_cash
        self.S[L.INV_PEAK] = 1.0 / init_cash
        self.S[L.LAST_PEAK_T] = -1.0
        self.S[L.TROUGH] = init_cash
        self.init_cash = float(init_cash)
        self.last_close = np.zeros(self.A)
        self.n_bars = 0  # bars replayed so far (the next bar's index)
        self.pending: dict[str, Order] = {}  # orders decided, not yet filled
        self._nan = np.full((1, self.A, 1), np.nan)
        cc = self.costs.compile(np.zeros(1, np.int64), self.interval_ns, self.A)
        self._fee, self._slip = cc.fee_bps, cc.slippage_bps
        self._imp = (cc.impact_k_bps, cc.impact_alpha, cc.impact_max_bps)
        self._empty = (np.zeros((0, 0)), np.zeros((0, 0)), np.zeros((0, 0, 0)))
        self._no_rec = (np.zeros(1, np.int64), np.zeros((0, L.NRF)), np.zeros((0, L.NRI), np.int64))
        self.stops = stops
        self._stops = (stops or Stops()).compile(1)
        self._has_stops = bool(any(np.isfinite(x).any() for x in self._stops))
        self._ts = 0
        self.filters = filters
        if filters is None:
            self._lot = self._min_notional = np.zeros(self.A)
        else:
            self._lot, self._min_notional = filters.compile(self.A)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle (a trader's snapshot); a snapshot written before stops existed has none."""
        state.setdefault("stops", None)
        state.setdefault("_has_stops", False)
        self.__dict__.update(state)

    # ------------------------------------------------------------------ state

    @property
    def equity(self) -> float:
        """Equity at the last close."""
        return float(self.S[L.EQ_PREV, 0])

    @property
    def cash(self) -> float:
        return float(self.S[L.CASH, 0])

    @property
    def shares(self) -> np.ndarray:
        """``(A,)`` shares held."""
        return self.SA[L.SH, :, 0].copy()

    @property
    def fees(self) -> float:
        """Commissions paid so far (cash)."""
        return float(self.S[L.FEES, 0])

    @property
    def ruined(self) -> bool:
        return bool(self.S[L.RUINED, 0] != 0.0)

    @property
    def target(self) -> np.ndarray:
        """``(A,)`` the processed target the account trades towards (filled or pending)."""
        return self.SA[L.PEND, :, 0].copy()

    def weights(self) -> np.ndarray:
        """``(A,)`` held weights at the last close (``shares * close / equity``)."""
        eq = self.equity
        sh = self.SA[L.SH, :, 0]
        return np.where((sh != 0) & (eq != 0), sh * self.last_close / (eq if eq else 1.0), 0.0)

    def state(self) -> dict[str, Any]:
        """Everything needed to restore the account (:meth:`restore`), JSON-friendly."""
        return {
            "account": self.account,
            "symbols": self.symbols,
            "n_bars": self.n_bars,
            "S": self.S[:, 0].tolist(),
            "SA": self.SA[:, :, 0].tolist(),
            "last_close": self.last_close.tolist(),
            "ts": self._ts,
            "pending": [o.as_dict() for o in self.pending.values()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Put the account back to a :meth:`state` snapshot."""
        if list(state["symbols"]) != self.symbols:
            raise ValueError(f"snapshot holds {state['symbols']}, the exchange {self.symbols}")
        self.n_bars = int(state["n_bars"])
        self.S[:, 0] = np.asarray(state["S"], np.float64)
        self.SA[:, :, 0] = np.asarray(state["SA"], np.float64)
        self.last_close = np.asarray(state["last_close"], np.float64)
        self._ts = int(state["ts"])
        self.pending = {d["symbol"]: Order(**d) for d in state["pending"]}

    # ------------------------------------------------------------------ one bar

    def _prices(self, o: Any, h: Any, lo: Any, c: Any, v: Any) -> tuple[np.ndarray, ...]:
        """The bar as the engine's kernel sees it (``simulate._kernel_prices``): an asset
        without a bar (non-finite close) is masked and valued at its last close."""
        o, h, lo, c = (np.asarray(x, np.float64).reshape(1, self.A) for x in (o, h, lo, c))
        v = np.broadcast_to(np.asarray(v, np.float64), (self.A,)).reshape(1, self.A)
        mask = np.isfinite(c)
        bad = mask & ~(np.isfinite(o) & (o > 0) & np.isfinite(h) & np.isfinite(lo) & (c > 0))
        if bad.any():
            j = int(np.flatnonzero(bad[0])[0])
            raise ValueError(
                f"bar {self.n_bars} ({self.symbols[j]}): prices open={o[0, j]!r} "
                f"close={c[0, j]!r} are not positive numbers — drop or repair the message"
            )
        cf = np.where(mask, c, self.last_close[None, :])
        fix = ~mask

        def filled(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.where(fix & ~np.isfinite(a), cf, a))

        vol = np.ascontiguousarray(np.where(np.isfinite(v), v, 0.0))
        return filled(o), filled(h), filled(lo), np.ascontiguousarray(cf), vol, mask

    def on_bar(
        self,
        ts: int,
        open: Any,  # noqa: A002 - the bar field's name
        high: Any,
        low: Any,
        close: Any,
        volume: Any,
        target: Any,
    ) -> BarStep:
        """Replay one bar: :meth:`mark` it (fills at its open, equity at its close), then
        :meth:`decide` ``target`` ``(A,)`` (raw weights decided at this close, already through
        the risk check) as the orders to fill at the next open."""
        fills = self.mark(ts, open, high, low, close, volume)
        orders = self.decide(target)
        return self.step_report(fills, orders)

    def step_report(self, fills: list[Fill], orders: list[Order]) -> BarStep:
        """The :class:`BarStep` of the bar just replayed."""
        return BarStep(
            self.n_bars - 1, self._ts, fills, orders, self.equity, self.cash, self.shares,
            self.weights(),
        )  # fmt: skip

    def mark(
        self,
        ts: int,
        open: Any,  # noqa: A002 - the bar field's name
        high: Any,
        low: Any,
        close: Any,
        volume: Any,
    ) -> list[Fill]:
        """Replay the next bar through the engine: the pending orders fill at its open, the
        account is marked at its close. Call :meth:`decide` next (before the next bar)."""
        from quantarena.engine import kernels_cpu

        op, hi, lo, cl, vol, mask = self._prices(open, high, low, close, volume)
        t = self.n_bars
        S, SA = self.S, self.SA
        sh0 = SA[L.SH, :, 0].copy()
        # the kernel sees this bar as bar 0: shift the stored bar indices by -t, then back
        S[L.LAST_PEAK_T] -= t
        SA[L.ETS] -= t
        fund = None
        if self.costs.funding is not None:
            fund = self.costs.funding.per_bar(np.array([ts], np.int64), self.interval_ns, self.A)

        def replay(S: np.ndarray, SA: np.ndarray, has_stops: bool) -> None:
            # the engine's per-parameter-set replay (serial: no thread pool to wake per bar)
            kernels_cpu._multi_param(
                0, 0, self._nan.shape[0], self._nan, *kernels_cpu.NO_SIGNAL, op, hi, lo, cl,
                vol, mask, fund if fund is not None else np.zeros((1, 1)), fund is not None,
                self.maxpos, self.leverage, self._fee, self._slip, *self._imp, self._lot,
                self._min_notional, *self._stops, has_stops, False, S, SA, *self._empty, False,
                *self._no_rec,
            )  # fmt: skip

        mid = None
        if self._has_stops:
            # the account after this open's fills, before the stops inside the bar: the same
            # bar replayed without stops on a copy (the open's fills come first either way)
            mid = SA.copy()
            replay(S.copy(), mid, False)
        replay(S, SA, self._has_stops)
        S[L.LAST_PEAK_T] += t
        SA[L.ETS] += t
        # the kernel processed a NaN row into PEND; decide() puts the real target there
        SA[L.PEND, :, 0] = SA[L.LAST, :, 0]
        fills = self._fills(t, ts, sh0, op[0], mask[0], cl[0], vol[0], mid, hi[0], lo[0])
        self.last_close = cl[0].copy()
        self.n_bars = t + 1
        self._ts = int(ts)
        return fills

    def decide(self, target: Any) -> list[Order]:
        """Take ``target`` ``(A,)`` (raw weights decided at the close just marked) as what to
        trade at the next open; returns the orders it makes (changed targets)."""
        from quantarena.engine.simulate import _pending_targets

        if self.ruined:
            return []
        SA = self.SA
        t = self.n_bars - 1
        prev = SA[L.LAST, :, 0].copy()  # the target last acted on
        # processed by the engine's own function (bit-identical to the kernel's)
        new = _pending_targets(
            np, np.asarray(target, np.float64).reshape(self.A, 1), self.A, 1, self.maxpos,
            self.leverage,
        )[:, 0]  # fmt: skip
        SA[L.PEND, :, 0] = new
        orders: list[Order] = []
        for a in range(self.A):
            sym = self.symbols[a]
            if new[a] != prev[a]:
                cid = client_order_id(self.account, t, sym)
                o = Order(cid, t, self._ts, sym, float(new[a]), float(prev[a]))
                orders.append(o)
                self.pending[sym] = o
            else:
                self.pending.pop(sym, None)
        return orders

    def _fills(
        self,
        t: int,
        ts: int,
        sh0: np.ndarray,
        op: np.ndarray,
        mask: np.ndarray,
        cl: np.ndarray,
        vol: np.ndarray,
        mid: np.ndarray | None = None,
        hi: np.ndarray | None = None,
        lo: np.ndarray | None = None,
    ) -> list[Fill]:
        """The fills of this bar: at its open (the pending orders), then — with stops — the
        stop exits inside it, found by the kernel's own rules (``_levels``, ``_stop_hit``) on
        ``mid`` (the account after the open's fills), priced with the kernel's formula
        (``_fill``)."""
        from quantarena.engine import kernels_cpu

        out = []
        sh1 = (mid if mid is not None else self.SA)[L.SH, :, 0]
        for a in range(self.A):
            dsh = float(sh1[a] - sh0[a])
            sym = self.symbols[a]
            order = self.pending.get(sym)
            if not mask[a] or order is None:
                continue
            self.pending.pop(sym)
            if dsh == 0.0:
                continue
            fpx, fee = self._price(dsh, float(op[a]), float(vol[a] * cl[a]))
            out.append(Fill(order.client_id, t, int(ts), sym, dsh, fpx, fee))
        if mid is None or hi is None or lo is None:
            return out
        sl, tp, tr = (float(x[0]) for x in self._stops)
        for a in range(self.A):
            sh = float(mid[L.SH, a, 0])
            if sh == 0.0 or not mask[a]:
                continue
            lvl, why, t_lvl = kernels_cpu._levels(sh, mid[L.EPX, a, 0], mid[L.BEST, a, 0], sl, tp,
                                                  tr)  # fmt: skip
            px, reason = kernels_cpu._stop_hit(sh, op[a], hi[a], lo[a], lvl, why, t_lvl)
            if reason < 0:
                continue
            name = L.EXIT_REASONS[int(reason)]
            sym = self.symbols[a]
            fpx, fee = self._price(-sh, float(px), float(vol[a] * cl[a]))
            cid = f"{client_order_id(self.account, t, sym)}:{name}"
            out.append(Fill(cid, t, int(ts), sym, -sh, fpx, fee, name))
        return out

    def _price(self, dsh: float, px: float, bar_notional: float) -> tuple[float, float]:
        """The fill price and fee of trading ``dsh`` shares at base price ``px`` (the
        kernel's ``_fill``: slippage and impact against the trader, taker fee)."""
        k, alpha, imax = self._imp
        side = 1.0 if dsh > 0.0 else -1.0
        q = abs(dsh)
        adj = self._slip
        if k > 0.0:
            adj += min(k * (q * px / bar_notional) ** alpha, imax) if bar_notional > 0.0 else imax
        fpx = px * (1.0 + side * adj * 1e-4)
        return fpx, q * fpx * self._fee * 1e-4
