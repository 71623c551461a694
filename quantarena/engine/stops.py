"""Protective exits: stop-loss, take-profit and trailing stop, per parameter set.

Each is ``None`` (off), a scalar, or a ``(P,)`` array, as a *fraction* of price
(0.02 = 2 %); ``NaN``, ``inf`` or ``0`` in an array switches it off for that parameter set.

Levels, for a position with average entry price ``e`` (the executed, post-slippage fill
price; averaged over adds when the position is increased):

* long:  stop-loss ``e * (1 - sl)``, take-profit ``e * (1 + tp)``,
  trailing ``best * (1 - tr)`` where ``best`` = max(entry price, highest *close* since entry
  up to the previous bar): the trail moves on closes, never inside the bar being checked.
* short: stop-loss ``e * (1 + sl)``, take-profit ``e * (1 - tp)``,
  trailing ``best * (1 + tr)``, ``best`` = min(entry, lowest close since entry).

The stop level in force is the tighter of stop-loss and trailing. Checks run every bar the
position is held (also the bar it was entered, after the entry fill), on unmasked bars only:

1. gap-through: if the bar *opens* beyond the stop level (or the take-profit level) the exit
   fills at the open;
2. otherwise, if the low (long) / high (short) reaches the stop level the exit fills at the
   stop level; if the high / low reaches the take-profit level, at that level;
   when both could trigger inside the same bar, the stop wins (conservative).

The exit is a market order: slippage, impact and fees apply. After a stop exit the asset
stays flat until the agent's target weight changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class StopError(ValueError):
    """An invalid stop setting (one-line message naming the field)."""


def _as_param_array(name: str, value: Any, n_params: int) -> np.ndarray:
    if value is None:
        return np.full(n_params, np.inf)
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(n_params, float(a))
    if a.shape != (n_params,):
        raise StopError(
            f"Stops.{name} has shape {np.shape(value)}, expected a scalar or ({n_params},) — "
            "one value per parameter set"
        )
    a = a.copy()
    if np.any(a[np.isfinite(a)] < 0):
        raise StopError(f"Stops.{name} must be >= 0 (a fraction: 0.02 = 2%)")
    a[~np.isfinite(a) | (a == 0)] = np.inf  # off
    return a


def check_level(v: Any) -> Any:
    """A config value of one stop: ``None`` (off) or a finite fraction >= 0 (0 = off);
    raises ``ValueError`` otherwise. (The engine itself also takes ``(P,)`` arrays.)"""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < 0:
        raise ValueError("must be a fraction >= 0 (0.02 = 2%) or null (off)")
    return float(v)


_META = {"check": check_level}


@dataclass(frozen=True)
class Stops:
    """Stop-loss, take-profit and trailing stop as fractions (scalars or ``(P,)`` arrays).

    A tournament agent's ``stops`` section is generated from these fields (scalars there)."""

    stop_loss: Any = field(default=None, metadata=_META)
    take_profit: Any = field(default=None, metadata=_META)
    trailing: Any = field(default=None, metadata=_META)

    def compile(self, n_params: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sl, tp, tr)`` as ``(P,)`` float64 arrays, ``inf`` where off."""
        return (
            _as_param_array("stop_loss", self.stop_loss, n_params),
            _as_param_array("take_profit", self.take_profit, n_params),
            _as_param_array("trailing", self.trailing, n_params),
        )

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.stop_loss, self.take_profit, self.trailing))
