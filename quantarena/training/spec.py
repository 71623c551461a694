"""What a tournament agent's tuning is made of: the sampler names and :class:`TuningSpec`.

A light module (no Optuna import), so the tournament config can be built and checked on a
machine without Optuna; :mod:`quantarena.training.tuning` runs what it describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["SAMPLERS", "TuningSpec"]

#: sampler names accepted by :func:`quantarena.training.samplers.make_sampler`
SAMPLERS = ("tpe", "cmaes", "qmc", "random", "nsga2", "optuna-tpe", "optuna-cmaes")


@dataclass(frozen=True)
class TuningSpec:
    """How an agent tunes inside each in-sample window of a tournament.

    Attributes:
        sampler: ``"tpe"``, ``"cmaes"``, ``"qmc"``, ``"random"``, ``"nsga2"`` (see
            :func:`~quantarena.training.samplers.make_sampler`), or Optuna's own
            ``"optuna-tpe"`` / ``"optuna-cmaes"``.
        trials: trials asked per round (invalid sets included; they are never evaluated).
        batch: trials per engine call.
        oos_top: how many of the best IS sets (by the objective) are replayed out of sample;
            this is the width of ``oos_daily_all`` (the PBO matrix), so keep it fixed across
            rounds.
        warm_start: how many of the previous round's best sets to enqueue first.
        seed: sampler seed (the round index is added, so rounds differ but reruns agree).
    """

    sampler: Literal[SAMPLERS] = "tpe"  # type: ignore[valid-type]
    trials: int = field(default=512, metadata={"ge": 1})
    batch: int = field(default=256, metadata={"ge": 1})
    oos_top: int = field(default=32, metadata={"ge": 1})
    warm_start: int = field(default=8, metadata={"ge": 0})
    seed: int = field(default=0, metadata={"config": False})  # set by the tournament

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"tuning.sampler {self.sampler!r}: use one of {', '.join(SAMPLERS)}")
        for k in ("trials", "batch", "oos_top"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"tuning.{k} must be >= 1, got {getattr(self, k)}")
        if int(self.warm_start) < 0:
            raise ValueError(f"tuning.warm_start must be >= 0, got {self.warm_start}")
