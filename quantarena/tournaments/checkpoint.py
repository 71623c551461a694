"""Tournament checkpoints: what a director needs to continue a run where it stopped.

Pure core (no Ray, no MLflow). After every round the director writes one
:class:`Checkpoint` — the config's fingerprint, the index of the last finished round, every
finished round's :class:`~quantarena.tournaments.rounds.RoundResult` per agent (the track
records, the capital weights and the gates are recomputed from them exactly; each agent's
last result carries its account and warm-start state), the weights used, the MLflow run ids
— atomically: to a temporary file beside the target, then renamed over it, so a reader sees
the old checkpoint or the new one, never half of one. Each round's results live in a file of
their own (:func:`round_file`), written once when the round ends; the head file, written
last, says how many rounds count. The target is a local path or any
fsspec URI (``s3://``, ``gs://``, ``memory://``, ...).

Randomness: populations are drawn from ``cfg.seed`` and the agent's position, tuning seeds
from ``cfg.seed`` too, and the director uses no random numbers, so the finished rounds plus
the config fix every later number; no generator state needs saving.

A checkpoint may be resumed only by a config equal to the checkpointed one in everything but
its ``tracking`` and ``ray`` sections and the agents' ``gpu_fraction`` (where and how it runs,
not what it computes): :func:`check_resumable` names the first difference otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT_NAME",
    "Checkpoint",
    "Checkpointer",
    "check_resumable",
    "checkpoint_target",
    "config_fingerprint",
    "load_checkpoint",
    "open_resume",
    "population_file",
    "round_file",
    "resumable_view",
    "save_checkpoint",
]

#: the checkpoint's file name in a tournament's output dir
CHECKPOINT_NAME = "checkpoint.pkl"
_FORMAT = 1
#: config keys that may change between a run and its resume (placement and logging only)
RUN_ONLY_SECTIONS = ("tracking", "ray")
RUN_ONLY_AGENT_KEYS = ("gpu_fraction",)


@dataclass
class Checkpoint:
    """A tournament's state after round ``rounds_done - 1``.

    Attributes:
        config_hash: :func:`config_fingerprint` of the config that ran.
        config: :func:`resumable_view` of that config, secrets masked (to name a
            difference).
        rounds_done: rounds finished (the next round to play is ``rounds[rounds_done]``).
        results: per finished round, agent → RoundResult (track record and warm start).
        weights: per finished round, method → agent → capital weight used.
        run_ids: MLflow run ids: ``"parent"`` and one per agent name (empty without MLflow).
        failures: agent → round indices it failed (scored flat).
    """

    config_hash: str
    config: dict[str, Any]
    rounds_done: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    weights: list[dict[str, dict[str, float]]] = field(default_factory=list)
    run_ids: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[int]] = field(default_factory=dict)
    version: int = _FORMAT


def checkpoint_target(cfg: Any) -> str:
    """Where ``cfg``'s checkpoint goes: ``tracking.checkpoint`` or
    ``<tracking.output_dir>/checkpoint.pkl``."""
    t = cfg.tracking
    return str(t.checkpoint) if t.checkpoint else str(Path(t.output_dir) / CHECKPOINT_NAME)


def resumable_view(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """The part of a config (``model_dump(mode="json")``) a resume must match: all but the
    run-only sections and agent keys."""
    out = {k: v for k, v in cfg_dict.items() if k not in RUN_ONLY_SECTIONS}
    out["agents"] = [
        {k: v for k, v in a.items() if k not in RUN_ONLY_AGENT_KEYS}
        for a in cfg_dict.get("agents", [])
    ]
    return out


def config_fingerprint(cfg_dict: dict[str, Any]) -> str:
    """SHA-256 (hex) of :func:`resumable_view` in canonical JSON."""
    text = json.dumps(resumable_view(cfg_dict), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _first_difference(a: Any, b: Any, key: str = "") -> str | None:
    """The dotted key of the first difference between two JSON-like values (None: equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            d = _first_difference(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
            if d is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{key} (length {len(b)} → {len(a)})"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _first_difference(x, y, f"{key}[{i}]")
            if d is not None:
                return d
        return None
    if a != b:
        return f"{key} ({b!r} → {a!r})"
    return None


def check_resumable(cfg_dict: dict[str, Any], ckpt: Checkpoint, where: str = "") -> None:
    """Raise ``ValueError`` (one line) when ``cfg_dict`` may not resume ``ckpt``."""
    if ckpt.version != _FORMAT:
        raise ValueError(
            f"{where or 'checkpoint'}: format {ckpt.version}, this quantarena reads {_FORMAT} "
            "— run without --resume"
        )
    if config_fingerprint(cfg_dict) == ckpt.config_hash:
        return
    from quantarena.redact import redact

    diff = _first_difference(redact(resumable_view(cfg_dict)), ckpt.config) or "the config"
    raise ValueError(
        f"{where or 'checkpoint'}: the config differs from the checkpointed run in {diff}; "
        "only tracking, ray and agents[].gpu_fraction may change on --resume — restore the "
        "config or run without --resume into a new output_dir"
    )


def _is_uri(target: str | Path) -> bool:
    return "://" in str(target) and not str(target).startswith("file://")


def _write_atomic(target: str | Path, data: bytes) -> None:
    """``data`` to ``target`` (path or fsspec URI): a temporary file beside it (flushed to
    disk for a local path), then renamed over it."""
    if _is_uri(target):
        import fsspec

        fs, path = fsspec.core.url_to_fs(str(target))
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, path)
        return
    p = Path(str(target).removeprefix("file://"))
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(target: str | Path) -> bytes | None:
    """The bytes at ``target`` (None when there is no such file)."""
    if _is_uri(target):
        import fsspec

        fs, path = fsspec.core.url_to_fs(str(target))
        if not fs.exists(path):
            return None
        with fs.open(path, "rb") as f:
            return bytes(f.read())
    p = Path(str(target).removeprefix("file://"))
    return p.read_bytes() if p.is_file() else None


def round_file(target: str | Path, k: int) -> str:
    """Where round ``k``'s results of the checkpoint ``target`` are kept:
    ``<target>.rounds/round-<k>.pkl``."""
    return f"{target}.rounds/round-{k:05d}.pkl"


def save_checkpoint(
    ckpt: Checkpoint, target: str | Path, rounds: Sequence[int] | None = None
) -> None:
    """Write ``ckpt`` to ``target`` (a file path or fsspec URI).

    Each finished round's results go to a file of their own (:func:`round_file`), so a
    checkpoint after round ``k`` writes one round, not all ``k`` again; ``rounds`` names the
    rounds to (re)write (None: every round). The head file (``target``: config, rounds done,
    run ids) is written last. Every file is written atomically (a temporary file, renamed
    over the old one): a reader sees the previous checkpoint or the new one, never a part.
    """
    todo = range(len(ckpt.results)) if rounds is None else rounds
    for k in todo:
        blob = pickle.dumps((ckpt.results[k], ckpt.weights[k]), protocol=pickle.HIGHEST_PROTOCOL)
        _write_atomic(round_file(target, k), blob)
    head = replace(ckpt, results=[], weights=[])
    _write_atomic(target, pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(target: str | Path) -> Checkpoint | None:
    """The checkpoint at ``target`` with its rounds (None when there is none)."""
    data = _read(target)
    if data is None:
        return None
    head = pickle.loads(data)  # noqa: S301 - our own file
    if not isinstance(head, Checkpoint):
        raise ValueError(
            f"{target}: not a quantarena checkpoint — delete it or run without --resume"
        )
    results, weights = [], []
    for k in range(head.rounds_done):
        blob = _read(round_file(target, k))
        if blob is None:
            raise ValueError(
                f"{round_file(target, k)}: missing round of the checkpoint — restore it or "
                "run without --resume"
            )
        r, w = pickle.loads(blob)  # noqa: S301 - our own file
        results.append(r)
        weights.append(w)
    blob = _read(population_file(target)) if results else None
    if blob is not None:
        k, states = pickle.loads(blob)  # noqa: S301 - our own file
        if k == len(results) - 1:  # the latest round's states (an older file: none apply)
            results[-1] = {
                a: replace(r, population=states[a]) if a in states else r
                for a, r in results[-1].items()
            }
    return replace(head, results=results, weights=weights)


class Checkpointer:
    """Writes a :class:`Checkpoint` after every round (``on_round``, after the round was
    logged): ``before_save()`` first (the MLflow buffer written, so a resume finds every
    logged round in the store), then the file, atomically.

    Args:
        target: path or fsspec URI of the checkpoint.
        cfg_dict: the config (``model_dump(mode="json")``).
        run_ids: ``() -> {"parent": id, agent: id}`` (the MLflow runs; ``{}`` without).
        start: the checkpoint a resumed run continues (None: a new run).
        before_save: called before each write (e.g. the recorder's flush).
    """

    def __init__(
        self,
        target: str | Path,
        cfg_dict: dict[str, Any],
        run_ids: Any = dict,
        start: Checkpoint | None = None,
        before_save: Any = None,
    ) -> None:
        self.target = target
        self.run_ids = run_ids
        self.before_save = before_save
        from quantarena.redact import redact

        self.ckpt = start or Checkpoint(  # the config as a reader may see it: secrets masked
            config_hash=config_fingerprint(cfg_dict), config=redact(resumable_view(cfg_dict))
        )

    def on_round(self, report: Any) -> None:
        """Add ``report``'s round (a :class:`~quantarena.tournaments.director.RoundReport`)
        and write the checkpoint (a replayed round of a resumed run is in it already)."""
        if getattr(report, "replayed", False):
            return
        c = self.ckpt
        results = {a: _slim(r) for a, r in report.results.items()}
        states = {
            a: r.population
            for a, r in report.results.items()
            if getattr(r, "population", None) is not None
        }
        if states or c.results:  # before the head: a reader never sees a head without them
            blob = pickle.dumps((len(c.results), states), protocol=pickle.HIGHEST_PROTOCOL)
            _write_atomic(population_file(self.target), blob)
        c.results.append(results)
        c.weights.append(report.weights)
        c.rounds_done = len(c.results)
        for a, r in results.items():
            if getattr(r, "failed", None):
                c.failures.setdefault(a, []).append(int(report.round.index))
        if self.before_save is not None:
            self.before_save()
        c.run_ids = dict(self.run_ids())
        save_checkpoint(c, self.target, rounds=[c.rounds_done - 1])


def _slim(res: Any) -> Any:
    """A RoundResult without what a resume does not need (the trained model object) and
    without the carried population state, which is kept once, for the latest round only
    (:func:`population_file`): the records, the account and the warm start stay."""
    if getattr(res, "model", None) is None and getattr(res, "population", None) is None:
        return res
    return replace(res, model=None, population=None)


def population_file(target: str | Path) -> str:
    """Where the latest round's carried population states are kept (one file, rewritten
    every round): ``<target>.rounds/population.pkl``."""
    return f"{target}.rounds/population.pkl"


def open_resume(cfg: Any, resume: bool) -> Checkpoint | None:
    """The checkpoint a run continues from: None for a new run (``resume`` False); with
    ``resume``, the checkpoint at :func:`checkpoint_target`, checked against ``cfg``
    (``ValueError``, one line, when there is none or the config differs)."""
    if not resume:
        return None
    target = checkpoint_target(cfg)
    ckpt = load_checkpoint(target)
    if ckpt is None:
        raise ValueError(f"{target}: no checkpoint to resume — run without --resume")
    check_resumable(cfg.model_dump(mode="json"), ckpt, where=target)
    return ckpt
