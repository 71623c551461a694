"""Optuna samplers and distributions for an agent's parameter space.

* :func:`distributions` maps a space (:mod:`quantarena.strategies.params`) to Optuna
  distributions: ``Int(lo, hi, step)`` → ``IntDistribution(lo, hi, step=step)``,
  ``Float(lo, hi, log)`` → ``FloatDistribution(lo, hi, log=log)``, ``Choice([...])`` →
  ``CategoricalDistribution``.
* :func:`restrict_space` narrows a space from text (``"fast=5:200"`` on the command line).
* :func:`make_sampler` builds a seeded sampler by name; the same seed gives the same trials
  (on the CPU, with a study of its own).

This module imports Optuna; nothing in it imports Ray, MLflow or Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from quantarena.strategies import params as P
from quantarena.training.spec import SAMPLERS

__all__ = ["SAMPLERS", "distributions", "make_sampler", "restrict_space"]


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def distributions(space: P.Space) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions of a parameter space (same names, same order)."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, dim in space.items():
        if isinstance(dim, P.Int):
            out[name] = optuna.distributions.IntDistribution(
                int(dim.lo), int(dim.hi), step=int(dim.step)
            )
        elif isinstance(dim, P.Float):
            out[name] = optuna.distributions.FloatDistribution(
                float(dim.lo), float(dim.hi), log=bool(dim.log)
            )
        elif isinstance(dim, P.Choice):
            out[name] = optuna.distributions.CategoricalDistribution(
                [_plain(c) for c in dim.choices]
            )
        else:
            raise ValueError(f"parameter {name!r}: unsupported dimension {dim!r}")
    return out


def _restrict_one(name: str, dim: P.Dimension, spec: Any) -> P.Dimension:
    if isinstance(spec, P.Int | P.Float | P.Choice):
        return spec
    text = str(spec).strip()
    if ":" in text and isinstance(dim, P.Int | P.Float):
        parts = [p.strip() for p in text.split(":")]
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"parameter {name!r}: bad range {text!r}, use lo:hi or lo:hi:step")
        if isinstance(dim, P.Int):
            try:
                lo, hi = int(parts[0]), int(parts[1])
                step = int(parts[2]) if len(parts) == 3 else int(dim.step)
            except ValueError:
                raise ValueError(f"parameter {name!r}: {text!r} must be integers lo:hi") from None
            new: P.Dimension = P.Int(lo, hi, step)
        else:
            if len(parts) == 3:
                raise ValueError(f"parameter {name!r}: a real range takes no step, use lo:hi")
            try:
                lo_f, hi_f = float(parts[0]), float(parts[1])
            except ValueError:
                raise ValueError(f"parameter {name!r}: {text!r} must be numbers lo:hi") from None
            new = P.Float(lo_f, hi_f, log=dim.log)
        lo_, hi_ = new.lo, new.hi
        if hi_ < lo_:
            raise ValueError(f"parameter {name!r}: range {text!r} has hi below lo")
        if getattr(new, "step", 1) < 1:
            raise ValueError(f"parameter {name!r}: the step must be positive")
        dim.coerce(name, [lo_, hi_])  # inside the agent's own range, else a one-line error
        return new
    values = P.as_values(spec)
    if not values:
        raise ValueError(f"parameter {name!r}: no values given")
    arr = dim.coerce(name, values)
    return P.Choice(list(dict.fromkeys(_plain(v) for v in arr)))


def restrict_space(space: P.Space, overrides: Mapping[str, Any] | None) -> dict[str, P.Dimension]:
    """``space`` with some dimensions replaced.

    ``overrides[name]`` is a dimension (``Int``/``Float``/``Choice``, used as is) or text:
    ``"lo:hi"`` / ``"lo:hi:step"`` narrows an ``Int`` or ``Float`` (bounds included, within
    the agent's own range); a value list (``"sma,ema"``, ``"20"``, a list) becomes a
    ``Choice`` of those values (one value fixes the parameter). Unknown names raise
    ``ValueError``.
    """
    out = dict(space)
    for name, spec in (overrides or {}).items():
        if name not in space:
            known = ", ".join(space) or "(none)"
            raise ValueError(f"unknown parameter {name!r}: expected one of {known}")
        out[name] = _restrict_one(name, space[name], spec)
    return out


def make_sampler(
    name: str, seed: int = 0, *, batch: int = 256, n_objectives: int = 1
) -> optuna.samplers.BaseSampler:
    """A seeded sampler.

    ``"tpe"``: TPE proposing each batch from one fit
    (:class:`~quantarena.training.batch_samplers.BatchTPESampler`; with several objectives,
    Optuna's multi-objective TPE); ``"cmaes"``: CMA-ES with one generation per batch
    (:class:`~quantarena.training.batch_samplers.BatchCmaEsSampler`, ``popsize = batch``;
    needs the ``cmaes`` package; single objective); ``"qmc"``: scrambled Sobol points;
    ``"random"``; ``"nsga2"``: NSGA-II with ``population_size = batch`` (multi-objective, e.g.
    Sharpe vs max drawdown). ``"optuna-tpe"`` / ``"optuna-cmaes"``: Optuna's own samplers,
    which refit for every trial of a batch (TPE with the constant liar, so one batch spreads
    out) — the reference the batch samplers are measured against.
    """
    from quantarena.training import batch_samplers as B

    batch = max(int(batch), 2)
    if name == "tpe":
        if n_objectives > 1:
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        return B.BatchTPESampler(seed=seed)
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        if n_objectives > 1:
            raise ValueError("sampler 'qmc' is single-objective here: use 'nsga2' or 'tpe'")
        return B.BatchQMCSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=batch)
    if name in ("cmaes", "optuna-cmaes"):
        if n_objectives > 1:
            raise ValueError(f"sampler {name!r} optimises one objective: use 'nsga2' or 'tpe'")
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ValueError(
                f"sampler {name!r} needs the cmaes package (pip install cmaes): "
                "or use --sampler tpe"
            ) from None
        if name == "cmaes":
            return B.BatchCmaEsSampler(seed=seed, popsize=batch)
        return optuna.samplers.CmaEsSampler(
            seed=seed, popsize=batch, warn_independent_sampling=False
        )
    raise ValueError(f"unknown sampler {name!r}: use one of {', '.join(SAMPLERS)}")
