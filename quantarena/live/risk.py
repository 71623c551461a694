"""The one risk module every order passes, and the kill switch's state.

:class:`RiskEngine` turns an agent's raw target weights (decided at a bar's close) into the
targets the paper exchange may trade, given the account marked at that close. Limits
(:class:`RiskLimits`, all configurable, fractions of the agent's capital):

* ``max_position`` — ``|w|`` of one instrument (the seed's 10 %): larger targets are cut;
* ``max_gross`` — ``sum |w|``: the targets are scaled down to it;
* ``daily_loss`` — equity below the UTC day's opening equity by this fraction puts the agent
  in REDUCING until the next UTC day;
* ``max_drawdown`` — equity below its running peak by this fraction HALTS the agent (a
  breaker: it flattens and stays halted until :meth:`RiskEngine.resume`);
* ``max_orders`` per ``order_window_ns`` — orders beyond the rate are rejected (the position
  is kept);
* ``stale_after_ns`` — a bar arriving more than this after the previous one (a gap in the
  data) trades nothing new; with ``wall_clock`` on, so does a bar whose *close* time is older
  than this by the wall clock (a feed that lags or stalls). ``wall_clock`` is off by default:
  a replay of history is old by the wall clock by design; turn it on for a live exchange
  feed. The clock is injectable (:class:`RiskEngine` ``clock=``, ``now_ns=``) for tests.

States: **ACTIVE** (all orders within limits), **REDUCING** (only orders that reduce risk: a
smaller ``|w|`` on the same side, or flat), **HALTED** (every target is flat; nothing trades
around it). The kill switch (:meth:`RiskEngine.kill`) halts at once; only an explicit
:meth:`RiskEngine.resume` returns to ACTIVE. Every cut or rejection is reported as a
:class:`Rejection` with its reason.

The two breakers (``max_drawdown``, ``daily_loss``) and the state they drive are ONE rule,
:class:`Breaker` (:meth:`Breaker.observe` of ``(time, equity)``), which :class:`RiskEngine`
runs at every bar's close and the tick paper traders (:mod:`.tick_trader`,
:mod:`.arb_trader`) run at every batch boundary, on the batch's equity samples then their
current equity. A tick agent has no reduce-only mode in its kernel: for it REDUCING means
"stop quoting / entering and close the position", like HALTED, but it returns to ACTIVE by
itself at the next UTC day (the breaker's day roll), while HALTED waits for an explicit
resume. Pure: no Redis, no Ray.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

__all__ = ["Breaker", "BreakerHolder", "Decision", "Rejection", "RiskEngine", "RiskLimits", "RiskState",
           "check_fraction"]  # fmt: skip

NS_PER_DAY = 86_400_000_000_000
NS_PER_MIN = 60_000_000_000


class RiskState(StrEnum):
    """An agent's trading state."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True)
class RiskLimits:
    """Risk limits; fractions of the agent's capital (0.10 = 10 %); ``None`` = no limit."""

    max_position: float = field(default=0.10, metadata={"doc": "max |weight| per instrument"})
    max_gross: float | None = field(default=1.0, metadata={"doc": "max sum of |weights|"})
    daily_loss: float | None = field(
        default=0.05, metadata={"doc": "loss from the day's open → REDUCING"}
    )
    max_drawdown: float | None = field(
        default=0.20, metadata={"doc": "drawdown from peak → HALTED"}
    )
    max_orders: int | None = field(default=60, metadata={"doc": "orders per order_window_ns"})
    order_window_ns: int = field(default=60 * NS_PER_MIN, metadata={"doc": "order-rate window, ns"})
    stale_after_ns: int | None = field(default=None, metadata={"doc": "max data age / gap, ns"})
    wall_clock: bool = field(
        default=False,
        metadata={"doc": "also refuse bars whose close is older than stale_after_ns by the "
                  "wall clock (off for replays of history)"},
    )  # fmt: skip

    def __post_init__(self) -> None:
        for name in ("max_position", "max_gross", "daily_loss", "max_drawdown"):
            check_fraction(name, getattr(self, name))
        if self.max_orders is not None and int(self.max_orders) < 1:
            raise ValueError(f"risk limit max_orders must be >= 1 or None, got {self.max_orders!r}")
        if int(self.order_window_ns) <= 0:
            raise ValueError("risk limit order_window_ns must be > 0")
        if self.stale_after_ns is not None and int(self.stale_after_ns) <= 0:
            raise ValueError("risk limit stale_after_ns must be > 0 or None")
        if not isinstance(self.wall_clock, bool):
            raise ValueError(
                f"risk limit wall_clock must be true or false, got {self.wall_clock!r}"
            )
        if self.wall_clock and self.stale_after_ns is None:
            raise ValueError("risk limit wall_clock needs stale_after_ns (the maximum age, ns)")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RiskLimits:
        """From a config section; unknown keys are named in the error."""
        d = dict(d or {})
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"risk: unknown limit {bad[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**d)


