"""RoundPipeline: agents run rounds ahead of the director, a bounded number at a time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from quantarena.tournaments.pipeline import AgentRoundError, RoundPipeline
from quantarena.tournaments.schedule import Round


def _rounds(n: int) -> list[Round]:
    out = []
    for k in range(n):
        s = 100 + 10 * k
        out.append(
            Round(
                index=k,
                is_start=s - 20,
                is_end=s,
                oos_start=s,
                oos_end=s + 10,
                warmup_start=s - 30,
                warmup_start_ns=s - 30,
                is_start_ns=s - 20,
                oos_start_ns=s,
                oos_end_ns=s + 10,
            )
        )
    return out


class FakeCluster:
    """Agent-rounds that finish in a random order; records what ran when."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.running: dict[int, tuple[str, int]] = {}
        self.started: list[tuple[str, int]] = []
        self.max_running = 0
        self.n = 0

    def submit(self, agent: str, rnd: Round) -> int:
        assert agent not in {a for a, _ in self.running.values()}, "agent started twice"
        self.n += 1
        self.running[self.n] = (agent, rnd.index)
        self.started.append((agent, rnd.index))
        self.max_running = max(self.max_running, len(self.running))
        return self.n

    def wait_any(self, handles: list[int]) -> tuple[int, str]:
        assert sorted(handles) == sorted(self.running)
        h = handles[int(self.rng.integers(len(handles)))]
        agent, k = self.running.pop(h)
        return h, f"{agent}@{k}"


@pytest.mark.parametrize("slots", [1, 2, 3, 5])
def test_every_round_every_agent_in_order_within_slots(slots):
    agents = ["a", "b", "c"]
    rounds = _rounds(6)
    fc = FakeCluster(seed=slots)
    pipe = RoundPipeline(agents, rounds, fc.submit, fc.wait_any, slots)
    for r in rounds:
        got = pipe.results(r)
        assert got == {a: f"{a}@{r.index}" for a in agents}
    assert fc.max_running <= slots
    assert pipe.max_running == fc.max_running
    assert fc.max_running == min(slots, len(agents))
    for a in agents:  # each agent's rounds start in schedule order, once each
        assert [k for x, k in fc.started if x == a] == list(range(6))
    assert not pipe.cancel()


def test_runs_ahead_of_the_director_without_waiting_for_a_barrier():
    agents = ["a", "b"]
    rounds = _rounds(4)
    fc = FakeCluster()
    pipe = RoundPipeline(agents, rounds, fc.submit, fc.wait_any, slots=2)
    pipe.results(rounds[0])
    # while the director works on round 0, both slots already hold later rounds' work
    ks = [k for _, k in fc.running.values()]
    assert len(ks) == 2 and min(ks) >= 1


def test_lookahead_bounds_how_far_agents_run_ahead():
    agents = ["a", "b"]
    rounds = _rounds(5)
    fc = FakeCluster(seed=3)
    pipe = RoundPipeline(agents, rounds, fc.submit, fc.wait_any, slots=2, lookahead=0)
    for r in rounds:
        pipe.results(r)
        assert all(k <= r.index for _, k in fc.started)


def test_bad_arguments():
    with pytest.raises(ValueError, match="slots"):
        RoundPipeline(["a"], _rounds(1), lambda a, r: 0, lambda h: (0, 0), slots=0)
    fc = FakeCluster()
    pipe = RoundPipeline(["a"], _rounds(2), fc.submit, fc.wait_any, slots=1)
    with pytest.raises(KeyError, match="round 7"):
        pipe.results(_rounds(8)[7])


def test_groups_have_their_own_slots():
    agents = ["a", "b", "c", "d"]
    groups = {"a": "n1", "b": "n1", "c": "n2", "d": "n2"}
    rounds = _rounds(4)
    fc = FakeCluster(seed=4)
    seen: list[set[str]] = []
    wait = fc.wait_any

    def wait_any(handles):
        seen.append({fc.running[h][0] for h in handles})
        return wait(handles)

    pipe = RoundPipeline(agents, rounds, fc.submit, wait_any, {"n1": 1, "n2": 1}, groups=groups)
    for r in rounds:
        assert pipe.results(r) == {a: f"{a}@{r.index}" for a in agents}
    for running in seen:  # never two agents of one node at once
        assert len(running) <= 2 and len({groups[a] for a in running}) == len(running)
    assert fc.max_running == 2
    with pytest.raises(ValueError, match="no slots given for group"):
        RoundPipeline(agents, rounds, fc.submit, wait_any, {"n1": 1}, groups=groups)


def test_an_agent_error_reaches_the_director_and_the_rest_can_be_cancelled():
    agents = ["a", "b", "c"]
    fc = FakeCluster(seed=1)

    def wait_any(handles):
        h = handles[0]
        agent, k = fc.running.pop(h)
        if agent == "b" and k == 1:
            raise ValueError("agent b: round 1 failed")
        return h, f"{agent}@{k}"

    pipe = RoundPipeline(agents, _rounds(3), fc.submit, wait_any, slots=2)
    pipe.results(_rounds(3)[0])
    with pytest.raises(ValueError, match="agent b: round 1 failed"):
        pipe.results(_rounds(3)[1])
    assert pipe.cancel()  # what still runs, for the caller to kill


