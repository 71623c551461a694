"""The agent interface: a parameter space plus vectorised target weights.

An agent turns bars into **target weights** (fractions of current equity per asset) for a
whole *population* of parameter sets at once. ``params`` is a dict ``name -> (P,) array``;
the population is the LAST axis of every array.

The engine calls an agent in two steps:

1. :meth:`Agent.indicators` — computed ONCE for the bars: one indicator per DISTINCT window,
   shared by every parameter set that uses it (a fast × slow crossover grid of 1,000 sets
   over windows 5..50 and 50..200 needs 26 moving averages, not 1,000);
2. :meth:`Agent.signal` — the target weights of bars ``t0 .. t1-1`` for all parameter sets,
   ``(t1-t0, P)`` for one asset or ``(t1-t0, A, P)`` for several, float32. It is called block
   by block (see :meth:`Agent.source`), so ``(T, P)`` is never held at once.

Rules an agent must keep (the look-ahead audit, :mod:`.audit`, checks them):

* the weight of bar ``t`` is decided at the CLOSE of bar ``t`` from bars ``0..t`` only; the
  engine fills it at the open of bar ``t+1`` (``fill="open"``);
* weights are in ``[-max_position, +max_position]`` (``max_position`` = the cap on any one
  position's share of capital, default 0.10); before an indicator's window is full the
  weight is 0 (flat); NaN means flat.
* path-dependent agents (hysteresis, channel exits) carry their position across blocks; a
  call with an unexpected ``t0`` replays from bar 0, so any call order gives the same answer.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from quantarena.strategies import params as P
from quantarena.strategies.indicators import is_cupy

if TYPE_CHECKING:
    from quantarena.data.panel import BarPanel
    from quantarena.engine.fused import FusedSignal
    from quantarena.strategies.streaming import AgentStream


class Agent:
    """Base class of all agents.

    Subclasses set ``name``, ``space`` (a dict of :class:`~.params.Int`,
    :class:`~.params.Float`, :class:`~.params.Choice`), optionally ``default_grid`` (value
    specs per parameter used by :meth:`grid` when the caller gives none) and implement
    :meth:`indicators` and :meth:`signal`; :meth:`valid` filters impossible sets.

    Args:
        max_position: cap on |weight| of any one asset, a fraction of equity (0.10 = 10%).
        long_only: replace short (negative) weights by 0.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    space: ClassVar[dict[str, P.Dimension]] = {}
    default_grid: ClassVar[dict[str, Any]] = {}

    def __init__(self, max_position: float = 0.10, long_only: bool = False) -> None:
        max_position = float(max_position)
        if not (np.isfinite(max_position) and max_position > 0):
            raise ValueError(f"max_position must be a positive fraction, got {max_position}")
        self.max_position = max_position
        self.long_only = bool(long_only)

    def __repr__(self) -> str:
        extra = ", long_only=True" if self.long_only else ""
        return f"{type(self).__name__}(max_position={self.max_position:g}{extra})"

    def replace(self, **changes: Any) -> Agent:
        """A copy with attributes changed (e.g. ``agent.replace(max_position=1.0)``)."""
        new = copy.copy(self)
        for k, v in changes.items():
            if not hasattr(new, k):
                raise ValueError(f"agent {self.name!r} has no option {k!r}")
            setattr(new, k, v)
        if "max_position" in changes:
            mp = float(new.max_position)
            if not (np.isfinite(mp) and mp > 0):
                raise ValueError(f"max_position must be a positive fraction, got {mp}")
            new.max_position = mp
        return new

    # ---------------------------------------------------------------- parameter sets

    def valid(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean (P,) mask of the sets that make sense (default: all)."""
        return np.ones(P.n_params(params), dtype=bool)

    def grid(self, **specs: Any) -> P.Params:
        """Cartesian grid: ``specs[name]`` = values (text "5:50:5", list, range, array,
        scalar); names not given use ``default_grid`` or the dimension's full range. Invalid
        combinations are dropped."""
        merged = {**self.default_grid, **specs}
        return P.grid(self.space, valid=self.valid, owner=f"agent {self.name!r}", **merged)

    def sample(self, n: int, seed: int = 0) -> P.Params:
        """``n`` random valid parameter sets (reproducible for ``seed``)."""
        return P.sample(self.space, n, seed, valid=self.valid)

    def defaults(self) -> P.Params:
        """The one-set population of each dimension's default value."""
        return {k: d.coerce(k, [d.default_value()]) for k, d in self.space.items()}

    def check_params(self, params: Mapping[str, Any] | None) -> P.Params:
        """Validate a population: known names, equal lengths, values within their ranges,
        every set :meth:`valid`. Missing names take the dimension's default value. ``None``
        → :meth:`defaults`. Raises ``ValueError`` naming the parameter or the first bad set."""
        if params is None:
            return self.defaults()
        P._check_names(self.space, list(params), f"agent {self.name!r}")
        arrays = {k: np.atleast_1d(np.asarray(v)) for k, v in params.items()}
        lengths = {k: a.shape[0] for k, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"parameter arrays differ in length: {lengths}")
        n = next(iter(lengths.values())) if lengths else 1
        out: P.Params = {}
        for k, dim in self.space.items():
            if k in arrays:
                out[k] = dim.coerce(k, arrays[k].tolist())
            else:
                out[k] = dim.coerce(k, [dim.default_value()] * n)
        ok = np.asarray(self.valid(out), dtype=bool)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            bad = {k: v[i].item() for k, v in out.items()}
            raise ValueError(f"invalid parameter set #{i} for agent {self.name!r}: {bad}")
        return out

    # ---------------------------------------------------------------- the two steps

    def indicators(self, bars: BarPanel, params: P.Params, xp: Any = np) -> Any:
        """Everything :meth:`signal` needs, computed once for ``bars`` (one indicator per
        distinct window). Returns an agent-defined state object."""
        raise NotImplementedError

    def signal(self, state: Any, params: P.Params, xp: Any, t0: int, t1: int) -> Any:
        """Target weights of bars ``t0 .. t1-1``: ``(t1-t0, P)`` (one asset) or
        ``(t1-t0, A, P)``, float32, on ``xp``'s device."""
        raise NotImplementedError

    def fused(self, state: Any, params: P.Params, t0: int) -> FusedSignal | None:
        """The agent's targets from bar ``t0`` on as a rule the engine runs inside its replay
        loop (:class:`~quantarena.engine.fused.FusedSignal`), or None (the default:
        the engine replays the blocks of :meth:`signal`). Shipped agents implement it; the
        fused and block replays give identical results. CPU (NumPy) only."""
        return None

    def positions(
        self, bars: BarPanel, params: Mapping[str, Any] | None = None, xp: Any = np
    ) -> Any:
        """All target weights at once, ``(T, P)`` or ``(T, A, P)`` (small problems, tests)."""
        p = self.check_params(params)
        state = self.indicators(bars, p, xp)
        return self.signal(state, p, xp, 0, bars.n_bars)

    def source(
        self, bars: BarPanel, params: Mapping[str, Any] | None = None, xp: Any = np
    ) -> AgentSource:
        """A :class:`PositionSource` for the engine's streaming path."""
        p = self.check_params(params)
        return AgentSource(self, self.indicators(bars, p, xp), p, xp, bars.n_bars, bars.n_assets)

    # ---------------------------------------------------------------- the streaming path

    def stream(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        n_assets: int = 1,
        interval_ns: int | None = None,
        history: BarPanel | None = None,
    ) -> AgentStream:
        """The streaming path: an :class:`~.streaming.AgentStream` fed one bar at a time
        (``stream.step(open, high, low, close, volume)`` → ``(A, P)`` float32 targets),
        warmed up on ``history`` (its assets and interval are then used). Each step costs
        ``O(window)``; the targets equal, bit for bit, the rows :meth:`positions` gives over
        the same bars (see :mod:`.streaming`)."""
        p = self.check_params(params)
        if history is not None:
            n_assets, interval_ns = history.n_assets, int(history.interval_ns)
        s = self._stream(p, int(n_assets), interval_ns)
        if history is not None:
            s.warm_up(history)
        return s

    def _stream(self, params: P.Params, n_assets: int, interval_ns: int | None) -> AgentStream:
        """The agent's :class:`~.streaming.AgentStream` (each shipped agent implements it)."""
        raise NotImplementedError(
            f"agent {self.name!r} has no streaming path: implement _stream() to paper-trade it"
        )

    # ---------------------------------------------------------------- helpers for subclasses

    @staticmethod
    def new_block(xp: Any, n: int, n_assets: int, n_params: int) -> Any:
        """An uninitialised ``(n, A, P)`` float32 block to fill."""
        return xp.empty((n, n_assets, n_params), dtype=xp.float32)

    @staticmethod
    def shape_block(out: Any, n_assets: int) -> Any:
        """``(n, A, P)`` → ``(n, P)`` for one asset (a view), as the engine expects."""
        return out.reshape(out.shape[0], out.shape[2]) if n_assets == 1 else out


class AgentSource:
    """Streams an agent's target weights block by block (the engine's ``PositionSource``).

    Attributes:
        n_params: P. n_bars: T. n_assets: A.
    """

    def __init__(
        self, agent: Agent, state: Any, params: P.Params, xp: Any, n_bars: int, n_assets: int
    ) -> None:
        self.agent = agent
        self.state = state
        self.params = params
        self.xp = xp
        self.n_bars = int(n_bars)
        self.n_assets = int(n_assets)
        self.n_params = P.n_params(params)

    def __call__(self, t0: int, t1: int) -> Any:
        t0, t1 = int(t0), int(t1)
        if not 0 <= t0 <= t1 <= self.n_bars:
            raise ValueError(f"block [{t0}, {t1}) is outside the {self.n_bars} bars")
        return self.agent.signal(self.state, self.params, self.xp, t0, t1)

    def fused(self, t0: int = 0) -> FusedSignal | None:
        """The agent's fused rule from bar ``t0`` on (None: replay blocks; always None off
        the CPU)."""
        if self.xp is not np:
            return None
        t0 = int(t0)
        if not 0 <= t0 <= self.n_bars:
            raise ValueError(f"bar {t0} is outside the {self.n_bars} bars")
        return self.agent.fused(self.state, self.params, t0)


class Carry:
    """The position a path-dependent agent carries from one block to the next.

    ``pos`` (A, P) float32 is the position at bar ``next_t - 1``. :meth:`run` continues when
    ``t0 == next_t`` and otherwise replays bars ``0 .. t0-1`` first, so ``signal`` gives the
    same answer whatever order the blocks are asked in.
    """

    REPLAY_BLOCK = 8192

    def __init__(self, n_assets: int, n_params: int) -> None:
        self.pos = np.zeros((n_assets, n_params), dtype=np.float32)
        self.next_t = 0

    def at(self, kernel: Any, t0: int) -> np.ndarray:
        """The position at bar ``t0 - 1`` (replaying as :meth:`run` does); a copy."""
        self.run(kernel, t0, t0, np.empty((0,) + self.pos.shape, np.float32))
        return self.pos.copy()

    def set(self, pos: np.ndarray, next_t: int) -> None:
        """Continue from ``pos``, the position at bar ``next_t - 1`` (a fused replay's end)."""
        self.pos[...] = pos
        self.next_t = int(next_t)

    def run(self, kernel: Any, t0: int, t1: int, out: np.ndarray) -> np.ndarray:
        """Call ``kernel(t0, t1, carry, out)`` for the block, replaying from 0 if needed."""
        if t0 != self.next_t:
            self.pos[:] = 0.0
            self.next_t = 0
            if t0 > 0:
                scratch = np.empty((min(t0, self.REPLAY_BLOCK),) + out.shape[1:], np.float32)
                for a in range(0, t0, self.REPLAY_BLOCK):
                    b = min(a + self.REPLAY_BLOCK, t0)
                    kernel(a, b, self.pos, scratch[: b - a])
        if t1 > t0:
            kernel(t0, t1, self.pos, out)
        self.next_t = t1
        return out


def host_block(xp: Any, out: np.ndarray) -> Any:
    """Move a host block to ``xp``'s device (no copy for numpy)."""
    return xp.asarray(out) if is_cupy(xp) else out
