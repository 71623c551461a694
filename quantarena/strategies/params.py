"""Parameter spaces, grids and random samples.

A *space* is a dict ``name -> dimension`` where a dimension is :class:`Int`, :class:`Float`
or :class:`Choice`. A *population* of parameter sets is a dict ``name -> np.ndarray`` whose
arrays all have the same length ``P`` (one entry per parameter set); the engine puts that
population on the last axis of its arrays.

* :func:`grid` builds the cartesian product of per-parameter value lists (filtered by an
  optional ``valid`` predicate, e.g. ``fast < slow``).
* :func:`sample` draws ``n`` random sets (uniform on the dimension, log-uniform for
  ``Float(log=True)``), reproducible for a seed.
* :func:`parse_param` turns command-line text into a value list: ``"5:50:5"`` is
  start:stop:step with the stop INCLUDED, ``"7"`` a single value, ``"5,10,20"`` a list,
  ``"sma,ema"`` a list of strings. Integers stay integers.

Example::

    >>> space = {"fast": Int(2, 100), "slow": Int(5, 400)}
    >>> p = grid(space, fast="5:10:5", slow=[20, 30], valid=lambda p: p["fast"] < p["slow"])
    >>> p["fast"].tolist(), p["slow"].tolist()
    ([5, 5, 10, 10], [20, 30, 20, 30])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Params = dict[str, np.ndarray]
"""A population: parameter name -> (P,) array."""

ValidFn = Callable[[Params], np.ndarray]


@dataclass(frozen=True)
class Int:
    """An integer parameter on ``lo..hi`` (both included) in steps of ``step``.

    ``default`` is the single value used when a population does not mention the parameter
    (None: ``lo``).
    """

    lo: int
    hi: int
    step: int = 1
    default: int | None = None

    def values(self) -> list[int]:
        """All values of the dimension (its full grid)."""
        return list(range(int(self.lo), int(self.hi) + 1, int(self.step)))

    def coerce(self, name: str, values: Sequence[Any]) -> np.ndarray:
        if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and values.ndim == 1:
            iv = values.astype(np.int64)  # an integer array: the range check, vectorised
            out_of = (iv < self.lo) | (iv > self.hi)
            if out_of.any():
                raise ValueError(
                    f"parameter {name!r}: {int(iv[out_of][0])} is outside its range "
                    f"{self.lo}..{self.hi}"
                )
            return iv
        out = []
        for v in values:
            if isinstance(v, bool | np.bool_) or not _is_number(v) or float(v) != int(float(v)):
                raise ValueError(f"parameter {name!r}: {v!r} is not an integer")
            iv = int(float(v))
            if not self.lo <= iv <= self.hi:
                raise ValueError(
                    f"parameter {name!r}: {iv} is outside its range {self.lo}..{self.hi}"
                )
            out.append(iv)
        return np.asarray(out, dtype=np.int64)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = (int(self.hi) - int(self.lo)) // int(self.step)
        return int(self.lo) + int(self.step) * rng.integers(0, k + 1, size=n, dtype=np.int64)

    def default_value(self) -> int:
        return int(self.lo if self.default is None else self.default)


@dataclass(frozen=True)
class Float:
    """A real parameter on ``[lo, hi]``; ``log=True`` samples and grids log-uniformly.

    The default grid has ``n`` points (linear or geometric spacing).
    """

    lo: float
    hi: float
    log: bool = False
    default: float | None = None
    n: int = 5

    def __post_init__(self) -> None:
        if self.log and self.lo <= 0:
            raise ValueError(f"Float(log=True) needs lo > 0, got {self.lo}")

    def values(self) -> list[float]:
        if self.log:
            return np.geomspace(self.lo, self.hi, self.n).tolist()
        return np.linspace(self.lo, self.hi, self.n).tolist()

    def coerce(self, name: str, values: Sequence[Any]) -> np.ndarray:
        tol = 1e-12 * max(1.0, abs(self.lo), abs(self.hi))
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf" and values.ndim == 1:
            fa = values.astype(np.float64)  # a numeric array: the checks, vectorised
            bad = ~np.isfinite(fa) | (fa < self.lo - tol) | (fa > self.hi + tol)
            if not bad.any():
                return fa
            values = values[bad][:1].tolist()  # the loop below raises on the first bad value
        out = []
        for v in values:
            if isinstance(v, bool | np.bool_) or not _is_number(v) or not math.isfinite(float(v)):
                raise ValueError(f"parameter {name!r}: {v!r} is not a finite number")
            fv = float(v)
            if not self.lo - tol <= fv <= self.hi + tol:
                raise ValueError(
                    f"parameter {name!r}: {fv:g} is outside its range {self.lo:g}..{self.hi:g}"
                )
            out.append(fv)
        return np.asarray(out, dtype=np.float64)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.log:
            return np.exp(rng.uniform(math.log(self.lo), math.log(self.hi), size=n))
        return rng.uniform(self.lo, self.hi, size=n)

    def default_value(self) -> float:
        return float(self.lo if self.default is None else self.default)


@dataclass(frozen=True, init=False)
class Choice:
    """One of a fixed list of values (numbers or strings)."""

    choices: tuple[Any, ...]
    default: Any = None

    def __init__(self, choices: Sequence[Any], default: Any = None) -> None:
        if len(choices) == 0:
            raise ValueError("Choice needs at least one value")
        object.__setattr__(self, "choices", tuple(choices))
        object.__setattr__(self, "default", default)

    def values(self) -> list[Any]:
        return list(self.choices)

    def coerce(self, name: str, values: Sequence[Any]) -> np.ndarray:
        seen: dict[Any, Any] = {}  # each distinct (type, value) is matched once
        out = []
        for v in values:
            key = (type(v), v)
            try:
                hit = seen.get(key, seen)
            except TypeError:  # an unhashable value: matched (and rejected) below
                key, hit = None, seen
            if hit is seen:
                match = [c for c in self.choices if c == v or str(c) == str(v)]
                if not match:
                    opts = ", ".join(str(c) for c in self.choices)
                    raise ValueError(f"parameter {name!r}: {v!r} is not one of {opts}")
                hit = match[0]
                if key is not None:
                    seen[key] = hit
            out.append(hit)
        return np.asarray(out)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        idx = rng.integers(0, len(self.choices), size=n)
        return np.asarray(self.choices)[idx]

    def default_value(self) -> Any:
        return self.choices[0] if self.default is None else self.default


Dimension = Int | Float | Choice
Space = Mapping[str, Dimension]


def _is_number(v: Any) -> bool:
    if isinstance(v, int | float | np.integer | np.floating):
        return True
    if isinstance(v, str):
        try:
            float(v)
        except ValueError:
            return False
        return True
    return False


def _parse_scalar(text: str) -> int | float | str:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def parse_param(text: str | int | float) -> list[Any]:
    """Parse one parameter's value list from text.

    ``"5:50:5"`` → ``[5, 10, ..., 50]`` (start:stop:step, stop INCLUDED when on the step),
    ``"5:8"`` → step 1, ``"0.5:2:0.5"`` → floats, ``"7"`` → ``[7]``, ``"5,10,20"`` → list,
    ``"sma,ema"`` → strings. Integers stay ints. Raises ``ValueError`` on a malformed range.
    """
    if not isinstance(text, str):
        return [text]
    s = text.strip()
    if not s:
        raise ValueError("empty parameter value: give a value, a list 5,10,20 or a range 5:50:5")
    if ":" in s:
        parts = s.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"bad range {text!r}: use start:stop or start:stop:step, e.g. 5:50:5")
        nums = [_parse_scalar(p) for p in parts]
        if any(isinstance(v, str) for v in nums):
            raise ValueError(f"bad range {text!r}: start, stop and step must be numbers")
        start, stop = nums[0], nums[1]
        step = nums[2] if len(nums) == 3 else 1
        if step <= 0:
            raise ValueError(f"bad range {text!r}: the step must be positive")
        if stop < start:
            raise ValueError(f"bad range {text!r}: stop {stop} is below start {start}")
        if all(isinstance(v, int) for v in (start, stop, step)):
            return list(range(start, stop + 1, step))
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        return [round(start + i * step, 12) for i in range(count)]
    return [_parse_scalar(p) for p in s.split(",") if p.strip() != ""]


def as_values(spec: Any) -> list[Any]:
    """A value list from a spec: text (see :func:`parse_param`), a scalar, a range, a list or
    an array."""
    if isinstance(spec, str):
        return parse_param(spec)
    if isinstance(spec, range):
        return list(spec)
    if isinstance(spec, np.ndarray):
        return spec.ravel().tolist()
    if isinstance(spec, list | tuple):
        out: list[Any] = []
        for v in spec:
            out.extend(parse_param(v) if isinstance(v, str) else [v])
        return out
    return [spec]


def _check_names(space: Space, names: Sequence[str], owner: str) -> None:
    unknown = [n for n in names if n not in space]
    if unknown:
        known = ", ".join(space) or "(none)"
        raise ValueError(f"unknown parameter {unknown[0]!r} for {owner}: expected one of {known}")


def grid(
    space: Space,
    *,
    valid: ValidFn | None = None,
    owner: str = "this agent",
    **overrides: Any,
) -> Params:
    """The cartesian product of value lists, one per dimension of ``space``.

    ``overrides[name]`` gives a parameter's values (text, list, range, array or scalar);
    others use the dimension's full :meth:`values`. Sets where ``valid(params)`` is False are
    dropped. An empty space gives zero-length arrays for no names (use
    :func:`n_params` which counts one set). Raises ``ValueError`` for an unknown name or a
    value outside its dimension, and when no valid set remains.
    """
    _check_names(space, list(overrides), owner)
    names = list(space)
    lists = []
    for name in names:
        vals = as_values(overrides[name]) if name in overrides else space[name].values()
        if not vals:
            raise ValueError(f"parameter {name!r}: no values given")
        arr = space[name].coerce(name, vals)
        _, first = np.unique(arr, return_index=True)  # drop duplicates, keep order
        lists.append(arr[np.sort(first)])
    if not names:
        return {}
    combos = list(itertools.product(*[range(len(v)) for v in lists]))
    idx = np.asarray(combos, dtype=np.int64).reshape(len(combos), len(names))
    params = {name: lists[j][idx[:, j]] for j, name in enumerate(names)}
    if valid is not None:
        keep = np.asarray(valid(params), dtype=bool)
        params = {k: v[keep] for k, v in params.items()}
        if not keep.any():
            raise ValueError(f"no valid parameter set in the grid for {owner}: check the ranges")
    return params


def sample(
    space: Space,
    n: int,
    seed: int = 0,
    *,
    valid: ValidFn | None = None,
    max_tries: int = 100,
) -> Params:
    """``n`` random parameter sets drawn independently per dimension (reproducible for
    ``seed``); invalid sets (``valid``) are redrawn by rejection."""
    rng = np.random.default_rng(seed)
    names = list(space)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in names}
    have = 0
    for _ in range(max_tries):
        need = n - have
        if need <= 0:
            break
        m = max(need * 2, 16)
        draw = {k: space[k].draw(rng, m) for k in names}
        keep = np.ones(m, bool) if valid is None else np.asarray(valid(draw), bool)
        kept = np.flatnonzero(keep)[:need]
        for k in names:
            chunks[k].append(draw[k][kept])
        have += kept.size
    if have < n:
        raise ValueError(f"could not draw {n} valid parameter sets in {max_tries} tries")
    return {k: np.concatenate(v) for k, v in chunks.items()}


def n_params(params: Mapping[str, np.ndarray]) -> int:
    """Number of parameter sets in a population (1 for an agent without parameters)."""
    if not params:
        return 1
    return int(len(next(iter(params.values()))))


def take(params: Mapping[str, np.ndarray], idx: Any) -> Params:
    """The sub-population at positions ``idx`` (an int, slice or index array)."""
    return {k: np.atleast_1d(np.asarray(v)[idx]) for k, v in params.items()}


def unique_index(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (sorted) and, per entry, its index into them: the sharing map behind
    "one indicator per distinct window"."""
    uniq, inv = np.unique(np.asarray(values), return_inverse=True)
    return uniq, inv.astype(np.int64).ravel()
