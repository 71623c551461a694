"""How numbers read in tables, HTML reports and the terminal: one formatter for all.

Each metric has a kind (:data:`KINDS`); :func:`fmt` writes a value of that kind:

* ``pct``: a fraction as a percentage, ``0.0086 -> "0.86%"``;
* ``ratio``: a Sharpe-like number, ``2.014 -> "2.01"``;
* ``prob``: a probability in [0, 1], three decimals, ``1.3e-13 -> "<0.001"``;
* ``int``: a count, ``77.0 -> "77"``;
* ``num`` (anything else): 4 significant digits without an exponent,
  ``0.0001234 -> "0.0001234"``, ``4.149e-09 -> "<0.0001"``, ``123456.7 -> "123,457"``.

Missing values (None, NaN) read ``""``; text passes through. Pure Python, no imports.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["KINDS", "fmt", "fmt_cell", "kind_of"]

#: display kind of each metric / leaderboard column
KINDS: dict[str, str] = {
    "total_return": "pct",
    "cagr": "pct",
    "volatility": "pct",
    "max_drawdown": "pct",
    "win_rate": "pct",
    "exposure": "pct",
    "weight": "pct",
    "next_weight": "pct",
    "turnover": "ratio",
    "sharpe": "ratio",
    "sortino": "ratio",
    "calmar": "ratio",
    "profit_factor": "ratio",
    "dsr": "prob",
    "pbo": "prob",
    "n_trades": "int",
    "rounds_won": "int",
    "failed_rounds": "int",
    "rank": "int",
    "rounds": "int",
}


def kind_of(column: str) -> str:
    """The display kind of a column name (``"num"`` when unknown)."""
    return KINDS.get(str(column), "num")


def _float(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def fmt(v: Any, kind: str = "num", *, missing: str = "") -> str:
    """``v`` written as a ``kind`` number (see the module docstring); text passes through,
    None / NaN give ``missing``."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    f = _float(v)
    if f is None:
        return missing if v is None else str(v)
    if math.isnan(f):
        return missing
    if math.isinf(f):
        return "∞" if f > 0 else "-∞"
    if kind == "pct":
        p = 100.0 * f
        return f"{p:.2f}%" if abs(p) < 100 else f"{p:,.1f}%"
    if kind == "ratio":
        return f"{f:,.2f}"
    if kind == "prob":
        return "<0.001" if 0 < f < 0.0005 else f"{f:.3f}"
    if kind == "int":
        return f"{f:,.0f}"
    a = abs(f)
    if a == 0 or f.is_integer() and a < 1e15:
        return f"{f:,.0f}"
    if a >= 1000:
        return f"{f:,.0f}"
    if a < 1e-4:
        return "<0.0001" if f > 0 else ">-0.0001"
    text = f"{f:.4g}"
    if "e" in text:  # 4 significant digits with an exponent: spell the decimals out
        text = f"{f:.{4 - 1 - math.floor(math.log10(a))}f}"
    return text


def fmt_cell(column: str, v: Any, *, missing: str = "") -> str:
    """``v`` formatted for the column ``column`` (its kind from :data:`KINDS`)."""
    return fmt(v, kind_of(column), missing=missing)
