"""A paper trader: one agent's streaming path, the risk check and the paper exchange.

Per bar (:meth:`PaperTrader.on_bar`): the agent's stream decides the targets at the close
(:meth:`~quantarena.strategies.base.Agent.stream`); the paper exchange fills the orders of
the previous close at this bar's open and marks the account at its close
(:class:`~.exchange.PaperExchange`); the risk module checks the targets against the marked
account (:class:`~.risk.RiskEngine`) and the allowed ones become the orders for the next
open. With limits that never bind this is exactly the backtest of the same agent,
parameters, costs and bars. Pure: no Redis, no Ray — the Redis shell (:mod:`.redis_trader`)
feeds it and makes its effects durable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from quantarena.engine.costs import DEFAULT_COSTS, Costs
from quantarena.engine.filters import ExchangeFilters
from quantarena.engine.stops import Stops
from quantarena.live.exchange import Fill, Order, PaperExchange
from quantarena.live.risk import Rejection, RiskEngine, RiskLimits, RiskState
from quantarena.strategies.params import n_params

if TYPE_CHECKING:
    from quantarena.data.panel import BarPanel
    from quantarena.strategies.base import Agent

__all__ = ["PaperTrader", "TraderStep"]


@dataclass
class TraderStep:
    """What one bar did: fills at its open, orders and rejections at its close, the account
    at its close and the risk state."""

    bar: int
    ts: int
    fills: list[Fill]
    orders: list[Order]
    rejections: list[Rejection]
    equity: float
    weights: np.ndarray
    state: RiskState
    reason: str = ""
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0))


class PaperTrader:
    """One agent (one parameter set) trading on paper.

    Args:
        name: the agent's account name (prefix of its client order ids).
        agent: the agent (its ``max_position`` sizes the signals and caps the exchange).
        params: ONE parameter set (name -> value); None: the agent's defaults.
        symbols: the instruments, in column order.
        interval_ns: the bar length.
        costs: the backtest's costs (default :data:`~quantarena.engine.costs.DEFAULT_COSTS`).
        limits: risk limits (default :class:`~.risk.RiskLimits` with the agent's
            ``max_position``).
        init_cash: starting capital (quote currency when ``filters`` are on).
        leverage: cap on ``sum |w|`` in the exchange (as the backtest's).
        filters: the exchange's lot size / minimum notional (None: none), as the backtest's.
        stops: stop-loss / take-profit / trailing stop (None: none), as the backtest's —
            the engine's rules, run by its kernel (:mod:`quantarena.engine.stops`).
    """

    def __init__(
        self,
        name: str,
        agent: Agent,
        params: Mapping[str, Any] | None,
        symbols: list[str],
        interval_ns: int,
        *,
        costs: Costs | None = DEFAULT_COSTS,
        limits: RiskLimits | None = None,
        init_cash: float = 1.0,
        leverage: float = 1.0,
        filters: ExchangeFilters | None = None,
        stops: Stops | None = None,
    ) -> None:
        p = agent.check_params(
            None if params is None else {k: np.atleast_1d(v) for k, v in params.items()}
        )
        if n_params(p) != 1:
            raise ValueError(f"paper trader {name!r}: give ONE parameter set, not a population")
        self.name = str(name)
        self.agent = agent
        self.params = p
        self.symbols = list(symbols)
        self.interval_ns = int(interval_ns)
        self.stream = agent.stream(p, n_assets=len(self.symbols), interval_ns=self.interval_ns)
        self.exchange = PaperExchange(
            self.name,
            self.symbols,
            self.interval_ns,
            costs,
            max_position=agent.max_position,
            leverage=leverage,
            init_cash=init_cash,
            filters=filters,
            stops=stops,
        )
        self.risk = RiskEngine(
            self.symbols,
            limits or RiskLimits(max_position=agent.max_position),
            interval_ns=self.interval_ns,
        )
        self.n_rejections = 0  # rejections so far (each is also in the bar's TraderStep)

    def warm_up(self, history: BarPanel) -> None:
        """Feed ``history`` to the agent's stream only (indicators; no trading)."""
        if list(history.symbols) != self.symbols:
            raise ValueError(f"history holds {history.symbols}, the trader trades {self.symbols}")
        self.stream.warm_up(history)

    def prepare(self) -> None:
        """Load the compiled kernels (Numba's on-disk cache: about 0.3 s, seconds on a busy
        machine) now rather than at the first live bar: one made-up bar through a throw-away
        copy of this trader (this one is untouched), and the stop rules when stops are on."""
        import pickle

        tmp = pickle.loads(pickle.dumps(self))
        one = np.ones(len(self.symbols))
        ts = tmp.exchange._ts + self.interval_ns if tmp.exchange.n_bars else 0
        tmp.on_bar(ts, one, one, one, one, one)
        if self.exchange._has_stops:
            from quantarena.engine import kernels_cpu

            lvl, why, t_lvl = kernels_cpu._levels(1.0, 1.0, 1.0, 0.5, 0.5, 0.5)
            kernels_cpu._stop_hit(1.0, 1.0, 1.0, 1.0, lvl, why, t_lvl)

    def kill(self, reason: str = "kill switch") -> None:
        """Halt: the next bar's decision flattens; nothing trades until :meth:`resume`."""
        self.risk.kill(reason)

    def resume(self) -> None:
        self.risk.resume()

    def on_bar(
        self,
        ts: int,
        open: Any,  # noqa: A002 - the bar field's name
        high: Any,
        low: Any,
        close: Any,
        volume: Any = 0.0,
        now_ns: int | None = None,
    ) -> TraderStep:
        """One bar through the agent, the exchange and the risk check (see the module)."""
        w = self.stream.step(open, high, low, close, volume)[:, 0]
        ex = self.exchange
        fills = ex.mark(ts, open, high, low, close, volume)
        d = self.risk.check(ex.n_bars - 1, ts, w, ex.target, ex.equity, now_ns)
        orders = ex.decide(d.targets)
        self.n_rejections += len(d.rejections)
        return TraderStep(
            ex.n_bars - 1,
            int(ts),
            fills,
            orders,
            d.rejections,
            ex.equity,
            ex.weights(),
            d.state,
            d.reason,
            d.targets,
        )

    def run(self, bars: BarPanel) -> list[TraderStep]:
        """Every bar of ``bars`` in order (replays, tests)."""
        return [
            self.on_bar(
                int(bars.ts[t]),
                bars.open[t],
                bars.high[t],
                bars.low[t],
                bars.close[t],
                bars.volume[t],
            )  # fmt: skip
            for t in range(bars.n_bars)
        ]
