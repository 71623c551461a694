"""Agents run their rounds ahead of the director, a bounded number at a time.

An agent's round depends only on the market data and on its own previous round (the account
its OOS replay continues from; a tuning agent's warm start), never on the director's capital
weights, so the director need not wait for every
agent to finish round ``k`` before any agent starts round ``k + 1``. :class:`RoundPipeline`
keeps ``slots`` agent-rounds running (round-major order: round ``k`` of every agent is started
before any round ``k + 1``; one round per agent at a time, so an agent's rounds run in order)
and hands the director each round's results when it asks for them.

Why bounded: on a CPU node, eight single-threaded agents time-sharing two cores run ~1.8×
slower than two at a time (cache thrashing, context switches), and a barrier per round leaves
cores idle while the slowest agent finishes. With ``slots`` = the cores, each core always has
exactly one agent-round to work on. On a GPU node every agent can run at once (``slots`` = the
number of agents).

Why a thread of its own (:meth:`RoundPipeline.start_background`): an agent-round of the
tournament benchmark takes about 0.2 s, less than the director's own work on a round (records,
ranking, an MLflow flush) or its MLflow set-up (seconds). When agent-rounds are started only
while the director waits in :meth:`RoundPipeline.results`, the slots empty while it works and
the cores idle; a background thread starts the next agent-round as soon as one finishes.

Pure (no Ray): ``submit(agent, round) -> handle`` starts an agent-round and
``wait_any(handles) -> (handle, result)`` blocks until one of them is done; the director
actor passes Ray's ``actor.run_round.remote`` and ``ray.wait``/``ray.get``, a test plain
functions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from quantarena.tournaments.schedule import Round

__all__ = ["AgentRoundError", "RoundPipeline"]


class AgentRoundError:
    """What ``wait_any`` returns in place of a result when an agent-round raised
    (``error``: its traceback text). The pipeline retries it, then asks ``on_failed``."""

    def __init__(self, error: str) -> None:
        self.error = error

    def __repr__(self) -> str:
        last = self.error.strip().splitlines()[-1:] or [""]
        return f"AgentRoundError({last[0]!r})"


class RoundPipeline:
    """Schedules ``agents`` × ``rounds`` agent-rounds over ``slots`` concurrent workers.

    Args:
        agents: agent names.
        rounds: the schedule, in order.
        submit: ``submit(agent, round) -> handle`` starts one agent-round (non-blocking).
        wait_any: ``wait_any(handles) -> (handle, result)`` waits for one of ``handles``.
        slots: agent-rounds running at once (>= 1); with ``groups``, a mapping group → its
            slots (e.g. each cluster node's cores).
        groups: agent → group (e.g. the node an agent actor was placed on); ``None``: one group.
        lookahead: how many rounds past the one the director asks for may be started
            (``None``: any; results are small, a few arrays per agent-round).
        retries: how many times a failed agent-round (``wait_any`` gave an
            :class:`AgentRoundError`) is started again before it counts as failed.
        on_failed: ``on_failed(agent, round, error, previous) -> result`` stands in for an
            agent-round that failed past its retries (e.g. a flat result); ``None``: raise
            ``RuntimeError`` with the error.
        initial: agent → its result of the round before ``rounds[0]`` (a resumed run).

    Attributes:
        max_running: the most agent-rounds that ran at once (for tests and logs).
        latest: agent → its latest finished result (the state its next round continues
            from: ``submit`` may pass it on, so a restarted worker needs nothing of its own).
        retried: ``(agent, round index)`` of every retry started, in order.
    """

    def __init__(
        self,
        agents: Sequence[str],
        rounds: Sequence[Round],
        submit: Callable[[str, Round], Any],
        wait_any: Callable[[list[Any]], tuple[Any, Any]],
        slots: int | Mapping[str, int],
        lookahead: int | None = None,
        groups: Mapping[str, str] | None = None,
        *,
        retries: int = 0,
        on_failed: Callable[[str, Round, str, Any], Any] | None = None,
        initial: Mapping[str, Any] | None = None,
    ) -> None:
        if groups is None:
            groups = dict.fromkeys(agents, "")
            slots = {"": slots} if not isinstance(slots, Mapping) else slots
        if not isinstance(slots, Mapping):
            raise ValueError("with groups, give slots as a mapping group -> slots")
        missing = sorted({groups.get(a) for a in agents} - set(slots), key=str)
        if missing:
            raise ValueError(f"no slots given for group(s) {missing}")
        bad = {g: n for g, n in slots.items() if int(n) < 1}
        if bad:
            raise ValueError(f"slots must be >= 1, got {bad}")
        if lookahead is not None and int(lookahead) < 0:
            raise ValueError(f"lookahead must be >= 0, got {lookahead}")
        self.agents = list(agents)
        self.rounds = list(rounds)
        self._pos = {r.index: i for i, r in enumerate(self.rounds)}
        self.submit = submit
        self.wait_any = wait_any
        self.groups = {a: groups[a] for a in agents}
        self.slots = {g: int(n) for g, n in slots.items()}
        self.lookahead = lookahead
        # per agent, the position (in `rounds`) of its next round to start
        self._next = dict.fromkeys(self.agents, 0)
        self._running: dict[Any, tuple[str, int]] = {}  # handle -> (agent, position)
        self._done: dict[int, dict[str, Any]] = {}
        self._asked = 0  # position of the round the director waits for
        self.max_running = 0
        if int(retries) < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.retries = int(retries)
        self.on_failed = on_failed
        self.latest: dict[str, Any] = dict(initial or {})
        self.retried: list[tuple[str, int]] = []
        self._attempts: dict[tuple[str, int], int] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False

    def _start_more(self) -> None:
        """Start agent-rounds, earliest round first, while slots are free."""
        busy = {a for a, _ in self._running.values()}
        used = dict.fromkeys(self.slots, 0)
        for a in busy:
            used[self.groups[a]] += 1
        limit = len(self.rounds) if self.lookahead is None else self._asked + self.lookahead + 1
        stop = min(limit, len(self.rounds))
        while True:
            cands = [
                a
                for a in self.agents
                if a not in busy
                and self._next[a] < stop
                and used[self.groups[a]] < self.slots[self.groups[a]]
            ]
            if not cands:
                return
            a = min(cands, key=lambda x: (self._next[x], self.agents.index(x)))
            k = self._next[a]
            handle = self.submit(a, self.rounds[k])
            self._running[handle] = (a, k)
            self._next[a] = k + 1
            busy.add(a)
            used[self.groups[a]] += 1
            self.max_running = max(self.max_running, len(self._running))

    def start(self) -> None:
        """Start the first agent-rounds now (e.g. while the caller sets up its logging)."""
        self._start_more()

    def start_background(self) -> None:
        """Start the agent-rounds and keep the slots busy from a daemon thread of this
        pipeline's own, whatever the caller is doing between :meth:`results` calls
        (``submit``, ``wait_any`` and ``on_failed`` are then called from that thread, one call
        at a time). An error there is raised by :meth:`results` for a round not complete."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._pump, name="round-pipeline", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._closed:
                        return
                    self._start_more()
                    handles = list(self._running)
                    if not handles:
                        if all(n >= len(self.rounds) for n in self._next.values()):
                            return  # every agent-round started and collected
                        self._cond.wait()  # held back by the lookahead: until results() asks
                        continue
                handle, value = self.wait_any(handles)
                with self._cond:
                    if self._closed:
                        return
                    self._collect(handle, value)
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _collect(self, handle: Any, value: Any) -> None:
        """Book one finished agent-round (or start a failed one again)."""
        a, pos = self._running.pop(handle)
        if isinstance(value, AgentRoundError):
            value = self._failed(a, pos, value)
            if value is None:  # started again
                return
        self.latest[a] = value
        self._done.setdefault(pos, {})[a] = value

    def results(self, rnd: Round) -> dict[str, Any]:
        """Every agent's result of ``rnd`` (blocks until they are in); rounds must be asked
        for in schedule order."""
        k = self._pos.get(rnd.index)
        if k is None:
            raise KeyError(f"round {rnd.index} is not in the schedule")
        if self._thread is not None:
            return self._results_background(rnd, k)
        self._asked = k
        while len(self._done.get(k, {})) < len(self.agents):
            self._start_more()
            if not self._running:
                raise RuntimeError(f"round {rnd.index}: nothing running and results missing")
            self._collect(*self.wait_any(list(self._running)))
        self._start_more()  # keep the slots busy while the director works on round k
        return self._done.pop(k)

    def _results_background(self, rnd: Round, k: int) -> dict[str, Any]:
        assert self._thread is not None
        with self._cond:
            self._asked = k
            self._cond.notify_all()  # a lookahead may let more start now
            while len(self._done.get(k, {})) < len(self.agents):
                if self._error is not None:
                    raise self._error
                if not self._thread.is_alive():
                    raise RuntimeError(f"round {rnd.index}: nothing running and results missing")
                self._cond.wait(timeout=1.0)
            return self._done.pop(k)

    def close(self) -> None:
        """Stop the background thread (it starts nothing more; an agent-round it waits for
        is left to the caller, see :meth:`cancel`)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _failed(self, agent: str, pos: int, err: AgentRoundError) -> Any:
        """Start a failed agent-round again (returns None) or, past the retries, its
        stand-in result."""
        rnd = self.rounds[pos]
        n = self._attempts.get((agent, pos), 0)
        if n < self.retries:
            self._attempts[(agent, pos)] = n + 1
            self.retried.append((agent, rnd.index))
            self._running[self.submit(agent, rnd)] = (agent, pos)
            return None
        if self.on_failed is None:
            raise RuntimeError(f"agent {agent}, round {rnd.index} failed:\n{err.error}")
        return self.on_failed(agent, rnd, err.error, self.latest.get(agent))

    def cancel(self) -> list[Any]:
        """Handles still running (for the caller to cancel or kill); stops the background
        thread."""
        self.close()
        with self._cond:
            return list(self._running)
