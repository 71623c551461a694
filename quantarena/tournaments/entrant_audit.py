"""The look-ahead audit of a tournament's entrants, run once before any round.

Every entrant is audited (:func:`quantarena.strategies.audit.audit`) on the first
:data:`AUDIT_BARS` bars of the tournament's panel with its own population (a tuned entrant:
its defaults plus :data:`TUNED_SAMPLE` sets drawn from its search space). An entrant that
fails is refused with :class:`AgentRefused`, one line naming the agent, the bar and its time.

Results are cached on disk, one JSON file per audit in ``cache_dir``, keyed by a hash of
what decides the verdict (:func:`audit_key`): the source of every module along the agent
class's MRO (a user agent's file; for classes of quantarena, every module of
:mod:`quantarena.strategies`), the agent's attributes
(``max_position``, ...), its population, the audited bars, the audit settings and
:data:`~quantarena.strategies.audit.AUDIT_VERSION`. Changing any of them audits again.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from quantarena.data.panel import BarPanel
from quantarena.strategies import params as P
from quantarena.strategies.audit import AUDIT_VERSION, AuditResult, audit

__all__ = [
    "AUDIT_BARS",
    "TUNED_SAMPLE",
    "AgentRefused",
    "audit_entries",
    "audit_key",
    "audit_population",
]

#: bars of the panel (from its start) an entrant is audited on
AUDIT_BARS = 10_000
#: parameter sets drawn from a tuned entrant's search space (besides its defaults)
TUNED_SAMPLE = 8
#: checks at a few cut points over the audited bars (besides every bar of the last 5,000);
#: an agent audited at its own critical bars instead of every bar (``ml``) gets fewer
N_CUTS, N_CUTS_NO_EVERY_BAR = 4, 2


class AgentRefused(ValueError):
    """An entrant failed the look-ahead audit (the message is one line)."""

    def __init__(self, name: str, result: dict[str, Any]) -> None:
        self.name = name
        self.result = result
        super().__init__(refusal(name, result))


def refusal(name: str, r: dict[str, Any]) -> str:
    """The one-line reason an entrant is refused, from an audit result dict."""
    import pandas as pd

    when = (
        pd.Timestamp(int(r["first_ts"]), unit="ns", tz="UTC").isoformat()
        if r.get("first_ts") is not None
        else "?"
    )
    return (
        f"agent {name!r} refused: look-ahead at bar {r.get('first_bar')} ({when}), asset "
        f"{r.get('asset')}, parameter set {r.get('params')} (audit check {r.get('check')!r}): "
        "its weight there depends on later bars — fix the agent, or set audit: false for it"
    )


def audit_population(entry: Any, seed: int = 0) -> P.Params:
    """What is audited of an entrant: its population, or for a tuned entrant its defaults
    plus :data:`TUNED_SAMPLE` sets drawn (seeded) from its search space."""
    if getattr(entry, "tuning", None) is None or not entry.space:
        return entry.params
    drawn = entry.agent.check_params(
        P.sample(entry.space, TUNED_SAMPLE, seed, valid=entry.agent.valid)
    )
    base = entry.agent.check_params(entry.params)
    return {k: np.concatenate([np.asarray(base[k]), np.asarray(drawn[k])]) for k in base}


def _strategies_sources() -> list[str]:
    """Every module of :mod:`quantarena.strategies` (agents, indicators, kernels, the ML
    agent's refits): a shipped agent's weights depend on any of them."""
    import quantarena.strategies as pkg

    root = Path(pkg.__file__).resolve().parent
    return [f"{p.relative_to(root)}\n{p.read_text()}" for p in sorted(root.rglob("*.py"))]


def _class_sources(cls: type) -> list[str]:
    """The code an agent class's verdict depends on: for each class of its MRO, the source
    of its module (a user agent's file), and once the whole :mod:`quantarena.strategies`
    package for the classes defined there."""
    out: list[str] = []
    shipped = False
    for klass in cls.__mro__:
        if klass is object:
            continue
        if klass.__module__.startswith("quantarena."):
            shipped = True
            continue
        mod = sys.modules.get(klass.__module__)
        try:
            out.append(inspect.getsource(mod) if mod is not None else "")
        except (OSError, TypeError):  # no source file (built in the REPL): hash the name only
            out.append(f"{klass.__module__}.{klass.__qualname__}")
    return out + (_strategies_sources() if shipped else [])


def _digest_arrays(h: Any, arrays: Iterable[Any]) -> None:
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())


def audit_key(agent: Any, population: P.Params, bars: BarPanel, settings: dict[str, Any]) -> str:
    """A hex digest of everything that decides the audit's verdict (see the module doc)."""
    h = hashlib.sha256()
    h.update(f"audit v{AUDIT_VERSION}\n".encode())
    for src in _class_sources(type(agent)):
        h.update(src.encode())
    attrs = {
        k: repr(v)
        for k, v in sorted(vars(agent).items())
        if not k.startswith("last_")  # results of earlier runs (the ML agent's models)
    }
    h.update(json.dumps(attrs, sort_keys=True).encode())
    h.update(json.dumps(sorted(population)).encode())
    _digest_arrays(h, (population[k] for k in sorted(population)))
    h.update(json.dumps(list(bars.symbols)).encode())
    _digest_arrays(h, (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume))
    _digest_arrays(h, (bars.mask,))
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def audit_entries(
    entries: list[Any],
    panel: BarPanel,
    *,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    skip: Iterable[str] = (),
    n_bars: int = AUDIT_BARS,
) -> dict[str, dict[str, Any]]:
    """Audit each entrant (but those named in ``skip``) on the first ``n_bars`` bars of
    ``panel``; returns ``name -> audit result dict`` (with ``"cached": bool``).

    Raises :class:`AgentRefused` at the first entrant that fails (its result is cached too,
    so a re-run refuses it at once)."""
    bars = panel.select(slice(0, min(int(n_bars), panel.n_bars)))
    settings = {"n_cuts": [N_CUTS, N_CUTS_NO_EVERY_BAR], "seed": int(seed), "n_bars": bars.n_bars}
    cache = Path(cache_dir) if cache_dir is not None else None
    skip = set(skip)
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        # tick agents (market making, arbitrage) decide per event inside the tick replay, from
        # events already seen: they have no bar weights to audit
        if e.name in skip or getattr(e.agent, "tick", False):
            continue
        pop = audit_population(e, seed)
        key = audit_key(e.agent, pop, bars, settings)
        path = cache / f"{key}.json" if cache is not None else None
        if path is not None and path.is_file():
            res = json.loads(path.read_text())
            res["cached"] = True
        else:
            every_bar = getattr(e.agent, "audit_every_bar", True)
            n_cuts = N_CUTS if every_bar else N_CUTS_NO_EVERY_BAR
            r: AuditResult = audit(e.agent, bars, population=pop, n_cuts=n_cuts, seed=int(seed))
            res = {k: _plain(v) for k, v in r.to_dict().items()}
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(res, indent=1))
                tmp.replace(path)  # whole file or none
            res["cached"] = False
        out[e.name] = res
        if not res["passed"]:
            raise AgentRefused(e.name, res)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "item"):
        return v.item()
    return v
