"""Agents by name.

``get_agent("momentum", max_position=0.2)`` builds a shipped agent; a user agent is found by
import path, ``"my_module:MyAgent"``, or by file, ``"path/to/my_agent.py:MyAgent"``, without
registering it first. ``register_agent`` (usable as a class decorator) adds a class under its
``name`` so ``get_agent(name)`` finds it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from quantarena.strategies.base import Agent

_REGISTRY: dict[str, type[Agent]] = {}
_BUILTINS_LOADED = False


def register_agent(cls: type[Agent]) -> type[Agent]:
    """Register an :class:`Agent` subclass under ``cls.name`` (returns ``cls``: a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise TypeError(f"{cls!r} is not an Agent subclass")
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name: set the class attribute `name`")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    from quantarena.strategies.arbitrage import CrossVenueArb, PairsArb
    from quantarena.strategies.breakout import Breakout
    from quantarena.strategies.buy_hold import BuyHold
    from quantarena.strategies.market_making import GLFT, MarketMaker
    from quantarena.strategies.mean_reversion import MeanReversion
    from quantarena.strategies.ml import MLAgent  # imports torch only when it runs
    from quantarena.strategies.momentum import Momentum
    from quantarena.strategies.vol_target import VolTarget

    for cls in (
        Momentum,
        MeanReversion,
        Breakout,
        VolTarget,
        BuyHold,
        MLAgent,
        MarketMaker,
        GLFT,
        PairsArb,
        CrossVenueArb,
    ):
        _REGISTRY.setdefault(cls.name, cls)
    _BUILTINS_LOADED = True


def list_agents() -> list[str]:
    """Names of the registered agents, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def _import_path(spec: str) -> type[Agent]:
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise FileNotFoundError(f"agent file {target} not found")
            mod_name = f"quantarena_user_{path.stem}"
            loader_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(loader_spec)  # type: ignore[arg-type]
            sys.modules[mod_name] = module
            loader_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(target)
    except ImportError as exc:
        raise ValueError(f"cannot import agent module {target!r}: {exc}") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise ValueError(f"{spec!r}: {attr!r} is not an Agent subclass in {target}")
    return cls


def get_agent_class(name: str) -> type[Agent]:
    """The class registered as ``name`` or found at the import path ``module:Class``."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _import_path(name)
    raise ValueError(
        f"unknown agent {name!r}: choose one of {', '.join(sorted(_REGISTRY))} "
        "or give an import path module:Class"
    )


def get_agent(name: str | Agent, **kwargs: Any) -> Agent:
    """An agent instance by name / import path (``kwargs`` go to its constructor, e.g.
    ``max_position``, ``long_only``). An :class:`Agent` instance is returned as is (with
    ``kwargs`` applied through :meth:`Agent.replace`)."""
    if isinstance(name, Agent):
        return name.replace(**kwargs) if kwargs else name
    cls = get_agent_class(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"agent {name!r}: {exc}") from None