def check_fraction(name: str, v: Any) -> None:
    """A risk limit that is a positive fraction of capital or None (one-line error naming it)."""
    ok = v is None or (
        isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v) and v > 0
    )
    if not ok:
        raise ValueError(f"risk limit {name} must be a positive fraction or None, got {v!r}")


class Breaker:
    """The drawdown and daily-loss breakers and the ACTIVE / REDUCING / HALTED state they
    drive — the one implementation of the rule, for bar and tick traders alike.

    :meth:`observe` takes the account's equity at a time (in time order):

    * the running peak and the UTC day's opening equity (the first equity seen on the day)
      are updated; a new UTC day ends a REDUCING state caused by the daily loss;
    * ``equity <= peak × (1 − max_drawdown)`` → HALTED, reason ``"max drawdown: ..."``; it
      stays halted until :meth:`resume` (which also restarts the peak from the next equity);
    * else, from ACTIVE, ``equity <= day_open × (1 − daily_loss)`` → REDUCING, reason
      ``"daily loss: ..."``, until the next UTC day.

    Args:
        max_drawdown: fall from the running peak that halts, a fraction (0.20 = 20 %);
            None: off.
        daily_loss: fall from the UTC day's opening equity that reduces, a fraction; None:
            off.
    """

    def __init__(self, max_drawdown: float | None = 0.20, daily_loss: float | None = 0.05) -> None:
        check_fraction("max_drawdown", max_drawdown)
        check_fraction("daily_loss", daily_loss)
        self.max_drawdown = None if max_drawdown is None else float(max_drawdown)
        self.daily_loss = None if daily_loss is None else float(daily_loss)
        self.state = RiskState.ACTIVE
        self.reason = ""
        #: the running peak of equity (quote units; None before the first observation)
        self.peak: float | None = None
        #: the UTC day (days since the epoch) of the last observation, and its opening equity
        self.day: int | None = None
        self.day_open: float | None = None

    def observe(self, ts: int, equity: float) -> RiskState:
        """Apply the breakers to ``equity`` (quote units) at ``ts`` (ns since the epoch, not
        before the previous observation); returns the state after it."""
        ts, equity = int(ts), float(equity)
        self.peak = equity if self.peak is None else max(self.peak, equity)
        day = ts // NS_PER_DAY
        if day != self.day:
            self.day, self.day_open = day, equity
            if self.state is RiskState.REDUCING and self.reason.startswith("daily loss"):
                self.state, self.reason = RiskState.ACTIVE, ""
        if self.state is RiskState.HALTED:
            return self.state
        if self.max_drawdown is not None and equity <= self.peak * (1.0 - self.max_drawdown):
            dd = 1.0 - equity / self.peak
            self.state = RiskState.HALTED
            self.reason = f"max drawdown: {dd:.2%} from peak > {self.max_drawdown:.2%}"
        elif (
            self.state is RiskState.ACTIVE
            and self.daily_loss is not None
            and self.day_open
            and equity <= self.day_open * (1.0 - self.daily_loss)
        ):
            self.state = RiskState.REDUCING
            self.reason = f"daily loss: {1.0 - equity / self.day_open:.2%} > {self.daily_loss:.2%}"
        return self.state

    def kill(self, reason: str = "kill switch") -> None:
        """HALTED now, with ``reason``."""
        self.state = RiskState.HALTED
        self.reason = reason

    def resume(self) -> None:
        """Back to ACTIVE (explicit); the peak restarts from the next observed equity."""
        self.state = RiskState.ACTIVE
        self.reason = ""
        self.peak = None

    def snapshot(self) -> dict[str, Any]:
        """The state to persist (JSON-friendly); :meth:`restore` puts it back."""
        return {"state": self.state.value, "reason": self.reason, "peak": self.peak,
                "day": self.day, "day_open": self.day_open}  # fmt: skip

    def restore(self, snap: dict[str, Any]) -> None:
        self.state = RiskState(snap["state"])
        self.reason = snap["reason"]
        self.peak = snap["peak"]
        self.day = snap["day"]
        self.day_open = snap["day_open"]