class SlowCluster(FakeCluster):
    """A FakeCluster whose ``wait_any`` is called from the pipeline's thread: thread-safe,
    and it can be told to finish nothing (``hold``) to stand for agents still computing."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.lock = threading.Lock()
        self.hold = threading.Event()
        self.threads: set[str] = set()

    def submit(self, agent: str, rnd: Round) -> int:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            return super().submit(agent, rnd)

    def wait_any(self, handles: list[int]) -> tuple[int, str]:
        while self.hold.is_set():
            time.sleep(0.001)
        with self.lock:
            self.threads.add(threading.current_thread().name)
            return super().wait_any(handles)


def _wait_until(cond, timeout_s: float = 10.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout_s, "timed out"
        time.sleep(0.001)


@pytest.mark.parametrize("slots", [1, 2, 3, 5])
def test_background_thread_gives_the_same_results_in_order_within_slots(slots):
    agents = ["a", "b", "c"]
    rounds = _rounds(6)
    fc = SlowCluster(seed=slots)
    pipe = RoundPipeline(agents, rounds, fc.submit, fc.wait_any, slots)
    pipe.start_background()
    for r in rounds:
        assert pipe.results(r) == {a: f"{a}@{r.index}" for a in agents}
    assert fc.max_running == min(slots, len(agents))
    for a in agents:
        assert [k for x, k in fc.started if x == a] == list(range(6))
    assert fc.threads == {"round-pipeline"}  # every submit and wait from the pipeline's thread
    assert not pipe.cancel()


def test_background_thread_keeps_the_slots_busy_while_the_director_works():
    """Without the thread, only ``slots`` agent-rounds run before the director first asks
    (its MLflow set-up takes seconds); with it, the agents go on through the schedule."""
    agents = ["a", "b", "c"]
    rounds = _rounds(5)
    fc = FakeCluster()
    sync = RoundPipeline(agents, rounds, fc.submit, fc.wait_any, slots=2)
    sync.start()
    assert len(fc.started) == 2
    fc = SlowCluster()
    pipe = RoundPipeline(agents, rounds, fc.submit, fc.wait_any, slots=2)
    pipe.start_background()
    _wait_until(lambda: len(fc.started) == len(agents) * len(rounds))  # no results() call yet
    assert fc.max_running == 2
    assert [pipe.results(r) for r in rounds] == [
        {a: f"{a}@{r.index}" for a in agents} for r in rounds
    ]
    _wait_until(lambda: not pipe._thread.is_alive())  # it ends with the schedule


def test_background_thread_respects_the_lookahead():
    agents = ["a", "b"]
    rounds = _rounds(5)
    fc = SlowCluster(seed=3)
    pipe = RoundPipeline(agents, rounds, fc.submit, fc.wait_any, slots=2, lookahead=1)
    pipe.start_background()
    for r in rounds:
        assert pipe.results(r) == {a: f"{a}@{r.index}" for a in agents}
        with fc.lock:
            assert all(k <= r.index + 1 for _, k in fc.started)
    _wait_until(lambda: not pipe._thread.is_alive())


def test_background_thread_retries_and_reports_errors():
    agents = ["a", "b", "c"]
    fc = SlowCluster(seed=1)
    failures = {("b", 1): 1}  # b's round 1 fails once, then succeeds

    def wait_any(handles):
        h, value = fc.wait_any(handles)
        agent, k = value.split("@")
        if failures.get((agent, int(k)), 0) > 0:
            failures[(agent, int(k))] -= 1
            return h, AgentRoundError("boom")
        return h, value

    pipe = RoundPipeline(agents, _rounds(3), fc.submit, wait_any, slots=2, retries=1)
    pipe.start_background()
    assert [pipe.results(r)["b"] for r in _rounds(3)] == ["b@0", "b@1", "b@2"]
    assert pipe.retried == [("b", 1)]

    fc = SlowCluster(seed=1)

    def broken(handles):
        h, value = fc.wait_any(handles)
        if value == "b@1":
            raise ValueError("agent b: round 1 failed")
        return h, value

    pipe = RoundPipeline(agents, _rounds(3), fc.submit, broken, slots=2)
    pipe.start_background()
    pipe.results(_rounds(3)[0])
    with pytest.raises(ValueError, match="agent b: round 1 failed"):
        pipe.results(_rounds(3)[1])
    pipe.cancel()


def test_closing_stops_the_background_thread():
    fc = SlowCluster()
    fc.hold.set()  # the agents compute "forever"
    pipe = RoundPipeline(["a", "b"], _rounds(3), fc.submit, fc.wait_any, slots=2)
    pipe.start_background()
    _wait_until(lambda: len(fc.started) == 2)
    assert len(pipe.cancel()) == 2  # what runs, for the caller to kill
    fc.hold.clear()
    _wait_until(lambda: not pipe._thread.is_alive())
    assert len(fc.started) == 2  # nothing started after close
