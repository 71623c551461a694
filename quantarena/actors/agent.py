"""The agent actor: one tournament entrant, holding its data on its device.

A few lines around the core: the panel arrives once through Ray's object store (NumPy arrays
are read zero-copy from shared memory) and stays; each round the director calls
:meth:`AgentActor.run_round`, which runs :func:`quantarena.tournaments.rounds.run_agent_round`
over the whole population, continuing the account of the actor's previous round, and returns
a small :class:`RoundResult`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import ray

from quantarena.data.panel import BarPanel
from quantarena.tournaments.rounds import AgentEntry, RoundResult, run_agent_round
from quantarena.tournaments.schedule import Round


def cap_gpu_memory(fraction: float | None) -> dict[str, float]:
    """Hold this actor to its share of the GPU's memory: CuPy's memory pool and, when torch is
    installed (ML agents), torch's caching allocator get ``fraction`` of the device each, so
    agents sharing a GPU cannot starve each other. Returns the caps set (bytes / fraction)."""
    if not fraction or fraction >= 1.0:
        return {}
    caps: dict[str, float] = {}
    import cupy

    total = cupy.cuda.Device().mem_info[1]
    cupy.get_default_memory_pool().set_limit(size=int(total * fraction))
    caps["cupy_bytes"] = float(int(total * fraction))
    try:
        import torch
    except ImportError:
        return caps
    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(float(fraction))
        caps["torch_fraction"] = float(fraction)
    return caps


@ray.remote
class AgentActor:
    """Ray actor of one agent. Create with ``AgentActor.options(name="agent:<name>",
    num_gpus=<fraction>)`` (see :func:`quantarena.cluster.agent_resources`)."""

    def __init__(
        self,
        panel: BarPanel,
        entry: AgentEntry,
        costs: Any,
        backend: str = "auto",
        periods_per_year: float | None = None,
        threads: int | None = None,
        gpu_fraction: float | None = None,
    ):
        self._boot = process_boot()  # before anything else this constructor does
        from quantarena.engine.backend import get_backend

        self.panel = panel
        self.entry = entry
        self.costs = costs
        self.backend = get_backend(backend)
        self.periods_per_year = periods_per_year
        self.memory_caps = cap_gpu_memory(gpu_fraction) if self.backend.is_gpu else {}
        if threads:  # actors sharing a node's cores: don't oversubscribe Numba's pool
            import numba

            numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
        self.rounds_done = 0
        self.previous: RoundResult | None = None
        self._boot["ready"] = time.time()
        self._boot["ready_cpu_s"] = time.process_time()
        self._rounds: list[tuple[int, float, float, float]] = []

    def info(self) -> dict[str, Any]:
        """Where the actor runs and what it holds (for tests and the dashboard)."""
        ctx = ray.get_runtime_context()
        return {
            "agent": self.entry.name,
            "backend": self.backend.name,
            "n_trials": self.entry.n_trials,
            "n_bars": self.panel.n_bars,
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "resources": ctx.get_assigned_resources(),
            "pid": os.getpid(),
            "node_id": ctx.get_node_id(),
            "zero_copy": not self.panel.close.flags.writeable,
            "memory_caps": self.memory_caps,
        }

    def run_round(self, rnd: Round, previous: RoundResult | None = None) -> RoundResult:
        """Pick parameters in sample and trade the round out of sample, continuing from
        ``previous`` (the agent's result of the round before; the director passes it, so a
        restarted actor needs no state of its own) or, when not given, from the result this
        actor last returned."""
        t0, c0 = time.time(), time.process_time()
        res = run_agent_round(
            self.panel,
            self.entry,
            rnd,
            self.costs,
            previous=previous if previous is not None else self.previous,
            backend=self.backend.name,
            periods_per_year=self.periods_per_year,
        )
        self.previous = res
        self.rounds_done += 1
        self._rounds.append((rnd.index, t0, time.time(), time.process_time() - c0))
        return res

    def timeline(self) -> dict[str, Any]:
        """When this actor's process started and was ready (epoch seconds; CPU seconds it
        spent booting: Ray's worker, imports, the constructor), and each round it ran:
        ``(round index, start, end, CPU seconds)`` — for the benchmark's phase breakdown."""
        return {"agent": self.entry.name, "pid": os.getpid(), **self._boot, "rounds": self._rounds}


def process_boot() -> dict[str, float]:
    """This process's start time (epoch s), now, and the CPU seconds it has used so far."""
    now = time.time()
    try:
        import psutil

        created = float(psutil.Process().create_time())
    except Exception:  # pragma: no cover - psutil is a Ray dependency
        created = now
    return {"created": created, "init": now, "init_cpu_s": time.process_time()}
