"""A venue: the execution models one simulated exchange applies to every parameter set.

``Venue(queue=, latency=, fees=, filters=)`` bundles one model of each kind;
:meth:`Venue.compile` turns them into the float64 parameter block the kernels read (indices
below) plus the latency arrays. A new model is a new class in its module with a ``compile``
(or ``feed`` / ``entry_draws``) method and a branch in the kernel's small model function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quantarena.engine.tick.fees import Funding, MakerTaker
from quantarena.engine.tick.filters import ExchangeFilters
from quantarena.engine.tick.latency import ConstantLatency, LatencyModel, _entry_mult
from quantarena.engine.tick.queue import QueueModel, RiskAverse

# indices of the compiled venue block
Q_KIND, Q_N, MAKER, TAKER, TICK, LOT, MIN_NOTIONAL, ENTRY_MULT, USE_DEPTH = range(9)
N_VENUE = 9


@dataclass(frozen=True)
class Venue:
    """The execution models of one exchange (see each module for the formulas)."""

    queue: QueueModel = field(default_factory=RiskAverse)
    latency: LatencyModel = field(default_factory=ConstantLatency)
    fees: MakerTaker = field(default_factory=MakerTaker)
    filters: ExchangeFilters = field(default_factory=ExchangeFilters)
    funding: Funding = field(default_factory=Funding)

    def compile(self, use_depth: bool = False) -> np.ndarray:
        """The ``(N_VENUE,)`` float64 block."""
        v = np.zeros(N_VENUE, dtype=np.float64)
        v[Q_KIND], v[Q_N] = self.queue.compile()
        v[MAKER], v[TAKER] = self.fees.compile()
        v[TICK], v[LOT], v[MIN_NOTIONAL] = self.filters.compile()
        v[ENTRY_MULT] = _entry_mult(self.latency)
        v[USE_DEPTH] = 1.0 if use_depth else 0.0
        return v

    def describe(self) -> str:
        return "; ".join(m.describe() for m in (self.queue, self.latency, self.fees, self.filters))