class BreakerHolder:
    """The breaker plumbing shared by the tick paper traders (market makers and
    arbitrageurs): a :class:`Breaker` in ``self.risk`` and a ``self._resume`` flag set by
    :meth:`resume` for the trader to act on once flat. Pickles made before the traders had
    breakers get the default ones, with their state and reason."""

    risk: Breaker
    _resume: bool
    last_ts: int | None
    equity: float

    def __setstate__(self, d: dict[str, Any]) -> None:
        if "risk" not in d:
            b = Breaker()
            b.state, b.reason = RiskState(d.pop("risk_state")), d.pop("reason")
            d["risk"] = b
        self.__dict__.update(d)

    @property
    def risk_state(self) -> RiskState:
        """ACTIVE, REDUCING (daily loss: flat until the next UTC day) or HALTED."""
        return self.risk.state

    @property
    def reason(self) -> str:
        """Why the agent is not ACTIVE ("" when it is)."""
        return self.risk.reason

    def resume(self) -> None:
        """Trade again once flat (the flattening orders have acted)."""
        if self.risk_state is not RiskState.ACTIVE:
            self._resume = True

    def _observe(self, samples: list[tuple[int, float]]) -> None:
        """The breakers at a batch boundary: the batch's equity samples ``(close_ts,
        equity)``, then the current equity."""
        for t, e in samples:
            self.risk.observe(t, e)
        if self.last_ts is not None:
            self.risk.observe(self.last_ts, self.equity)


@dataclass(frozen=True)
class Rejection:
    """An order cut or refused by the risk check, with its reason."""

    bar: int
    ts: int
    symbol: str
    wanted: float
    allowed: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decision:
    """The outcome of one risk check: the targets allowed, the rejections, the state."""

    targets: np.ndarray
    rejections: list[Rejection]
    state: RiskState
    reason: str


