"""A tick paper trader: one market maker (ONE parameter set) on a live event stream, run by
the tick simulator's own kernel.

:class:`TickPaperTrader` receives the events (quotes and trades, in exchange-time order) in
batches of any size (:meth:`TickPaperTrader.on_events`) and runs them through the same
kernel as the tick backtest (:func:`quantarena.engine.tick.replay.mm_block`), carrying
everything the backtest carries from one block to the next: the account, resting orders and
their queue position, orders in flight, the top of the book, the market features
(:class:`~quantarena.engine.tick.features.FeatureState`) and the re-quote clock
(:func:`~quantarena.engine.tick.replay.decision_block`). So quotes, post-only rejections,
queue position, latency, maker/taker fees and filters follow the backtest's rules, and the
fills, fees, inventory and equity are exactly the backtest's for any batching.

Equity is sampled on the backtest's bar clock (``interval_ns``, :mod:`..engine.tick.sampling`):
the samples a batch completes are returned with it; :meth:`TickPaperTrader.equity_curve`
adds the open bar's close (the current equity), as the backtest's last sample.

Risk (the :mod:`.risk` states):

* ``max_position`` (base units) caps the quoting: at ``|position| >= max_position`` the agent
  quotes no more on the side that would add (the agent's own ``max_inventory`` rule,
  tightened to ``max_position / order_qty`` order sizes). An order already in flight can
  still fill, so the position can pass the cap by at most one order size.
* the kill switch (:meth:`kill`) HALTS: "flat" for a market maker with inventory means
  (1) its quotes are cancelled (orders in flight still arrive and are cancelled after them,
  with the venue's entry latency — a quote can fill until its cancel acts), then (2) once
  both cancels have acted, one market order for the remaining inventory, filled by the
  simulator at the touch as a taker (taker fee). If the exchange's filters refuse that order
  (e.g. under the minimum notional) it is reported and the inventory stays. Nothing is
  quoted until :meth:`resume`.
* the breakers (:class:`~.risk.Breaker`: ``max_drawdown``, default 0.20, and ``daily_loss``,
  default 0.05, fractions) see the equity at every batch boundary — the batch's bar-clock
  samples in order, then the current equity. A drawdown HALTS through the kill switch's path
  (reason ``"max drawdown: ..."``; quoting again needs :meth:`resume`). A daily loss puts
  the agent in REDUCING, which for a market maker (no reduce-only mode in its kernel) is the
  same flattening — cancel the quotes, close the inventory at market — but it quotes again
  by itself at the next UTC day, once flat. A breaker acts from the batch after the one
  that crossed it: its granularity is the batch (the live service's ``tick_batch`` events).

Pure: no Redis (:mod:`.tick_redis` is the Redis shell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantarena.engine.tick import core as C
from quantarena.engine.tick.events import EventStream
from quantarena.engine.tick.features import FeatureState
from quantarena.engine.tick.latency import RecordedLatency
from quantarena.engine.tick.quoting import PR_MAX_INV, PR_QTY
from quantarena.engine.tick.replay import TickState, decision_block, mm_block, script_block
from quantarena.engine.tick.venue import MAKER, TAKER, Venue
from quantarena.live.risk import Breaker, BreakerHolder, RiskState
from quantarena.strategies.params import n_params

__all__ = ["TickFill", "TickPaperTrader", "TickStep"]

NS_PER_MIN = 60_000_000_000


@dataclass(frozen=True)
class TickFill:
    """One fill: ``qty`` signed (+ bought), ``fee`` in quote units, ``maker`` (rests) or taker."""

    id: str
    ts: int
    price: float
    qty: float
    fee: float
    maker: bool
    slot: int


@dataclass
class TickStep:
    """What one batch did: its fills, the bar-clock equity samples it completed
    (``(close_ts, equity)``), the account after it and the risk state."""

    n_events: int
    last_ts: int
    fills: list[TickFill]
    samples: list[tuple[int, float]]
    position: float
    equity: float
    state: RiskState
    reason: str = ""
    notes: list[str] = field(default_factory=list)


class TickPaperTrader(BreakerHolder):
    """One market maker on paper (see the module docstring).

    Args:
        name: the account name (prefix of fill ids).
        agent: a market-making agent (``market_maker``, ``glft``).
        params: ONE parameter set; None: the agent's defaults.
        symbol: the instrument the agent quotes.
        venue: the execution models (default: the agent's, else the symbol's known filters
            and fees; a symbol without known filters needs one — its tick size).
        max_position: risk cap on ``|position|`` (base units); None: the agent's rule only.
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
        symbol: str,
        *,
        venue: Venue | None = None,
        max_position: float | None = None,
        interval_ns: int = NS_PER_MIN,
        max_drawdown: float | None = 0.20,
        daily_loss: float | None = 0.05,
    ) -> None:
        if not hasattr(agent, "quote_kind"):
            raise ValueError(
                f"paper trader {name!r}: agent {getattr(agent, 'name', agent)!r} is not a "
                "market maker (tick paper trading runs market_maker and glft)"
            )
        p = agent.check_params(
            None if params is None else {k: np.atleast_1d(v) for k, v in params.items()}
        )
        if n_params(p) != 1:
            raise ValueError(f"paper trader {name!r}: give ONE parameter set, not a population")
        venue = venue or agent.venue or _known_venue(symbol)
        if isinstance(venue.latency, RecordedLatency):
            raise ValueError(
                f"paper trader {name!r}: RecordedLatency needs the whole capture's clocks; "
                "use ConstantLatency or SampledLatency"
            )
        if not venue.filters.tick > 0:
            raise ValueError(f"paper trader {name!r}: the venue needs a tick size > 0")
        if max_position is not None and not (np.isfinite(max_position) and max_position > 0):
            raise ValueError(f"risk limit max_position must be > 0 base units, got {max_position}")
        self.name = str(name)
        self.agent = agent
        self.params = p
        self.symbol = str(symbol)
        self.venue = venue
        self.interval_ns = int(interval_ns)
        self.max_position = max_position
        self.prm = np.ascontiguousarray(agent.param_block(p), dtype=np.float64)
        if max_position is not None:
            cap = float(max_position) / self.prm[0, PR_QTY]
            self.prm[0, PR_MAX_INV] = min(self.prm[0, PR_MAX_INV], cap)
        self.V = venue.compile(use_depth=False)
        self.draws = venue.latency.entry_draws()
        self.features = FeatureState(venue.filters.tick, halflife_s=agent.vol_halflife_s)
        self.requote_ns = int(agent.requote_ms * 1e6)
        self.state = TickState.new(1, 2, None, 0, agent.capital)
        self.capital = float(agent.capital)
        self.last_bucket: int | None = None
        self.last_ts: int | None = None
        self.n_events = 0
        self.n_fills = 0
        #: the drawdown / daily-loss breakers and the kill switch's state
        self.risk = Breaker(max_drawdown, daily_loss)
        self._phase = ""  # stopped: "cancel" -> "cancelling" -> "closing" -> "flat"
        self._cmds: list[tuple[int, int, int, float, float, float]] = []
        self._resume = False

    # ---------------------------------------------------------------- account

    @property
    def position(self) -> float:
        return float(self.state.AC[0, C.A_POS])

    @property
    def equity(self) -> float:
        """``cash + position × last mid`` (quote units)."""
        return float(self.state.equity()[0])

    @property
    def fees(self) -> float:
        return float(self.state.AC[0, C.A_FEES])

    def account(self, name: str) -> float:
        """An account field (see :meth:`.TickState.account`)."""
        return float(self.state.account(name)[0])

    def equity_curve(self, samples: list[tuple[int, float]]) -> np.ndarray:
        """The samples of every batch so far (concatenated) plus the open bar's close: the
        backtest's equity on the same bar clock."""
        eq = [e for _, e in samples]
        if self.last_ts is not None:
            eq.append(self.equity)
        return np.asarray(eq)

    # ---------------------------------------------------------------- risk

    def kill(self, reason: str = "kill switch") -> None:
        """Halt and flatten from the next batch on (see the module docstring)."""
        if self.risk_state is not RiskState.HALTED:
            self.risk.kill(reason)
            self._resume = False

    def _back_to_active(self) -> list[str]:
        """Once flat: quote again after an explicit resume, or when the breaker is ACTIVE
        again (the daily loss's REDUCING ended by a new UTC day)."""
        if self._phase != "flat":
            return []
        if self._resume:
            self.risk.resume()
        if self.risk_state is not RiskState.ACTIVE:
            return []
        self._phase, self._resume = "", False
        return ["resumed"]

    def _send(self, t: int, slot: int, op: int, side: float, px: float, qty: float) -> None:
        AC = self.state.AC
        m = int(AC[0, C.A_NORD])
        AC[0, C.A_NORD] = m + 1
        arr = int(t) + int(self.draws[m % self.draws.shape[0]])
        self._cmds.append((arr, slot, op, side, px, qty))

    def _start_flatten(self, t: int) -> None:
        """Turn the orders in flight into commands, then cancel both quotes."""
        OF, OI = self.state.OF, self.state.OI
        for s in range(2):
            if OI[0, s, C.O_ST] == C.ST_FLIGHT:
                side = 1.0 - 2.0 * s
                self._cmds.append((int(OI[0, s, C.O_T]), s, C.POST_ONLY, side,
                                   OF[0, s, C.O_NPX], OF[0, s, C.O_NQTY]))  # fmt: skip
                OI[0, s, C.O_ST] = C.ST_NONE
            rt = int(OI[0, s, C.O_RT])
            if rt >= 0:
                op = C.CANCEL if OF[0, s, C.O_NQTY] == 0.0 else C.REPLACE
                self._cmds.append((rt, s, op, 0.0, OF[0, s, C.O_NPX], OF[0, s, C.O_NQTY]))
                OI[0, s, C.O_RT] = -1
        for s in range(2):
            self._send(t, s, C.CANCEL, 0.0, np.nan, 0.0)
        self._cmds.sort(key=lambda c: c[0])
        self._phase = "cancelling"

    def _script_orders(self, last_ts: int) -> dict[str, np.ndarray]:
        due = [c for c in self._cmds if c[0] <= last_ts]
        self._cmds = [c for c in self._cmds if c[0] > last_ts]
        return {
            "c_arr": np.array([c[0] for c in due], dtype=np.int64),
            "c_col": np.zeros(len(due), dtype=np.int64),
            "c_slot": np.array([c[1] for c in due], dtype=np.int64),
            "c_op": np.array([c[2] for c in due], dtype=np.int64),
            "c_side": np.array([c[3] for c in due], dtype=np.float64),
            "c_px": np.array([c[4] for c in due], dtype=np.float64),
            "c_qty": np.array([c[5] for c in due], dtype=np.float64),
        }

    # ---------------------------------------------------------------- events

    def _closes(self, ts: np.ndarray) -> np.ndarray:
        """Bar closes this batch completes: multiples of the interval in (previous last
        event, this batch's last event] (the first batch: after its first event)."""
        lo = int(ts[0]) if self.last_ts is None else self.last_ts
        step = self.interval_ns
        first = (lo // step + 1) * step
        return np.arange(first, int(ts[-1]) + 1, step, dtype=np.int64)

    def on_events(self, ev: EventStream) -> TickStep:
        """Run one batch of events (exchange-time order, after every earlier batch)."""
        n = len(ev)
        if n == 0:
            return TickStep(0, self.last_ts or 0, [], [], self.position, self.equity,
                            self.risk_state, self.reason)  # fmt: skip
        if self.last_ts is not None and int(ev.ts[0]) < self.last_ts:
            raise ValueError(
                f"paper trader {self.name!r}: events at {int(ev.ts[0])} are older than the "
                f"last one applied ({self.last_ts}): out of order — refused"
            )
        st = self.state
        feats = self.features.update(ev)
        feed = self.venue.latency.feed(ev.ts, ev.recv)
        decide, self.last_bucket = decision_block(ev, feed, self.requote_ns, self.last_bucket)
        st.sample_ts = self._closes(ev.ts)
        st.EQ = np.full((st.sample_ts.shape[0], 1), np.nan)
        st.k = 0
        # room for every fill the batch can make (at most 4 per event), harvested below
        st.FLT = np.zeros((1, 4 * n + 4), dtype=np.int64)
        st.FL = np.zeros((1, 4 * n + 4, C.N_FL))
        st.AC[0, C.A_NLOG] = 0
        # funding due after the previous batch, as the backtest's schedule over the stream
        t0 = int(ev.ts[0]) - 1 if self.last_ts is None else self.last_ts
        fund_ts, fund_rate = self.venue.funding.schedule(t0, int(ev.ts[-1]))
        st.kf = 0
        notes: list[str] = self._back_to_active()
        if self.risk_state is not RiskState.ACTIVE and not self._phase:
            self._phase = "cancel"  # the kill switch or a breaker: flatten
        if self._phase:
            if self._phase == "cancel":
                self._start_flatten(self.last_ts if self.last_ts is not None else int(ev.ts[0]))
            script_block(st, ev, self._script_orders(int(ev.ts[-1])), self.V, fund_ts, fund_rate)
            notes += self._advance_flatten(int(ev.ts[-1]))
        else:
            mm_block(st, ev, feed, decide, feats, self.agent.quote_kind, self.prm, self.V,
                     self.draws, fund_ts, fund_rate)  # fmt: skip
        fills = self._harvest()
        samples = [(int(t), float(e)) for t, e in zip(st.sample_ts, st.EQ[:, 0], strict=True)]
        self.last_ts = int(ev.ts[-1])
        self.n_events += n
        self._observe(samples)
        return TickStep(n, self.last_ts, fills, samples, self.position, self.equity,
                        self.risk_state, self.reason, notes)  # fmt: skip

    def _advance_flatten(self, t: int) -> list[str]:
        if self._cmds:
            return []
        OI = self.state.OI
        notes = []
        if self._phase == "cancelling" and all(OI[0, s, C.O_ST] == C.ST_NONE for s in range(2)):
            pos = self.position
            if abs(pos) > 1e-12:
                self._send(t, 0, C.MARKET, -float(np.sign(pos)), np.nan, abs(pos))
                self._phase = "closing"
                notes.append(f"quotes cancelled; closing {pos:+g} at market")
            else:
                self._phase = "flat"
                notes.append("quotes cancelled; flat")
        elif self._phase == "closing":
            self._phase = "flat"
            pos = self.position
            notes.append("flat" if abs(pos) <= 1e-12 else f"close refused: {pos:+g} left")
        return notes + self._back_to_active()

    def _harvest(self) -> list[TickFill]:
        st = self.state
        k = int(st.AC[0, C.A_NLOG])
        out = []
        for i in range(k):
            qty = float(st.FL[0, i, C.F_QTY])
            px = float(st.FL[0, i, C.F_PX])
            maker = bool(st.FL[0, i, C.F_MAKER] > 0)
            fee = abs(qty) * px * float(self.V[MAKER] if maker else self.V[TAKER])
            out.append(TickFill(f"{self.name}:{self.n_fills}", int(st.FLT[0, i]), px, qty, fee,
                                maker, int(st.FL[0, i, C.F_SLOT])))  # fmt: skip
            self.n_fills += 1
        st.AC[0, C.A_NLOG] = 0
        return out


def _known_venue(symbol: str) -> Venue:
    from quantarena.engine.tick.fees import MakerTaker
    from quantarena.engine.tick.filters import KNOWN
    from quantarena.strategies.tick_base import KNOWN_FEES

    if symbol not in KNOWN:
        raise ValueError(
            f"symbol {symbol!r} has no known exchange filters: give the trader a Venue "
            "(its tick size at least)"
        )
    return Venue(filters=KNOWN[symbol], fees=KNOWN_FEES.get(symbol, MakerTaker(0.0, 0.0)))
