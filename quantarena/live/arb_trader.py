"""An arbitrage paper trader: one two-leg agent (``pairs_arb``, ``cross_venue_arb``; ONE
parameter set) on a live tick feed carrying both legs, run by the tick backtest's own kernel.

:class:`ArbPaperTrader` receives each leg's events (quotes and trades, exchange-time order) in
batches of any size (:meth:`ArbPaperTrader.on_events`) and runs them through the agent's
streaming step (:class:`~quantarena.strategies.arbitrage.TwoLegStream`): the joint quote
clock, the pairs signal and the taker kernel
(:func:`~quantarena.engine.tick.taker.run_taker2`) are the backtest's, so both legs fill at
their venue's touch after that venue's entry latency and pay its taker fee, and the orders,
fills, fees, positions and equity are exactly the backtest's for any batching. Quotes that
may still need a later quote of the same time (a batch's trailing B quotes; pairs: a batch
ending on a whole second) wait for the next batch; :meth:`flush` runs them at the end of a
replay.

Risk (the paper exchange's checks, per instrument, inside the kernel so a backtest with the
same caps — agent options ``leg_cap`` / ``gross_cap`` — gives the same orders):

* ``max_position`` (fraction of capital, default 0.10): each instrument's position value
  ``|pos| · mid`` at the decision. A pairs entry past it is scaled down, both legs by the same
  factor (the hedge ratio kept); a cross-venue trade that adds past it is refused;
* ``max_gross`` (fraction of capital, default 1.0): the sum of both legs' values, likewise.

Each cut or refusal is counted (``risk_cuts``) and reported per batch. The kill switch
(:meth:`kill`) HALTS: the agent decides nothing more and, once no leg is in flight, sends one
market leg per instrument that closes its position (the kernel's taker fill at the touch,
taker fee, each venue's latency); :meth:`resume` trades again once both legs are flat.

The breakers (:class:`~.risk.Breaker`: ``max_drawdown``, default 0.20, and ``daily_loss``,
default 0.05, fractions) see the equity at every batch boundary — the batch's bar-clock
samples in order, then the current equity. A drawdown HALTS through the kill switch's path
(reason ``"max drawdown: ..."``; trading again needs :meth:`resume`). A daily loss puts the
agent in REDUCING, which for an arbitrageur (no reduce-only mode in its kernel) is the same
halt — no new decisions, both legs closed at market — but it trades again by itself at the
next UTC day, once flat. A breaker acts from the batch after the one that crossed it.

Pure: no Redis (:mod:`.arb_redis` is the Redis shell).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantarena.engine.tick import taker as K
from quantarena.engine.tick.events import EventStream
from quantarena.live.risk import Breaker, BreakerHolder, RiskState

__all__ = ["ArbFill", "ArbOrder", "ArbPaperTrader", "ArbStep"]

NS_PER_MIN = 60_000_000_000


@dataclass(frozen=True)
class ArbOrder:
    """One leg sent: ``qty`` signed (+ buy) in base units, decided at ``ts``, acting at the
    venue at ``arrival`` (ns)."""

    id: str
    ts: int
    arrival: int
    symbol: str
    qty: float


@dataclass(frozen=True)
class ArbFill:
    """One leg filled at the touch (taker): ``qty`` signed, ``fee`` in quote units."""

    id: str
    ts: int
    symbol: str
    price: float
    qty: float
    fee: float


@dataclass
class ArbStep:
    """What one batch did: its orders, fills, completed bar-clock equity samples
    (``(close_ts, equity)``), the account after it and the risk state."""

    n_events: int
    last_ts: int
    orders: list[ArbOrder]
    fills: list[ArbFill]
    samples: list[tuple[int, float]]
    positions: dict[str, float]
    equity: float
    state: RiskState
    reason: str = ""
    notes: list[str] = field(default_factory=list)


class ArbPaperTrader(BreakerHolder):
    """One two-leg agent on paper (see the module docstring).

    Args:
        name: the account name (prefix of order and fill ids).
        agent: ``pairs_arb`` or ``cross_venue_arb`` (its options: notional / order size,
            per-venue latency and taker fees, capital).
        params: ONE parameter set; None: the agent's defaults.
        symbols: the two legs ``(A, B)`` in the agent's order.
        max_position: per-instrument cap, fraction of capital (None: off).
        max_gross: cap on both legs' value, fraction of capital (None: off).
        interval_ns: the bar clock of the equity samples (default 1 minute).
        max_drawdown: fall of equity from its running peak that HALTS, a fraction (None: off).
        daily_loss: fall of equity from the UTC day's open that puts the agent in REDUCING
            (flat until the next UTC day), a fraction (None: off).
    """

    def __init__(
        self,
        name: str,
        agent: Any,
        params: Mapping[str, Any] | None,
        symbols: tuple[str, str] | list[str],
        *,
        max_position: float | None = 0.10,
        max_gross: float | None = 1.0,
        interval_ns: int = NS_PER_MIN,
        max_drawdown: float | None = 0.20,
        daily_loss: float | None = 0.05,
    ) -> None:
        if getattr(agent, "n_symbols", 1) != 2 or not hasattr(agent, "stream"):
            raise ValueError(
                f"paper trader {name!r}: agent {getattr(agent, 'name', agent)!r} is not a "
                "two-leg arbitrage agent (pairs_arb, cross_venue_arb)"
            )
        symbols = tuple(str(s).strip() for s in symbols)
        if len(symbols) != 2 or symbols[0] == symbols[1] or not all(symbols):
            raise ValueError(
                f"paper trader {name!r}: agent {agent.name!r} trades two distinct symbols "
                f"A,B, got {','.join(symbols)!r}"
            )
        for k, v in (("max_position", max_position), ("max_gross", max_gross)):
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(f"risk limit {k} must be > 0 (fraction of capital), got {v}")
        ag = copy.copy(agent)
        ag.leg_cap = None if max_position is None else float(max_position)
        ag.gross_cap = None if max_gross is None else float(max_gross)
        self.name = str(name)
        self.agent = ag
        self.symbols: tuple[str, str] = (symbols[0], symbols[1])
        self.max_position = max_position
        self.max_gross = max_gross
        self.interval_ns = int(interval_ns)
        self.stream = ag.stream(params, interval_ns=self.interval_ns)
        self.params = self.stream.params
        self.capital = float(ag.capital)
        self.n_events = 0
        self.n_orders = 0
        self.n_fills = 0
        #: the drawdown / daily-loss breakers and the kill switch's state
        self.risk = Breaker(max_drawdown, daily_loss)
        self._resume = False
        self._flat_said = False
        self._cuts = 0.0

    # ---------------------------------------------------------------- account

    @property
    def last_ts(self) -> int | None:
        """Exchange time of the last joint event run (None before the first)."""
        return self.stream.last_ts

    @property
    def positions(self) -> dict[str, float]:
        """Each leg's position, base units."""
        a, b = self.stream.position
        return {self.symbols[0]: a, self.symbols[1]: b}

    @property
    def equity(self) -> float:
        """``cash + pos_A · mid_A + pos_B · mid_B`` (quote units)."""
        return self.stream.equity

    @property
    def fees(self) -> float:
        return float(self.stream.X[0, K.X_FEES])

    def exposure(self) -> float:
        """Gross position value at the last mids, a fraction of capital."""
        if self.last_ts is None:
            return 0.0
        ma, mb = self.stream.mids()
        a, b = self.stream.position
        return float((abs(a) * ma + abs(b) * mb) / self.capital) if self.capital else 0.0

    def account(self, name: str) -> float:
        """An account field of the kernel (``position``, ``position_b``, ``cash``, ``fees``,
        ``n_fills``, ``max_inventory``, ``risk_cuts``)."""
        m = {"position": K.X_POS_A, "position_b": K.X_POS_B, "cash": K.X_CASH,
             "fees": K.X_FEES, "n_fills": K.X_NFILL, "max_inventory": K.X_MAXINV,
             "risk_cuts": K.X_NCUT}  # fmt: skip
        return float(self.stream.X[0, m[name]])

    def equity_curve(self, samples: list[tuple[int, float]]) -> np.ndarray:
        """The samples of every batch so far plus the open bar's close (the current equity):
        the backtest's equity on the same bar clock."""
        eq = [e for _, e in samples]
        if self.last_ts is not None:
            eq.append(self.equity)
        return np.asarray(eq)

    # ---------------------------------------------------------------- risk

    def kill(self, reason: str = "kill switch") -> None:
        """Halt and close both legs from the next batch on (see the module docstring)."""
        if self.risk_state is not RiskState.HALTED:
            self.risk.kill(reason)
            self._resume = False
            self._stop()

    def _stop(self) -> None:
        """Decide nothing more and close both legs (from the next event run on)."""
        if not self.stream.X[0, K.X_HALT]:
            self._flat_said = False
            self.stream.halt(True)

    def _flat(self) -> bool:
        x = self.stream.X[0]
        return (abs(x[K.X_POS_A]) <= 1e-12 and abs(x[K.X_POS_B]) <= 1e-12
                and x[K.X_PEND_A] == 0.0 and x[K.X_PEND_B] == 0.0)  # fmt: skip

    # ---------------------------------------------------------------- events

    def on_events(self, ev_a: EventStream, ev_b: EventStream, *, flush: bool = False) -> ArbStep:
        """Run one batch of each leg's events (exchange-time order, after every earlier
        batch); ``flush``: also the quotes that wait for a later one (end of a replay)."""
        out = self.stream.step(ev_a, ev_b, flush=flush)
        orders = []
        o = out["orders"]
        for i in range(o["ts"].shape[0]):
            orders.append(ArbOrder(f"{self.name}:o{self.n_orders}", int(o["ts"][i]),
                                   int(o["arrival"][i]), self.symbols[int(o["leg"][i])],
                                   float(o["qty"][i])))  # fmt: skip
            self.n_orders += 1
        fills = []
        f = out["fills"]
        for i in range(f["ts"].shape[0]):
            fills.append(ArbFill(f"{self.name}:{self.n_fills}", int(f["ts"][i]),
                                 self.symbols[int(f["leg"][i])], float(f["px"][i]),
                                 float(f["qty"][i]), float(f["fee"][i])))  # fmt: skip
            self.n_fills += 1
        notes = []
        cuts = self.account("risk_cuts")
        if cuts > self._cuts:
            notes.append(
                f"risk: {int(cuts - self._cuts)} decision(s) cut or refused by max_position "
                f"{self.max_position} / max_gross {self.max_gross} of capital"
            )
            self._cuts = cuts
        if self.stream.X[0, K.X_HALT] and self._flat():
            if not self._flat_said:
                notes.append("flat")
                self._flat_said = True
            if self._resume:
                self.risk.resume()
            if self.risk_state is RiskState.ACTIVE:  # resumed, or a new day ended REDUCING
                self.stream.halt(False)
                self._resume = False
                notes.append("resumed")
        self._observe(out["samples"])
        if self.risk_state is not RiskState.ACTIVE:
            self._stop()
        self.n_events += int(out["n"])
        return ArbStep(int(out["n"]), self.last_ts or 0, orders, fills, out["samples"],
                       self.positions, self.equity, self.risk_state, self.reason, notes)  # fmt: skip

    def flush(self) -> ArbStep:
        """Run the quotes still waiting (see the module docstring)."""
        return self.on_events(_empty(self.symbols[0]), _empty(self.symbols[1]), flush=True)


def _empty(symbol: str) -> EventStream:
    from quantarena.live.tick_feed import EventBuilder

    return EventBuilder(symbol).take()
