"""One way from an agent's population to the engine: :func:`run_population`.

Every caller that replays an agent — the backtest API (:func:`quantarena.backtest.backtest`),
tuning (:func:`quantarena.training.tuning.evaluate_population`), and the tournament's rounds
(:mod:`quantarena.tournaments.rounds`) — goes through :class:`PopulationRun`, so the agent's
``max_position`` (signal size and the engine's cap), stops, leverage, costs, fills and
annualisation reach the engine the same way everywhere.

Conventions (the engine's, :mod:`quantarena.engine.simulate`):

* The agent's indicators are computed **once** over ``bars`` (one indicator per distinct
  window, shared by the population); :meth:`PopulationRun.replay` replays any slice of those
  bars. Bars before the slice are the indicators' history only: an agent's weight at bar
  ``t`` depends on bars ``<= t`` alone (the look-ahead audit holds every agent to that).
* A weight decided at the close of bar ``t`` fills at the open of ``t + 1``. A replay starts
  flat with ``init_cash``, or from an :class:`~quantarena.engine.simulate.Account` (``start``)
  that an earlier replay ended with. With ``from_prior_close=True`` the weights decided at
  the close of the bar before the slice fill at its first open: the account was trading
  before the slice, and only the difference between what it holds and the new target trades.

The engine never imports this module (strategies sit above the engine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from quantarena.data.calendars import ALWAYS_OPEN
from quantarena.data.panel import BarPanel
from quantarena.engine.backend import Backend, get_backend
from quantarena.engine.costs import Costs
from quantarena.engine.filters import ExchangeFilters
from quantarena.engine.simulate import Account, SimResult, simulate
from quantarena.engine.stops import Stops
from quantarena.strategies.base import Agent

__all__ = ["PopulationRun", "run_population", "target_weights"]


def target_weights(
    agent: Agent, bars: BarPanel, params: Mapping[str, Any] | None = None, xp: Any = np
) -> Any:
    """The agent's target weights for a population, all bars at once: ``(T, A, P)`` float32
    on ``xp``'s device (``A`` = 1 for one asset). For checks and small problems; the engine
    reads the same weights block by block through :meth:`Agent.source`."""
    w = agent.positions(bars, params, xp)
    if w.ndim == 2:
        w = w.reshape(w.shape[0], 1, w.shape[1])
    return w


class _Window:
    """Rows ``[offset + t0, offset + t1)`` of a source; remembers the last row it served
    (so the row before the next slice need not be recomputed)."""

    def __init__(self, inner: Any, offset: int, memo: dict[str, Any]) -> None:
        self.inner = inner
        self.offset = int(offset)
        self.n_params = int(inner.n_params)
        self.memo = memo

    def __call__(self, t0: int, t1: int) -> Any:
        blk = self.inner(t0 + self.offset, t1 + self.offset)
        if t1 > t0:
            self.memo["row"] = (t1 - 1 + self.offset, blk[-1].copy())
        return blk

    def fused(self) -> Any:
        """The source's fused rule from row ``offset`` on (None if it has none); at the end of
        a replay the last row's raw targets are remembered as a served block's would be."""
        getter = getattr(self.inner, "fused", None)
        sig = getter(self.offset) if callable(getter) else None
        if sig is None:
            return None
        inner_finish = sig.finish

        def finish(carry: Any, raw: Any, t_end: int) -> None:
            if inner_finish is not None:
                inner_finish(carry, raw, t_end)
            row = raw.copy() if raw.shape[0] > 1 else raw[0].copy()
            self.memo["row"] = (t_end - 1, row)

        sig.finish = finish
        return sig


class PopulationRun:
    """An agent's population on ``bars``, indicators computed once, replayed over any slice.

    Args:
        agent: the agent (its ``max_position`` sizes the signals and caps the engine).
        bars: the panel; every replay is a slice of it.
        params: the population, name -> ``(P,)`` (None: the agent's defaults).
        source: a :class:`~quantarena.engine.simulate.PositionSource` already built for
            ``bars`` and ``params`` (None: ``agent.source(bars, params, xp)``).
        costs: fees, slippage, impact, funding (None: free).
        stops: stop-loss / take-profit / trailing (None: none).
        leverage: cap on ``sum_a |w_a|`` per bar.
        max_position: per-asset cap (None: the agent's).
        backend: ``"auto"``, ``"cpu"``, ``"gpu"`` or a Backend.
        fill: ``"open"`` (next bar's open) or ``"close"`` (comparison only).
        periods_per_year: annualisation (None: from the bar interval and ``calendar``).
        calendar: the market's trading calendar, ``"24/7"`` (crypto) or an exchange code such
            as ``"XNYS"`` (:mod:`quantarena.data.calendars`); used when ``periods_per_year`` is
            None.
        block: bars per streamed block (results do not depend on it).
        filters: the exchange's lot size and minimum notional (None: none; see
            :mod:`quantarena.engine.filters`).
        fuse: compute a shipped agent's targets inside the engine's replay loop (CPU; the
            same numbers as replaying its blocks, which ``False`` forces).
    """

    def __init__(
        self,
        agent: Agent,
        bars: BarPanel,
        params: Mapping[str, Any] | None = None,
        *,
        source: Any = None,
        costs: Costs | None = None,
        stops: Stops | None = None,
        leverage: float = 1.0,
        max_position: float | None = None,
        backend: str | Backend = "auto",
        fill: str = "open",
        periods_per_year: float | None = None,
        calendar: str = ALWAYS_OPEN,
        block: int = 4096,
        fuse: bool = True,
        filters: ExchangeFilters | None = None,
    ) -> None:
        self.agent = agent
        self.bars = bars
        self.backend = get_backend(backend)
        if source is None:
            source = agent.source(bars, params, self.backend.xp)
        self.source = source
        self.n_params = int(source.n_params)
        self.settings: dict[str, Any] = dict(
            costs=costs,
            stops=stops,
            leverage=leverage,
            max_position=agent.max_position if max_position is None else max_position,
            backend=self.backend,
            fill=fill,
            periods_per_year=periods_per_year,
            calendar=calendar,
            block=block,
            fuse=fuse,
            filters=filters,
        )
        self._memo: dict[str, Any] = {}

    def _row(self, t: int) -> Any:
        """The population's raw target weights decided at the close of bar ``t``."""
        memo = self._memo.get("row")
        if memo is not None and memo[0] == t:
            return memo[1]
        return self.source(t, t + 1)[0]

    def replay(
        self,
        sl: slice | None = None,
        *,
        start: Account | None = None,
        from_prior_close: bool = False,
        record: Sequence[str] = (),
        trades: bool = False,
        init_cash: float = 1.0,
    ) -> SimResult:
        """Replay bars ``sl`` (default: all) through the engine.

        Args:
            sl: a slice of ``bars`` (step 1); earlier bars only feed the indicators.
            start: the account every parameter set starts from (None: flat ``init_cash``).
            from_prior_close: the weights decided at the close of the bar before ``sl`` fill
                at its first open (``fill="open"``; needs ``sl.start >= 1``).
            record: full curves to keep (``"returns"``, ``"equity"``, ``"positions"``).
            trades: also build the trade list.
            init_cash: starting equity when ``start`` is None.
        """
        t0, t1, step = (sl or slice(None)).indices(self.bars.n_bars)
        if step != 1 or t1 <= t0:
            raise ValueError(f"replay slice {sl}: give a non-empty slice with step 1")
        pending = None
        if from_prior_close:
            if t0 < 1:
                raise ValueError(
                    "from_prior_close: the slice starts at bar 0, so no decision precedes it"
                )
            pending = self._row(t0 - 1)
        bars = self.bars if (t0, t1) == (0, self.bars.n_bars) else self.bars.select(slice(t0, t1))
        return simulate(
            bars,
            _Window(self.source, t0, self._memo),
            record=tuple(record),
            trades=trades,
            init_cash=init_cash,
            start=start,
            pending=pending,
            **self.settings,
        )


def run_population(
    agent: Agent,
    bars: BarPanel,
    params: Mapping[str, Any] | None = None,
    *,
    replay: slice | None = None,
    source: Any = None,
    start: Account | None = None,
    from_prior_close: bool = False,
    costs: Costs | None = None,
    stops: Stops | None = None,
    leverage: float = 1.0,
    max_position: float | None = None,
    backend: str | Backend = "auto",
    fill: str = "open",
    record: Sequence[str] = (),
    trades: bool = False,
    periods_per_year: float | None = None,
    calendar: str = ALWAYS_OPEN,
    block: int = 4096,
    init_cash: float = 1.0,
    fuse: bool = True,
    filters: ExchangeFilters | None = None,
) -> SimResult:
    """Replay ``agent``'s population ``params`` over ``bars`` (or the slice ``replay`` of
    them, earlier bars feeding the indicators) in one engine call; see :class:`PopulationRun`
    for the arguments. Returns the engine's :class:`~quantarena.engine.simulate.SimResult`
    (metrics of every parameter set, recorded curves, the final accounts)."""
    run = PopulationRun(
        agent,
        bars,
        params,
        source=source,
        costs=costs,
        stops=stops,
        leverage=leverage,
        max_position=max_position,
        backend=backend,
        fill=fill,
        periods_per_year=periods_per_year,
        calendar=calendar,
        block=block,
        fuse=fuse,
        filters=filters,
    )
    return run.replay(
        replay,
        start=start,
        from_prior_close=from_prior_close,
        record=record,
        trades=trades,
        init_cash=init_cash,
    )