class RiskEngine:
    """Checks every target against :class:`RiskLimits` and holds the ACTIVE / REDUCING /
    HALTED state (see the module docstring).

    Args:
        symbols: the instruments, in column order.
        limits: the limits.
        interval_ns: the bar length (a bar closes at ``ts + interval_ns``; its wall-clock age
            is counted from its close).
        clock: the wall clock in ns since the epoch (default :func:`time.time_ns`); read
            only when ``limits.wall_clock`` is on and :meth:`check` gets no ``now_ns``.
    """

    def __init__(
        self,
        symbols: list[str],
        limits: RiskLimits | None = None,
        *,
        interval_ns: int = 0,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.symbols = list(symbols)
        self.limits = limits or RiskLimits()
        self.interval_ns = int(interval_ns)
        self.clock = clock
        #: the drawdown / daily-loss breakers and the state (:class:`Breaker`)
        self.breaker = Breaker(self.limits.max_drawdown, self.limits.daily_loss)
        self.last_ts: int | None = None
        self.order_times: list[int] = []

    def __setstate__(self, d: dict[str, Any]) -> None:
        """Unpickle; an engine pickled before :class:`Breaker` existed gets one with its
        state, reason, peak and day."""
        if "breaker" not in d:
            b = Breaker(d["limits"].max_drawdown, d["limits"].daily_loss)
            b.restore({k: d.pop(k) for k in ("state", "reason", "peak", "day", "day_open")})
            d["breaker"] = b
        self.__dict__.update(d)

    # the breaker's state, as attributes of the engine
    @property
    def state(self) -> RiskState:
        return self.breaker.state

    @state.setter
    def state(self, v: RiskState) -> None:
        self.breaker.state = RiskState(v)

    @property
    def reason(self) -> str:
        return self.breaker.reason

    @reason.setter
    def reason(self, v: str) -> None:
        self.breaker.reason = v

    @property
    def peak(self) -> float | None:
        return self.breaker.peak

    @property
    def day(self) -> int | None:
        return self.breaker.day

    @property
    def day_open(self) -> float | None:
        return self.breaker.day_open

    # ------------------------------------------------------------------ switches

    def kill(self, reason: str = "kill switch") -> None:
        """Halt now: the next check flattens everything and nothing trades until resume."""
        self.breaker.kill(reason)

    def resume(self) -> None:
        """Back to ACTIVE (explicit; also resets the drawdown peak to the current equity)."""
        self.breaker.resume()

    def snapshot(self) -> dict[str, Any]:
        """The state to persist (JSON-friendly); :meth:`restore` puts it back."""
        return {
            **self.breaker.snapshot(),
            "last_ts": self.last_ts,
            "order_times": list(self.order_times),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        self.breaker.restore(snap)
        self.last_ts = snap["last_ts"]
        self.order_times = list(snap["order_times"])

    # ------------------------------------------------------------------ the check

    def _update_state(self, ts: int, equity: float, now_ns: int | None) -> str | None:
        """The stale-data guard, then the breakers (:meth:`Breaker.observe`) on the account at
        this close; returns a stale-data reason or None."""
        lim = self.limits
        stale = None
        if lim.stale_after_ns is not None:
            if self.last_ts is not None and ts - self.last_ts > lim.stale_after_ns:
                stale = f"stale data: {(ts - self.last_ts) / 1e9:g} s since the previous bar"
            if now_ns is None and lim.wall_clock:
                now_ns = (self.clock or time.time_ns)()
            close = ts + self.interval_ns
            if now_ns is not None and now_ns - close > lim.stale_after_ns:
                stale = (
                    f"stale data: the bar is {(now_ns - close) / 1e9:g} s old by the wall clock "
                    f"(from its close; stale_after_ns {lim.stale_after_ns / 1e9:g} s)"
                )
        self.last_ts = ts
        self.breaker.observe(ts, equity)
        return stale

    def check(
        self,
        bar: int,
        ts: int,
        targets: Any,
        held: Any,
        equity: float,
        now_ns: int | None = None,
    ) -> Decision:
        """The targets allowed at the close of ``bar`` (open time ``ts``, ns).

        Args:
            targets: ``(A,)`` the agent's raw target weights (NaN = flat).
            held: ``(A,)`` the target the account currently trades towards.
            equity: the account's equity at this close.
            now_ns: the wall clock (ns) for the stale-data guard; None: the engine's clock
                when ``limits.wall_clock`` is on, else bar times only.
        """
        lim = self.limits
        want = np.nan_to_num(np.asarray(targets, np.float64).reshape(-1), nan=0.0)
        held = np.asarray(held, np.float64).reshape(-1)
        stale = self._update_state(int(ts), float(equity), now_ns)
        out = want.copy()
        why = [""] * len(out)
        if self.state is RiskState.HALTED:
            out[:] = 0.0
            why = [f"halted ({self.reason})"] * len(out)
        else:
            cap = lim.max_position
            for a in range(len(out)):
                if abs(out[a]) > cap:
                    out[a] = np.sign(out[a]) * cap
                    if abs(want[a]) > cap * (1 + 1e-6):  # not float32 rounding of the cap
                        why[a] = f"max position {cap:g}"
            if lim.max_gross is not None:
                gross = float(np.abs(out).sum())
                if gross > lim.max_gross:
                    out *= lim.max_gross / gross
                    why = [w or f"max gross {lim.max_gross:g}" for w in why]
            if self.state is RiskState.REDUCING:
                for a in range(len(out)):
                    red = _reduced(held[a], out[a])
                    if red != out[a]:
                        out[a] = red
                        why[a] = f"reducing only ({self.reason})"
            if stale is not None:
                for a in range(len(out)):
                    red = _reduced(held[a], out[a])  # a stale feed may still cut risk
                    if red != out[a]:
                        out[a] = red
                        why[a] = stale
        # the order-rate limit counts the orders this decision would send
        window_start = int(ts) - lim.order_window_ns
        self.order_times = [x for x in self.order_times if x > window_start]
        for a in range(len(out)):
            if out[a] == held[a]:
                continue
            if (
                lim.max_orders is not None
                and len(self.order_times) >= lim.max_orders
                and self.state is not RiskState.HALTED
                and abs(out[a]) > abs(held[a])
            ):
                out[a] = held[a]
                why[a] = (
                    f"order rate: {lim.max_orders} orders per {lim.order_window_ns / 6e10:g} min"
                )
                continue
            self.order_times.append(int(ts))
        rej = [
            Rejection(int(bar), int(ts), self.symbols[a], float(want[a]), float(out[a]), why[a])
            for a in range(len(out))
            if why[a] and out[a] != want[a]
        ]
        return Decision(out, rej, self.state, self.reason)


def _reduced(held: float, want: float) -> float:
    """``want`` limited to what reduces risk from ``held``: same side and no larger, else
    the held size (an increase) or flat (a flip)."""
    if want == 0.0 or held == 0.0:
        return 0.0
    if (want > 0) != (held > 0):
        return 0.0
    return want if abs(want) <= abs(held) else held
