"""The tick-level exchange simulator: events (trades, quotes, L2 changes) replayed for a
whole population of parameter sets, with limit orders, queue position, latency, maker/taker
fees and exchange filters. See docs/engine.md, "Tick simulator"."""

from quantarena.engine.tick.events import EventStream, build_events, from_rows, load_events
from quantarena.engine.tick.fees import MakerTaker
from quantarena.engine.tick.filters import ExchangeFilters
from quantarena.engine.tick.latency import ConstantLatency, RecordedLatency, SampledLatency
from quantarena.engine.tick.queue import LogProb, PowerProb, RiskAverse, queue_model
from quantarena.engine.tick.replay import Order, TickState, replay_orders
from quantarena.engine.tick.venue import Venue

__all__ = [
    "ConstantLatency",
    "EventStream",
    "ExchangeFilters",
    "LogProb",
    "MakerTaker",
    "Order",
    "PowerProb",
    "RecordedLatency",
    "RiskAverse",
    "SampledLatency",
    "TickState",
    "Venue",
    "build_events",
    "from_rows",
    "load_events",
    "queue_model",
    "replay_orders",
]
