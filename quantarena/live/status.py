"""The paper traders' status as a rich table (``quantarena live status``, the live demo)."""

from __future__ import annotations

import json
import time
from typing import Any

__all__ = ["status_table"]


def status_table(r: Any, keys: Any) -> Any:
    """A rich table of every paper-trading agent's status hash."""
    from rich.table import Table

    from quantarena.numfmt import fmt

    def fmt_pct(v: float) -> str:
        return fmt(v, "pct")

    t = Table(title="paper trading", title_justify="left")
    for col in (
        "agent",
        "state",
        "capital",
        "equity",
        "PnL",
        "exposure",
        "positions",
        "fees",
        "bars",
        "rejections",
        "reason",
        "promotion",
    ):
        t.add_column(
            col,
            justify="left"
            if col in ("agent", "state", "positions", "reason", "promotion")
            else "right",
        )
    names = sorted(x.decode() for x in r.smembers(keys.agents()))
    kill_all = r.get(keys.kill())
    promo = {k.decode(): json.loads(v) for k, v in r.hgetall(keys.promotions()).items()}
    for n in names:
        h = {k.decode(): v.decode() for k, v in r.hgetall(keys.status(n)).items()}
        if not h:
            t.add_row(n, "starting", *[""] * 9, _promotion(promo.get(n)))
            continue
        cap = float(h.get("capital", 1.0)) or 1.0
        pos = json.loads(h.get("positions", "{}"))
        state = h.get("state", "?")
        if r.get(keys.kill(n)) is not None or kill_all is not None:
            state += " (kill set)"
        color = {"ACTIVE": "green", "REDUCING": "yellow"}.get(h.get("state", ""), "red")
        capital = r.get(keys.capital(n))
        t.add_row(
            n,
            f"[{color}]{state}[/]",
            "" if capital is None else fmt(float(capital)),
            f"{float(h['equity']):.6g}",
            fmt_pct(float(h["pnl"]) / cap),
            fmt_pct(float(h["exposure"])),
            _positions(pos, h.get("position_units", "")),
            f"{float(h['fees']):.4g}",
            h.get("bars", ""),
            h.get("rejections", ""),
            h.get("reason", ""),
            _promotion(promo.get(n)),
        )
    return t


def _positions(pos: dict[str, float], units: str) -> str:
    """A status hash's positions as a cell: weights as percentages, a tick trader's (units
    "base") as signed base units — an arbitrage trader shows both legs."""
    if units == "base":
        if not any(pos.values()):
            return "flat"
        return " ".join(f"{k} {v:+.6g}" for k, v in pos.items())
    from quantarena.numfmt import fmt

    return " ".join(f"{k} {fmt(v, 'pct')}" for k, v in pos.items() if v) or "flat"


def _promotion(rec: dict[str, Any] | None) -> str:
    """An account's promotion record as a cell: ``promoted at start: rank 1 of NAME`` /
    ``demoted on YYYY-MM-DD: reason`` ("" for an agent the config lists)."""
    if rec is None:
        return ""
    if rec.get("day") is None:
        day = "at start"
    else:  # a UTC day number
        day = time.strftime("on %Y-%m-%d", time.gmtime(int(rec["day"]) * 86_400))
    color = "green" if rec["state"] == "promoted" else "red"
    return f"[{color}]{rec['state']}[/] {day}: {rec.get('reason', '')}"
