"""Gates: the hard thresholds an agent must clear before it may receive capital.

Every gate compares one statistic of an agent with a threshold. The defaults of
:class:`GateConfig`:

=================  ===================  =====  ============================================
gate               statistic            op     default
=================  ===================  =====  ============================================
``sharpe``         ``sharpe``           ``>``  1.5 (annualised Sharpe ratio)
``max_drawdown``   ``max_drawdown``     ``<``  0.20 (peak-to-trough loss, positive fraction)
``win_rate``       ``win_rate``         ``>``  0.52 (fraction of winning trades/periods)
``history``        ``history_days``     ``>=`` 365 (calendar days of OOS history)
``paper``          ``paper_days``       ``>=`` 7 (days of paper trading)
=================  ===================  =====  ============================================

Setting a threshold to ``None`` disables that gate (it is left out of the results).

Not every gate holds back capital. ``GateConfig.binding`` (default :data:`BINDING`: ``sharpe``
and ``max_drawdown``) names the gates an agent must pass before the allocator may give it a
non-zero weight; the others (``history``, ``paper`` by default, ``win_rate``) decide graduation
to paper trading and live capital but do not stop the tournament's own allocation. A leaderboard
shows each agent's failed gates and, in ``held_back_by``, the binding ones among them.
A statistic that is ``None`` or NaN fails its gate with a reason; ``paper_days=None`` (or NaN,
as a DataFrame stores it) means "paper trading not yet available" and is recorded as not met, with that reason, so an agent
cannot graduate to live capital before it has a paper record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["BINDING", "GATES", "GateConfig", "GateResult", "GateStatus", "evaluate_gates"]

Op = Literal[">", "<", ">="]

#: gate name → (statistic key, config attribute, comparison)
GATES: dict[str, tuple[str, str, Op]] = {
    "sharpe": ("sharpe", "min_sharpe", ">"),
    "max_drawdown": ("max_drawdown", "max_drawdown", "<"),
    "win_rate": ("win_rate", "min_win_rate", ">"),
    "history": ("history_days", "min_history_days", ">="),
    "paper": ("paper_days", "min_paper_days", ">="),
}

#: the gates that hold back capital unless configured otherwise (``gates.binding``)
BINDING: tuple[str, ...] = ("sharpe", "max_drawdown")

_OPS = {
    ">": lambda v, t: v > t,
    "<": lambda v, t: v < t,
    ">=": lambda v, t: v >= t,
}


class GateConfig(BaseModel):
    """Gate thresholds; ``None`` disables a gate.

    Attributes:
        min_sharpe: annualised Sharpe must be strictly greater.
        max_drawdown: maximum drawdown (positive fraction, 0.2 = 20 %) must be strictly less.
        min_win_rate: win rate (fraction in [0, 1]) must be strictly greater.
        min_history_days: calendar days of out-of-sample history (first OOS bar's open to
            the end of the last OOS bar, weekends and holidays included) must be at least
            this; 52 weekly rounds of daily equity bars are 362 days, not 260 bars.
        min_paper_days: days of paper trading must be at least this.
        binding: the gates (names of :data:`GATES`) that hold back capital: an agent failing
            one gets no allocation weight. A disabled gate binds nothing. ``[]``: no gate
            holds back capital.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_sharpe: float | None = 1.5
    max_drawdown: float | None = Field(default=0.20, gt=0.0, le=1.0)
    min_win_rate: float | None = Field(default=0.52, ge=0.0, le=1.0)
    min_history_days: float | None = Field(default=365.0, ge=0.0)
    min_paper_days: float | None = Field(default=7.0, ge=0.0)
    binding: tuple[str, ...] = BINDING

    @field_validator("binding", mode="before")
    @classmethod
    def _binding_names(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError(f"must be a list of gate names, e.g. [{v}]")
        for name in v if isinstance(v, list | tuple) else ():
            if name not in GATES:
                import difflib

                near = difflib.get_close_matches(str(name), list(GATES), n=1)
                hint = f" — did you mean {near[0]!r}?" if near else ""
                raise ValueError(f"unknown gate {name!r}{hint} (gates: {', '.join(GATES)})")
        if isinstance(v, list | tuple) and len(set(v)) != len(v):
            raise ValueError("a gate is listed twice")
        return v


@dataclass(frozen=True)
class GateResult:
    """One gate for one agent: ``passed`` iff ``value op threshold`` holds."""

    passed: bool
    value: float | None
    threshold: float
    op: Op
    reason: str = ""


@dataclass(frozen=True)
class GateStatus:
    """All enabled gates for one agent; ``passed`` iff every gate passed."""

    passed: bool
    results: dict[str, GateResult] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        """Names of the gates not met."""
        return [name for name, r in self.results.items() if not r.passed]


def _as_float(agent: str, key: str, value: Any) -> float | None:
    if value is None or type(value).__name__ == "NAType":  # None or pandas.NA
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"agent {agent!r}, field {key!r}: expected a number, got {value!r}"
        ) from None


def _one(agent: str, stats: Mapping[str, Any], config: GateConfig) -> GateStatus:
    results: dict[str, GateResult] = {}
    for name, (key, attr, op) in GATES.items():
        threshold = getattr(config, attr)
        if threshold is None:
            continue
        if key not in stats:
            raise ValueError(
                f"agent {agent!r}: missing field {key!r} needed by the {name!r} gate"
                f" — add it to the agent's stats or disable the gate ({attr}=None)"
            )
        value = _as_float(agent, key, stats[key])
        if key == "paper_days" and value is not None and math.isnan(value):
            value = None  # a DataFrame stores "no paper record" as NaN
        if key == "max_drawdown" and value is not None and value < 0:
            raise ValueError(
                f"agent {agent!r}, field 'max_drawdown': {value} is negative — pass drawdown"
                " as a positive fraction (0.25 = a 25% loss from peak)"
            )
        if value is None:
            reason = "paper trading not yet available" if key == "paper_days" else f"{key} missing"
            results[name] = GateResult(False, None, float(threshold), op, reason)
        elif math.isnan(value):
            results[name] = GateResult(False, value, float(threshold), op, f"{key} is NaN")
        else:
            ok = bool(_OPS[op](value, threshold))
            reason = "" if ok else f"{key} {value:g} not {op} {threshold:g}"
            results[name] = GateResult(ok, value, float(threshold), op, reason)
    return GateStatus(all(r.passed for r in results.values()), results)


def evaluate_gates(
    stats: Mapping[str, Mapping[str, Any]] | Any,
    config: GateConfig | None = None,
) -> dict[str, GateStatus]:
    """Evaluate every enabled gate for every agent.

    Args:
        stats: agent → mapping with ``sharpe`` (annualised), ``max_drawdown`` (positive
            fraction), ``win_rate`` (fraction), ``history_days`` and ``paper_days``
            (``None`` = no paper record yet). A pandas DataFrame indexed by agent works too.
            Only the fields of enabled gates are required.
        config: thresholds; default :class:`GateConfig()`.

    Returns:
        agent → :class:`GateStatus`, in the input order.

    Raises:
        ValueError: a field an enabled gate needs is missing, not a number, or a drawdown
            is negative; the message names the agent and the field.
    """
    cfg = config if config is not None else GateConfig()
    if hasattr(stats, "to_dict") and hasattr(stats, "index"):
        stats = stats.to_dict("index")
    return {str(agent): _one(str(agent), row, cfg) for agent, row in stats.items()}
