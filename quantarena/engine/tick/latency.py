"""Latency models: when an agent sees an event and when its order reaches the exchange.

Two delays, in int64 ns:

* **feed** ``d_f``: an event stamped ``ts`` by the exchange reaches the agent at ``ts + d_f``;
* **entry** ``d_e``: an order (new, cancel, replace) sent at ``t`` acts at the exchange at
  ``t + d_e``; until then the old state stands (an order being cancelled can still fill).

So an agent reacting to event ``i`` has its order act at ``ts_i + d_f + d_e`` — on the first
event with ``ts >= ts_i + d_f + d_e``, before that event is applied. The agent is told of its
own fills at once (a simplification: fills are not delayed by the feed latency).

=======================  ================================================================
:class:`ConstantLatency`  ``d_f``, ``d_e`` fixed
:class:`SampledLatency`   ``d_e`` drawn per order from a log-normal with median
                          ``median_ns`` and log-sd ``sigma`` (seeded: the same draws in every
                          run; order ``m`` of a parameter set takes draw ``m mod n_draws``);
                          ``d_f`` fixed
:class:`RecordedLatency`  ``d_f`` per event from the data's own clocks: ``recv − ts``, less
                          its minimum over the stream (the capture's clock offset), plus
                          ``base_ns``; ``d_e = entry_mult · d_f`` of the triggering event.
                          Events without a receive time take the median.
=======================  ================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MS = 1_000_000


@dataclass(frozen=True)
class ConstantLatency:
    """Fixed feed and entry latency (ns)."""

    entry_ns: int = 10 * MS
    feed_ns: int = 0

    def __post_init__(self) -> None:
        if self.entry_ns < 0 or self.feed_ns < 0:
            raise ValueError("ConstantLatency: latencies must be >= 0 ns")

    def feed(self, ts: np.ndarray, recv: np.ndarray) -> np.ndarray:
        return np.full(ts.shape[0], int(self.feed_ns), dtype=np.int64)

    def entry_draws(self) -> np.ndarray:
        return np.array([int(self.entry_ns)], dtype=np.int64)

    def describe(self) -> str:
        return f"latency entry {self.entry_ns / MS:g} ms, feed {self.feed_ns / MS:g} ms"


@dataclass(frozen=True)
class SampledLatency:
    """Entry latency drawn from a log-normal (median ``median_ns``, log-sd ``sigma``)."""

    median_ns: int = 10 * MS
    sigma: float = 0.5
    feed_ns: int = 0
    n_draws: int = 4096
    seed: int = 0

    def feed(self, ts: np.ndarray, recv: np.ndarray) -> np.ndarray:
        return np.full(ts.shape[0], int(self.feed_ns), dtype=np.int64)

    def entry_draws(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        d = self.median_ns * np.exp(self.sigma * rng.standard_normal(self.n_draws))
        return np.maximum(d, 0).astype(np.int64)

    def describe(self) -> str:
        return f"latency entry lognormal(median {self.median_ns / MS:g} ms, sd {self.sigma:g})"


@dataclass(frozen=True)
class RecordedLatency:
    """Feed latency from the data's receive times; entry = ``entry_mult`` × feed."""

    base_ns: int = 1 * MS
    entry_mult: float = 1.0

    def feed(self, ts: np.ndarray, recv: np.ndarray) -> np.ndarray:
        ok = recv >= 0
        if not ok.any():
            raise ValueError(
                "RecordedLatency: the events carry no receive times (recv_ts); "
                "use ConstantLatency or SampledLatency"
            )
        d = (recv - ts)[ok]
        d = d - d.min()
        out = np.full(ts.shape[0], int(np.median(d)), dtype=np.int64)
        out[ok] = d
        return out + int(self.base_ns)

    def entry_draws(self) -> np.ndarray:
        return np.array([0], dtype=np.int64)

    def describe(self) -> str:
        return f"recorded latency (+{self.base_ns / MS:g} ms, entry ×{self.entry_mult:g})"


LatencyModel = ConstantLatency | SampledLatency | RecordedLatency


def _entry_mult(model: LatencyModel) -> float:
    return float(model.entry_mult) if isinstance(model, RecordedLatency) else 0.0
