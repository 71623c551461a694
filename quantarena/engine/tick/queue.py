"""Queue-position models: how much quantity is ahead of a resting order at its price level.

An order joins the BACK of its level: ``ahead`` starts at the level's visible size (the best
bid/ask size when it joins at the touch, 0 when it opens a new, better level; unknown —
taken as the whole level when the level next shows — when it joins deeper than the touch
on data without L2). Then:

* a trade of size ``q`` at the order's price on its side: ``ahead ← ahead − q``; the part of
  ``q`` beyond ``ahead`` fills the order (``fill = min(leaves, max(q − ahead_before, 0))``);
  every model shares this rule;
* a trade or a quote THROUGH the order's price (a sell print below a resting bid, a best ask
  at or below it) fills the whole order at its price;
* the level's size falls from ``prev`` to ``new`` without a trade (cancellations): the model
  decides how much of the decrease ``chg`` was ahead of the order.

Models (``chg = prev − new − traded``, where ``traded`` is the size printed at the level since
its last size change, so a decrease already counted by trades is not counted twice):

==================  =========================================================================
:class:`RiskAverse`  ``ahead ← min(ahead, new)`` — only a level shrinking below the order moves
                     it up (the most pessimistic rule; hftbacktest's ``RiskAdverseQueueModel``)
:class:`PowerProb`   ``f(x) = x ** n``
:class:`LogProb`     ``f(x) = log(1 + x)``
==================  =========================================================================

The probabilistic models (hftbacktest's ``ProbQueueModel`` with ``PowerProbQueueFunc`` /
``LogProbQueueFunc``): with ``front = ahead`` and ``back = prev − front``, the probability
that a cancellation came from behind the order is ``p = f(back) / (f(back) + f(front))``
(1 when undefined) and

    ahead ← min(front − (1 − p) · chg + min(back − p · chg, 0), new)

A level growing (``chg < 0``) only caps ``ahead`` at ``new``.

Each model compiles to ``(kind, n)`` — :data:`RISK_AVERSE`, :data:`POWER` or :data:`LOG` and
the power — which the kernels read from the venue block (:mod:`.venue`).
"""

from __future__ import annotations

from dataclasses import dataclass

RISK_AVERSE = 0
POWER = 1
LOG = 2


@dataclass(frozen=True)
class RiskAverse:
    """``ahead ← min(ahead, new)`` on a level decrease."""

    def compile(self) -> tuple[float, float]:
        return float(RISK_AVERSE), 0.0

    def describe(self) -> str:
        return "risk-averse queue"


@dataclass(frozen=True)
class PowerProb:
    """Probabilistic queue, ``f(x) = x ** n`` (``n`` > 0; 2 or 3 are common)."""

    n: float = 2.0

    def __post_init__(self) -> None:
        if not self.n > 0:
            raise ValueError(f"PowerProb: n must be > 0, got {self.n}")

    def compile(self) -> tuple[float, float]:
        return float(POWER), float(self.n)

    def describe(self) -> str:
        return f"power-{self.n:g} probabilistic queue"


@dataclass(frozen=True)
class LogProb:
    """Probabilistic queue, ``f(x) = log(1 + x)``."""

    def compile(self) -> tuple[float, float]:
        return float(LOG), 0.0

    def describe(self) -> str:
        return "log probabilistic queue"


QueueModel = RiskAverse | PowerProb | LogProb


def queue_model(name: str) -> QueueModel:
    """A model by name: ``risk_averse``, ``power[:N]`` (default 2), ``log``."""
    key, _, arg = name.strip().lower().partition(":")
    if key in ("risk_averse", "riskaverse", "risk-averse"):
        return RiskAverse()
    if key == "power":
        return PowerProb(float(arg) if arg else 2.0)
    if key == "log":
        return LogProb()
    raise ValueError(f"unknown queue model {name!r}: use risk_averse, power[:N] or log")
