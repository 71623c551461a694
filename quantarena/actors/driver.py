"""The driver: start (or join) Ray, put the data in the object store once, start the director
and show its progress. ``run_in_process`` runs the same tournament without Ray (one process,
agents one after another) — for debugging and for comparing with the Ray path."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from quantarena.tournaments.setup import audit_entrants, load_panel

ProgressFn = Callable[[int, int, str], None]


def run_on_ray(
    cfg: Any,
    *,
    progress: ProgressFn | None = None,
    log_mlflow: bool = True,
    backend: str = "auto",
    poll_s: float = 0.5,
    resume: bool = False,
) -> dict[str, Any]:
    """Run ``cfg`` as a director actor with one agent actor per entrant; returns the summary.

    ``progress(done, total, stage)`` is called as rounds finish. Actors are named
    ``director:<tournament>`` and ``agent:<name>`` so the Ray dashboard reads well.
    ``resume``: continue from the checkpoint (checked here, before Ray starts).
    """
    from quantarena.tournaments.checkpoint import open_resume

    if cfg.ray.address is None:  # the director's filesystem is this one: check it first
        open_resume(cfg, resume)
    import ray

    from quantarena.actors.director import DirectorActor
    from quantarena.cluster.runtime import connect

    marks = {"start": time.time()}  # epoch seconds of the driver's phases
    t0 = time.perf_counter()
    panel = load_panel(cfg)
    t_data = time.perf_counter() - t0
    marks["data"] = time.time()
    audit_entrants(cfg, panel)  # before Ray starts: a refused agent costs no Ray work
    marks["audited"] = time.time()
    r = cfg.ray
    connect(
        r.address, num_cpus=r.num_cpus, num_gpus=r.num_gpus, include_dashboard=r.include_dashboard
    )
    marks["ray_up"] = time.time()
    panel_ref = ray.put(panel)
    del panel
    director = DirectorActor.options(name=f"director:{cfg.name}", num_cpus=0).remote(
        cfg.model_dump(mode="json"), [panel_ref], backend
    )
    marks["director_created"] = time.time()
    try:
        fut = director.run.remote(log_mlflow, resume)
        last = None
        while True:
            ready, _ = ray.wait([fut], timeout=poll_s)
            if progress is not None:
                p = ray.get(director.progress.remote())
                state = (p.get("done"), p.get("total"), p.get("stage"))
                if state != last:
                    progress(int(p.get("done", 0)), int(p.get("total", 0)), str(p.get("stage")))
                    last = state
            if ready:
                break
        try:
            summary = ray.get(fut)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ValueError | KeyError | FileNotFoundError):
                raise cause from None  # a user error: one line, not a remote traceback
            raise
    finally:
        marks["returned"] = time.time()
        ray.kill(director)
    summary.setdefault("timings", {})["data"] = t_data
    marks["end"] = time.time()
    summary.setdefault("timeline", {})["driver"] = marks
    return summary


def run_in_process(
    cfg: Any,
    *,
    progress: ProgressFn | None = None,
    log_mlflow: bool = True,
    backend: str = "auto",
    resume: bool = False,
) -> dict[str, Any]:
    """The same tournament without Ray: agents evaluated one after another in this process.
    Checkpoints, ``resume`` and failed agent-rounds (``ray.round_retries`` retries, then
    scored flat) behave as on Ray."""
    import traceback

    from quantarena.tournaments.checkpoint import open_resume
    from quantarena.tournaments.rounds import failed_result, run_agent_round
    from quantarena.tournaments.setup import play, prepare
    from quantarena.tracking.tournament import leaderboard_view, open_recording

    t0 = time.perf_counter()
    start = open_resume(cfg, resume)
    done = start.results if start is not None else []
    inputs = prepare(cfg)
    rec, ckpt = open_recording(cfg, start, log_mlflow=log_mlflow)
    total = len(inputs.rounds)
    if progress:
        progress(len(done), total, f"round {len(done) + 1}")

    previous: dict[str, Any] = dict(done[-1]) if done else {}

    def one(e: Any, rnd: Any) -> Any:
        err = ""
        for _ in range(cfg.ray.round_retries + 1):
            try:
                return run_agent_round(
                    inputs.panel,
                    e,
                    rnd,
                    inputs.costs,
                    previous=previous.get(e.name),
                    backend=backend,
                    periods_per_year=inputs.periods_per_year,
                )
            except Exception:
                err = traceback.format_exc()
        return failed_result(inputs.panel.ts, e, rnd, err, previous.get(e.name))

    def evaluate(rnd: Any) -> dict[str, Any]:
        out = {e.name: one(e, rnd) for e in inputs.entries}
        previous.update(out)
        return out

    def on_round(rep: Any) -> None:
        rec.on_round(rep)
        ckpt.on_round(rep)
        if progress:
            progress(rep.round.index + 1, total, f"round {rep.round.index + 1}")

    try:
        result = play(inputs, cfg, evaluate, on_round, done=done)
        summary = rec.finish(result, inputs.periods_per_year, inputs.legs())
    except BaseException:
        rec.fail()
        raise
    summary["leaderboard"] = leaderboard_view(result.leaderboard).to_dict("records")
    summary["timings"] = {"total": time.perf_counter() - t0}
    return summary
