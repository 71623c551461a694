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

Pure (no Ray): ``submit(agent, round) -> handle`` starts an agent-round and
``wait_any(handles) -> (handle, result)`` blocks until one of them is done; the director
actor passes Ray's ``actor.run_round.remote`` and ``ray.wait``/``ray.get``, a test plain
functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from quantarena.tournaments.schedule import Round

__all__ = ["RoundPipeline"]


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

    Attributes:
        max_running: the most agent-rounds that ran at once (for tests and logs).
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

    def results(self, rnd: Round) -> dict[str, Any]:
        """Every agent's result of ``rnd`` (blocks until they are in); rounds must be asked
        for in schedule order."""
        k = self._pos.get(rnd.index)
        if k is None:
            raise KeyError(f"round {rnd.index} is not in the schedule")
        self._asked = k
        while len(self._done.get(k, {})) < len(self.agents):
            self._start_more()
            if not self._running:
                raise RuntimeError(f"round {rnd.index}: nothing running and results missing")
            handle, value = self.wait_any(list(self._running))
            a, pos = self._running.pop(handle)
            self._done.setdefault(pos, {})[a] = value
        self._start_more()  # keep the slots busy while the director works on round k
        return self._done.pop(k)

    def cancel(self) -> list[Any]:
        """Handles still running (for the caller to cancel or kill)."""
        return list(self._running)
