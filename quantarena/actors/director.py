"""The director actor: runs a tournament's rounds over the agent actors and logs the results.

The director's logic is :func:`quantarena.tournaments.director.run_tournament`; this actor
only supplies its ``evaluate`` callable (a fan-out to the agent actors, one call each per
round, in parallel) and is the tournament's one MLflow writer. The driver polls
:meth:`DirectorActor.progress` for its progress bar while :meth:`DirectorActor.run` works
(the actor runs two threads for that).
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

import ray

from quantarena.actors.agent import AgentActor, process_boot
from quantarena.tournaments.pipeline import RoundPipeline


def check_fits(asks: list[dict[str, float]], cluster: dict[str, float]) -> None:
    """Raise ``ValueError`` when the agents together ask for more GPUs (or CPUs) than the
    whole cluster has: they could never all be placed, and the tournament would wait."""
    for key, res in (("num_gpus", "GPU"), ("num_cpus", "CPU")):
        need = sum(a.get(key, 0.0) for a in asks)
        have = float(cluster.get(res, 0.0))
        if need > have + 1e-9:
            raise ValueError(
                f"the {len(asks)} agents ask for {need:g} {res}s but the cluster has {have:g}: "
                f"lower agents[].gpu_fraction (e.g. to {have / len(asks):.2g}) or add {res}s"
            )


def running_slots(
    configured: int | None, infos: list[dict[str, Any]], node_cpus: dict[str, float]
) -> tuple[dict[str, int], dict[str, str]]:
    """How many agent-rounds compute at once, per group of agents: ``(slots, groups)`` for
    :class:`~quantarena.tournaments.pipeline.RoundPipeline`.

    ``configured`` (``ray.max_running_agents``) caps the whole tournament; agents on GPUs all
    run at once; agents on CPUs run, on each node, as many at a time as the node has CPUs
    (``node_cpus``: node id → CPUs; ``infos``: the agents' :meth:`AgentActor.info`, with the
    node each was placed on)."""
    agents = [str(i["agent"]) for i in infos]
    if configured:
        return {"": int(configured)}, dict.fromkeys(agents, "")
    if any(i.get("backend") == "gpu" for i in infos):
        return {"": max(1, len(infos))}, dict.fromkeys(agents, "")
    groups = {str(i["agent"]): str(i.get("node_id", "")) for i in infos}
    count: dict[str, int] = {}
    for g in groups.values():
        count[g] = count.get(g, 0) + 1
    slots = {g: max(1, min(n, int(node_cpus.get(g, 1)))) for g, n in count.items()}
    return slots, groups


def _timelines(actors: list[Any], timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The agent actors' :meth:`AgentActor.timeline` (those that answer within
    ``timeout_s``; a restarted actor's covers its new process only)."""
    out = []
    try:
        refs = [a.timeline.remote() for a in actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    except Exception:  # noqa: BLE001 - diagnostics only: never fail a finished tournament
        return out
    for r in ready:
        try:
            out.append(ray.get(r))
        except Exception:  # noqa: BLE001 - a dead actor: its timeline is lost, not the run
            continue
    return out


@ray.remote(max_concurrency=2)
class DirectorActor:
    """Ray actor that runs one tournament. ``panel_ref`` is wrapped in a list so the director
    passes the reference on to the agents without fetching the data itself."""

    def __init__(
        self,
        cfg_dict: dict[str, Any],
        panel_ref: list[Any],
        backend: str = "auto",
        placement_timeout_s: float = 300.0,
    ):
        from quantarena.config import TournamentConfig

        self.cfg = TournamentConfig.model_validate(cfg_dict)
        self.panel_ref = panel_ref[0]
        self.backend = backend
        self.placement_timeout_s = placement_timeout_s
        self._lock = threading.Lock()
        self._progress: dict[str, Any] = {"done": 0, "total": 0, "stage": "starting"}

    def progress(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._progress)

    def _set(self, **kw: Any) -> None:
        with self._lock:
            self._progress.update(kw)

    def run(self, log_mlflow: bool = True, resume: bool = False) -> dict[str, Any]:
        """Run every round (``resume``: the rounds after the checkpoint's); returns the
        summary (leaderboard rows, paths, timings).

        Faults: agent actors restart (``ray.max_restarts``) and Ray retries their interrupted
        call (``ray.max_task_retries``); every call carries the agent's previous result, so a
        restarted actor continues exactly. An agent-round that raises is started again up to
        ``ray.round_retries`` times, then scored flat (:func:`failed_result`). A checkpoint
        is written after every round."""
        from quantarena.cluster.runtime import agent_resources
        from quantarena.tournaments.checkpoint import open_resume
        from quantarena.tournaments.pipeline import AgentRoundError
        from quantarena.tournaments.rounds import failed_result
        from quantarena.tournaments.setup import play, prepare
        from quantarena.tracking.tournament import leaderboard_view, open_recording

        cfg = self.cfg
        t_start = time.perf_counter()
        marks = process_boot()  # epoch seconds of the phases, for the benchmark's breakdown
        marks["run"] = marks.pop("init")
        marks["run_cpu_s"] = marks.pop("init_cpu_s")

        def mark(name: str) -> None:
            marks[name] = time.time()
            marks[f"{name}_cpu_s"] = time.process_time()  # this process's, all its threads

        start = open_resume(cfg, resume)
        done = start.results if start is not None else []
        panel = ray.get(self.panel_ref)
        inputs = prepare(cfg, panel=panel, audit=False)  # the driver audited the entrants
        del panel
        mark("prepared")
        self._set(total=len(inputs.rounds), done=len(done), stage="starting agents")
        asks = [agent_resources(a.gpu_fraction) for a in cfg.agents]
        cluster = ray.cluster_resources()
        check_fits(asks, cluster)
        # Numba threads per agent: the cores shared out over the agent-rounds that run at once
        # (on CPUs, by default as many as there are cores: one thread each)
        n_cpu = max(1, int(cluster.get("CPU", 1)))
        threads = max(1, n_cpu // (cfg.ray.max_running_agents or min(len(asks), n_cpu)))
        actors = {}
        for e, ask in zip(inputs.entries, asks, strict=True):
            # SPREAD: on a cluster, agents go to different nodes (not packed onto the first
            # one that fits their fractions); on one node it changes nothing
            actors[e.name] = AgentActor.options(
                name=f"agent:{e.name}",
                scheduling_strategy="SPREAD",
                max_restarts=cfg.ray.max_restarts,
                max_task_retries=cfg.ray.max_task_retries,
                **ask,
            ).remote(
                self.panel_ref,
                e,
                inputs.costs,
                self.backend,
                inputs.periods_per_year,
                threads,
                ask.get("num_gpus"),
            )
        mark("actors_created")
        info_refs = [a.info.remote() for a in actors.values()]
        ready, pending = ray.wait(
            info_refs, num_returns=len(info_refs), timeout=self.placement_timeout_s
        )
        if pending:
            for a in actors.values():
                ray.kill(a)
            raise RuntimeError(
                f"{len(pending)} of {len(actors)} agent actors could not be placed within "
                f"{self.placement_timeout_s:.0f} s: the cluster lacks the resources they ask "
                "for — lower agents[].gpu_fraction or add nodes"
            )
        infos = ray.get(info_refs)
        mark("actors_ready")
        node_cpus = {
            n["NodeID"]: float(n["Resources"].get("CPU", 0.0)) for n in ray.nodes() if n["Alive"]
        }
        slot_map, groups = running_slots(cfg.ray.max_running_agents, infos, node_cpus)
        slots = sum(slot_map.values())
        timings = {"replay": 0.0, "ray": 0.0, "tracking": 0.0, "selection": 0.0, "wait": 0.0}
        timings["slots"] = float(slots)

        def wait_any(refs: list[Any]) -> tuple[Any, Any]:
            (ref,), _ = ray.wait(refs, num_returns=1)
            try:
                return ref, ray.get(ref)
            except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
                return ref, AgentRoundError(str(exc))

        entries = {e.name: e for e in inputs.entries}
        ts = inputs.panel.ts

        def on_failed(name: str, rnd: Any, error: str, previous: Any) -> Any:
            return failed_result(ts, entries[name], rnd, error, previous)

        pipeline: RoundPipeline = RoundPipeline(
            list(actors),
            inputs.rounds[len(done) :],
            lambda name, rnd: actors[name].run_round.remote(rnd, pipeline.latest.get(name)),
            wait_any,
            slot_map,
            groups=groups,
            retries=cfg.ray.round_retries,
            on_failed=on_failed,
            initial=dict(done[-1]) if done else None,
        )
        # agents work while MLflow sets up (its first call takes seconds) and while the
        # director records each round: a thread of the pipeline keeps the slots busy
        pipeline.start_background()
        mark("pipeline_started")
        try:
            rec, ckpt = open_recording(cfg, start, log_mlflow=log_mlflow)
        except BaseException:
            pipeline.close()
            for a in actors.values():
                ray.kill(a)
            raise
        mark("recording_open")
        last_index = inputs.rounds[-1].index if inputs.rounds else -1

        def evaluate(rnd: Any) -> dict[str, Any]:
            t0 = time.perf_counter()
            out = pipeline.results(rnd)
            timings["wait"] += time.perf_counter() - t0
            if rnd.index == last_index:
                mark("last_results")
            timings["replay"] += sum(
                r.timings.get("replay_is", 0)
                + r.timings.get("replay_oos", 0)
                + r.timings.get("indicators", 0)
                for r in out.values()
            )
            return out

        def on_round(report: Any) -> None:
            t0 = time.perf_counter()
            rec.on_round(report)
            ckpt.on_round(report)
            timings["tracking"] += time.perf_counter() - t0
            if report.round.index == last_index:
                mark("last_round_logged")
            best = report.cumulative.sort_values("sharpe", ascending=False).index[0]
            self._set(
                done=report.round.index + 1,
                stage=f"round {report.round.index + 1}",
                leader=str(best),
            )

        try:
            self._set(stage="round 1")
            t0 = time.perf_counter()
            result = play(inputs, cfg, evaluate, on_round, done=done)
            mark("play_done")
            timings["selection"] = max(
                time.perf_counter() - t0 - timings["wait"] - timings["tracking"], 0.0
            )
            # Ray's share: the director's waiting beyond the agents' compute spread over the
            # slots (scheduling, transfers, and cores idle at the end of the schedule)
            timings["ray"] = max(timings["wait"] - timings["replay"] / slots, 0.0)
            self._set(stage="writing results")
            t0 = time.perf_counter()
            summary = rec.finish(result, inputs.periods_per_year, inputs.legs())
            timings["tracking"] += time.perf_counter() - t0
            mark("finished")
            agent_lines = _timelines(list(actors.values()))
        except BaseException:
            rec.fail()
            self._set(stage="failed", error=traceback.format_exc(limit=3))
            raise
        finally:
            pipeline.close()
            for a in actors.values():
                ray.kill(a)
        timings["total"] = time.perf_counter() - t_start
        marks["cpu_s"] = time.process_time()
        summary["timings"] = timings
        summary["timeline"] = {"director": marks, "agents": agent_lines}
        summary["agents_info"] = infos
        summary["leaderboard"] = leaderboard_view(result.leaderboard).to_dict("records")
        summary["bar_param_updates"] = float(
            sum((r.n_is + r.n_oos) * e.n_trials for r in inputs.rounds for e in inputs.entries)
        )
        self._set(stage="done")
        return summary
