"""Batch samplers: one model fit per batch of trials, on Optuna's distributions and storage.

Optuna's samplers propose one trial at a time: TPE refits its Parzen estimators on every
``ask`` (≈ 36 ms a trial with 500 trials in the study), so asking a batch of 256 trials costs
256 fits although nothing is told in between. The samplers here propose a whole batch from ONE
fitted model, then hand the proposals out one ``ask`` at a time:

    sampler.prepare_batch(study, distributions, k, valid=agent.valid)   # one fit, k proposals
    trials = [study.ask(distributions) for _ in range(k)]               # each takes one

Trials are ordinary Optuna trials (``sample_relative`` fills their parameters), so studies,
storages (memory, RDB, the Redis journal shared by workers), ``enqueue_trial`` and dashboards
work as with Optuna's own samplers. Without a ``prepare_batch`` call (plain ``study.optimize``),
each ``ask`` prepares a batch of one.

The model lives in a unit cube: a numeric parameter ``x`` in ``[lo, hi]`` maps to
``u = (x − lo) / (hi − lo)`` (``log`` distributions: on ``log x``; integers with ``step``
snap back to their grid), a categorical one to the index of its choice.

* :class:`BatchTPESampler` — the tree-structured Parzen estimator (Bergstra et al., 2011;
  multivariate as in Falkner et al., 2018). Observed trials split into the best
  ``γ(n) = min(⌈0.1 n⌉, 25)`` ("good", density ``l``) and the rest ("bad", density ``g``;
  pruned and failed trials — invalid or never-trading sets — count as bad). Each density is an
  equal-weight mixture of one kernel per observation plus a uniform prior component: a product
  of normals truncated to ``[0, 1]`` with bandwidth ``σ = 0.2 · (n + 1)^(−1/(d + 4))`` (Scott's
  rule, as in Falkner et al.'s multivariate KDE; Optuna 5's per-kernel neighbour gaps measured
  worse here, see docs/benchmarks.md; at least half a grid step for integers) and, for
  categoricals, ``(1 − α)`` on the observed choice plus ``α / K`` on each. A batch of
  ``k`` draws ``k × 24`` candidates from ``l``, drops sets the agent rejects (``valid``), and
  takes the argmax of ``log l − log g`` in each row of 24 (Optuna's ``n_ei_candidates``),
  skipping sets already taken in the batch or already evaluated. Each pick then joins ``g`` as
  a "constant liar" kernel before the next row is scored, with the bandwidth Optuna's refit
  would give it (the larger gap to its neighbours among g's centres, per dimension, at least
  ``1 / min(100, n + 2)``): a local lie, so the batch spreads over the good region without
  being pushed out of it, as Optuna's TPE with ``constant_liar=True`` refitting on every ask —
  with no refit. The first ``n_startup`` trials (10) are a scrambled Sobol design. The
  mixture density and the pick loop are Numba kernels (a batch of 256 on 512 observed trials:
  ≈ 0.05 CPU-s).
* :class:`BatchCmaEsSampler` — CMA-ES (Hansen, 2016) through the ``cmaes`` package, one
  generation per batch (``popsize = batch``): a batch is told to the optimiser when the next one
  is prepared (maximised objectives are negated; pruned/failed trials get the worst value seen).
  Categorical parameters are drawn uniformly, as Optuna's CmaEsSampler does.
* :class:`BatchQMCSampler` — scrambled Sobol points (``scipy.stats.qmc``), a space-filling
  design that needs no model.

Determinism: the same seed, study contents and batch sizes give the same proposals. Single
objective only (multi-objective search uses Optuna's NSGA-II / MOTPE, see
:func:`~quantarena.training.samplers.make_sampler`). Nothing here imports Ray, MLflow or Redis.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numba
import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy import special

__all__ = ["BatchCmaEsSampler", "BatchQMCSampler", "BatchSampler", "BatchTPESampler"]

#: a callable that takes a population of parameter sets (``{name: (N,) array}``, every
#: parameter of the prepared space, fixed ones included) and returns a bool mask (N,)
Valid = Callable[[dict[str, np.ndarray]], Any]

_CANDIDATES_PER_TRIAL = 24  # Optuna's TPE n_ei_candidates


class _UnitSpace:
    """Maps a dict of Optuna distributions to and from the unit cube (see module docstring)."""

    def __init__(self, dists: Mapping[str, BaseDistribution]) -> None:
        self.dists = {n: d for n, d in dists.items() if not d.single()}
        self.num = [
            n for n, d in self.dists.items() if isinstance(d, FloatDistribution | IntDistribution)
        ]
        self.cat = [n for n, d in self.dists.items() if isinstance(d, CategoricalDistribution)]
        other = set(self.dists) - set(self.num) - set(self.cat)
        if other:
            raise ValueError(f"batch samplers do not support the distribution of {sorted(other)}")
        self.n_choices = np.array([len(self.dists[n].choices) for n in self.cat], dtype=np.int64)
        # smallest useful bandwidth per numeric dimension: half a grid step for integers
        self.min_sigma = np.array([self._min_sigma(self.dists[n]) for n in self.num])

    @property
    def dim(self) -> int:
        return len(self.num) + len(self.cat)

    @staticmethod
    def _bounds(d: FloatDistribution | IntDistribution) -> tuple[float, float]:
        lo, hi = float(d.low), float(d.high)
        return (math.log(lo), math.log(hi)) if d.log else (lo, hi)

    @staticmethod
    def _min_sigma(d: FloatDistribution | IntDistribution) -> float:
        if isinstance(d, IntDistribution) and not d.log:
            n_points = (d.high - d.low) // d.step + 1
            return 0.5 / max(n_points - 1, 1)
        return 1e-3

    def to_unit(self, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(numeric u in [0, 1], categorical indices) of one trial's parameters."""
        u = np.empty(len(self.num))
        for j, n in enumerate(self.num):
            d = self.dists[n]
            lo, hi = self._bounds(d)
            x = math.log(params[n]) if d.log else float(params[n])
            u[j] = 0.5 if hi == lo else (x - lo) / (hi - lo)
        c = np.array([self.dists[n].choices.index(params[n]) for n in self.cat], dtype=np.int64)
        return np.clip(u, 0.0, 1.0), c

    def from_unit(self, u: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
        """Parameter arrays (one value per row) of points ``u`` (N, d_num), ``c`` (N, d_cat)."""
        out: dict[str, np.ndarray] = {}
        for j, n in enumerate(self.num):
            d = self.dists[n]
            lo, hi = self._bounds(d)
            x = lo + np.clip(u[:, j], 0.0, 1.0) * (hi - lo)
            if d.log:
                x = np.exp(x)
            if isinstance(d, IntDistribution):
                step = 1 if d.log else d.step
                x = d.low + np.round((x - d.low) / step) * step
                out[n] = np.clip(x, d.low, d.high).astype(np.int64)
            else:
                if d.step is not None:
                    x = d.low + np.round((x - d.low) / d.step) * d.step
                out[n] = np.clip(x, d.low, d.high)
        for j, n in enumerate(self.cat):
            choices = self.dists[n].choices
            out[n] = np.array([choices[i] for i in c[:, j]], dtype=object)
        return out

    def snap(self, u: np.ndarray, c: np.ndarray) -> np.ndarray:
        """``u`` moved onto the parameters' grids (so equal parameter sets have equal rows)."""
        vals = self.from_unit(u, c)
        snapped = np.empty_like(u)
        for j, n in enumerate(self.num):
            d = self.dists[n]
            lo, hi = self._bounds(d)
            x = np.log(vals[n].astype(np.float64)) if d.log else vals[n].astype(np.float64)
            snapped[:, j] = 0.5 if hi == lo else (x - lo) / (hi - lo)
        return snapped


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


class BatchSampler(optuna.samplers.BaseSampler):
    """Base of the batch samplers: a queue of proposals filled once per batch.

    Subclasses implement :meth:`_propose`. ``seed`` seeds every random draw.
    """

    def __init__(self, seed: int | None = 0) -> None:
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._queue: list[dict[str, Any]] = []
        self._space: dict[str, BaseDistribution] = {}
        self._valid: Valid | None = None

    # ------------------------------------------------------------------ the batch protocol

    def prepare_batch(
        self,
        study: optuna.Study,
        dists: Mapping[str, BaseDistribution],
        k: int,
        *,
        valid: Valid | None = None,
    ) -> None:
        """Fit the model once on ``study``'s trials and queue ``k`` proposals over ``dists``.

        ``valid(population) -> (N,) bool`` masks candidate sets that must not be proposed; it
        gets a population ``{name: (N,) array}`` of every parameter in ``dists`` (an agent's
        ``valid`` method takes that form).
        """
        if len(study.directions) != 1:
            raise ValueError(
                f"{type(self).__name__} optimises one objective: use 'nsga2' for several"
            )
        self._space = dict(dists)
        self._valid = valid
        unit = _UnitSpace(self._space)
        self._queue = self._propose(study, unit, int(k)) if unit.dim else [{}] * int(k)

    def _propose(self, study: optuna.Study, unit: _UnitSpace, k: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _taken(self, sets: Sequence[dict[str, Any]], trial: FrozenTrial) -> None:
        """Hook: a queued proposal was handed to ``trial``."""

    # ------------------------------------------------------------------ Optuna's interface

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {n: d for n, d in self._space.items() if not d.single()}

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        if not self._queue:  # asked outside a prepared batch: a batch of one
            self.prepare_batch(study, search_space, 1, valid=self._valid)
        params = self._queue.pop(0)
        self._taken([params], trial)
        return {n: v for n, v in params.items() if n in search_space}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        # parameters outside the prepared space: uniform, from this sampler's own stream
        unit = _UnitSpace({param_name: param_distribution})
        u = self._rng.random((1, len(unit.num)))
        c = np.array([[self._rng.integers(k) for k in unit.n_choices]], dtype=np.int64)
        c = c.reshape(1, len(unit.cat))
        return _plain(unit.from_unit(u, c)[param_name][0])

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()

    # ------------------------------------------------------------------ shared helpers

    def _uniform(self, unit: _UnitSpace, n: int) -> tuple[np.ndarray, np.ndarray]:
        u = self._rng.random((n, len(unit.num)))
        c = (
            np.stack([self._rng.integers(0, k, size=n) for k in unit.n_choices], axis=1)
            if len(unit.cat)
            else np.zeros((n, 0), dtype=np.int64)
        )
        return u, c

    def _sobol(self, unit: _UnitSpace, k: int) -> tuple[np.ndarray, np.ndarray]:
        from scipy.stats import qmc

        sob = qmc.Sobol(unit.dim, scramble=True, seed=int(self._rng.integers(2**31 - 1)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # balance warning for non-powers of 2
            pts = sob.random(k)
        n_num = len(unit.num)
        c = np.minimum((pts[:, n_num:] * unit.n_choices).astype(np.int64), unit.n_choices - 1)
        return pts[:, :n_num], c.reshape(k, len(unit.cat))

    def _valid_mask(self, unit: _UnitSpace, u: np.ndarray, c: np.ndarray) -> np.ndarray:
        if self._valid is None or len(u) == 0:
            return np.ones(len(u), dtype=bool)
        pop: dict[str, np.ndarray] = dict(unit.from_unit(u, c))
        for n, d in self._space.items():
            if d.single():
                pop[n] = np.asarray([_single(d)] * len(u))
        pop = {n: pop[n] for n in self._space}
        try:
            return np.asarray(self._valid(pop), dtype=bool).reshape(len(u))
        except Exception:  # a user's valid() that cannot take these sets: no filter
            return np.ones(len(u), dtype=bool)

    @staticmethod
    def _as_sets(unit: _UnitSpace, u: np.ndarray, c: np.ndarray) -> list[dict[str, Any]]:
        vals = unit.from_unit(u, c)
        return [{n: _plain(vals[n][i]) for n in vals} for i in range(len(u))]

    @staticmethod
    def _observed(
        study: optuna.Study, unit: _UnitSpace
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(u, c, value, is_complete) of the study's finished trials over ``unit``'s space.

        ``value`` is signed so that larger is better; pruned and failed trials get NaN.
        """
        sign = 1.0 if study.directions[0] == StudyDirection.MAXIMIZE else -1.0
        us, cs, vs, ok = [], [], [], []
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        for t in study.get_trials(deepcopy=False, states=states):
            if not all(n in t.params for n in unit.dists):
                continue
            try:
                u, c = unit.to_unit(t.params)
            except (ValueError, KeyError):
                continue
            complete = t.state == TrialState.COMPLETE and t.value is not None
            us.append(u)
            cs.append(c)
            vs.append(sign * float(t.value) if complete else np.nan)
            ok.append(complete and math.isfinite(float(t.value)))
        n_num, n_cat = len(unit.num), len(unit.cat)
        return (
            np.asarray(us, dtype=np.float64).reshape(len(us), n_num),
            np.asarray(cs, dtype=np.int64).reshape(len(cs), n_cat),
            np.asarray(vs, dtype=np.float64),
            np.asarray(ok, dtype=bool),
        )


def _single(d: BaseDistribution) -> Any:
    from optuna.distributions import _get_single_value

    return _get_single_value(d)


# ---------------------------------------------------------------------------------- TPE


@numba.njit(cache=True, error_model="numpy")
def _lie_sigma(srt, n, at, grid_sigma):  # pragma: no cover - compiled
    """Bandwidth (d,) of a kernel at ``at`` (d,) joining ``n`` centres whose coordinates are
    sorted per dimension in ``srt[j, :n]``: Optuna's TPE bandwidth of that centre — the larger
    gap to its sorted neighbours (the cube's ends count as neighbours, except beside the
    outermost centre, which looks only inward: ``consider_endpoints=False``; a tie sorts the
    new centre last) — at least ``1 / min(100, n + 3)`` (Optuna's magic clip with ``n + 1``
    centres) and ``grid_sigma[j]``."""
    d = at.shape[0]
    out = np.empty(d)
    clip = 1.0 / min(100.0, n + 3.0)
    for j in range(d):
        x = at[j]
        pos = np.searchsorted(srt[j, :n], x, side="right")
        left = srt[j, pos - 1] if pos > 0 else 0.0
        right = srt[j, pos] if pos < n else 1.0
        if n >= 1 and pos == 0:
            gap = right - x
        elif n >= 1 and pos == n:
            gap = x - left
        else:
            gap = max(x - left, right - x)
        out[j] = max(gap, clip, grid_sigma[j])
    return out


@numba.njit(cache=True, error_model="numpy")
def _insert_sorted(srt, n, at):  # pragma: no cover - compiled
    """Insert ``at`` (d,) into the per-dimension sorted rows ``srt[j, :n]`` (capacity > n)."""
    for j in range(at.shape[0]):
        x = at[j]
        pos = np.searchsorted(srt[j, :n], x, side="right")
        for i in range(n, pos, -1):
            srt[j, i] = srt[j, i - 1]
        srt[j, pos] = x


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _liar_batch(
    ok,
    log_l,
    log_g,
    u,
    c,
    key,
    taken,
    k,
    nc,
    liar,
    srt,
    n_srt,
    grid_sigma,
    alpha,
    n_choices,
    n_g,
):  # pragma: no cover - compiled
    """The batch TPE's picks (see :meth:`BatchTPESampler._propose`): row ``r`` of ``nc``
    candidates gives the candidate of largest ``log_l − log_g`` (−inf where not ``ok``; ties:
    the first) whose ``key`` is not ``taken`` (else the row's best), and, with ``liar``, the
    pick joins ``g`` as a kernel (bandwidth :func:`_lie_sigma`; ``n_g`` components so far)
    for the rows still to score (in parallel). ``log_g``, ``taken`` and ``srt`` (g's sorted centres,
    ``n_srt`` of them, room for ``k`` more) are updated in place. Returns the picks (k,)."""
    d = u.shape[1]
    dc = c.shape[1]
    m = k * nc
    chosen = np.empty(k, np.int64)
    log_root = math.log(math.sqrt(2.0 * math.pi))
    for r in range(k):
        best, best_s, top, top_s = -1, -np.inf, -1, -np.inf
        for i in range(r * nc, (r + 1) * nc):
            sc = log_l[i] - log_g[i] if ok[i] else -np.inf
            if top < 0 or sc > top_s:
                top, top_s = i, sc
            if not taken[key[i]] and (best < 0 or sc > best_s):
                best, best_s = i, sc
        pick = best if best >= 0 else top
        taken[key[pick]] = True
        chosen[r] = pick
        if not liar or r == k - 1:
            continue
        # constant liar: the pick joins g as a bad observation until it is told, with the
        # bandwidth Optuna's refit would give it (local), so the next proposals of the batch
        # move off its neighbourhood but stay in the good region
        at = u[pick]
        sig = _lie_sigma(srt, n_srt, at, grid_sigma)
        const = 0.0
        for j in range(d):
            a = 0.5 * math.erfc(at[j] / sig[j] / math.sqrt(2.0))  # ndtr(−at / σ)
            b = 0.5 * math.erfc(-(1.0 - at[j]) / sig[j] / math.sqrt(2.0))  # ndtr((1 − at) / σ)
            const -= math.log(sig[j]) + log_root + math.log(max(b - a, 1e-300))
        ln_g, ln_g1 = math.log(n_g), math.log(n_g + 1.0)
        for i in numba.prange((r + 1) * nc, m):  # the rows still to score
            v = const
            for j in range(d):
                z = (u[i, j] - at[j]) / sig[j]
                v -= 0.5 * z * z
            for j in range(dc):
                kj = n_choices[j]
                same = c[i, j] == c[pick, j]
                v += math.log(1.0 - alpha + alpha / kj) if same else math.log(alpha / kj)
            x = log_g[i] + ln_g
            hi = max(x, v)
            log_g[i] = hi + math.log1p(math.exp(-abs(x - v))) - ln_g1
        _insert_sorted(srt, n_srt, at)
        n_srt += 1
        n_g += 1
    return chosen


def _mixture_log_pdf_py(u, c, mu, cmu, inv_sigma, const, log_same, log_diff, log_prior, out):  # noqa: E501  # pragma: no cover - compiled
    """``out[i] = log(Σ_n exp(const[n] − ½ Σ_j ((u[i, j] − mu[n, j]) · inv_sigma[j])² +
    Σ_j (log_same[j] if c[i, j] == cmu[n, j] else log_diff[j])) + exp(log_prior))``: the log
    density of a mixture of product kernels plus one uniform component (a stable log-sum-exp,
    over points in parallel in the parallel build). Compiled (numba, cached)."""
    m, d = u.shape
    n = mu.shape[0]
    dc = c.shape[1]
    for i in numba.prange(m):
        buf = np.empty(n)
        top = log_prior
        for a in range(n):
            v = const[a]
            for j in range(d):
                z = (u[i, j] - mu[a, j]) * inv_sigma[j]
                v -= 0.5 * z * z
            for j in range(dc):
                v += log_same[j] if c[i, j] == cmu[a, j] else log_diff[j]
            buf[a] = v
            if v > top:
                top = v
        acc = math.exp(log_prior - top)
        for a in range(n):
            acc += math.exp(buf[a] - top)
        out[i] = top + math.log(acc)


def _compiled(name: str, **opts: Any) -> Any:
    """:func:`_mixture_log_pdf_py` compiled under its own name (its own Numba cache entry)."""
    fn = _mixture_log_pdf_py
    f = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    f.__qualname__ = name
    return numba.njit(cache=True, error_model="numpy", **opts)(f)


# the same code twice: threads only pay off on large problems (a batch of one scores 24 points)
_mixture_log_pdf_serial = _compiled("_mixture_log_pdf_serial")
_mixture_log_pdf_parallel = _compiled("_mixture_log_pdf_parallel", parallel=True)
_PARALLEL_WORK = 200_000  # points × kernels above which the parallel version runs


def _mixture_log_pdf(u, c, mu, cmu, inv_sigma, const, log_same, log_diff, log_prior, out):
    """See :func:`_mixture_log_pdf_py` (serial or parallel by size; the same numbers)."""
    big = u.shape[0] * mu.shape[0] > _PARALLEL_WORK
    f = _mixture_log_pdf_parallel if big else _mixture_log_pdf_serial
    f(u, c, mu, cmu, inv_sigma, const, log_same, log_diff, log_prior, out)


class _Parzen:
    """A mixture of truncated-normal × categorical kernels plus a uniform prior component."""

    def __init__(self, unit: _UnitSpace, u: np.ndarray, c: np.ndarray) -> None:
        n = len(u)
        self.mu = u
        self.c = c
        self.n_choices = unit.n_choices
        self.grid_sigma = unit.min_sigma
        scale = (n + 1) ** (-1.0 / (unit.dim + 4))
        self.sigma = np.maximum(0.2 * scale, unit.min_sigma)  # (d_num,)
        self.alpha = min(0.5, 0.25 * scale * 4 / 3)  # categorical smoothing
        self.log_w = -math.log(n + 1)  # equal weights, prior included
        a = (0.0 - u) / self.sigma
        b = (1.0 - u) / self.sigma
        self.log_z = np.log(np.maximum(special.ndtr(b) - special.ndtr(a), 1e-300))  # (n, d)

    def sample(self, rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        n, d_num, d_cat = len(self.mu), self.mu.shape[1], self.c.shape[1]
        comp = rng.integers(0, n + 1, size=m)  # n = the prior
        prior = comp == n
        idx = np.where(prior, 0, comp)
        r = rng.random((m, d_num))
        if n:
            mu = self.mu[idx]
            a = special.ndtr((0.0 - mu) / self.sigma)
            b = special.ndtr((1.0 - mu) / self.sigma)
            p = np.clip(a + r * (b - a), 1e-12, 1 - 1e-12)
            u = np.clip(mu + self.sigma * special.ndtri(p), 0.0, 1.0)
            u[prior] = r[prior]
        else:
            u = r
        c = np.empty((m, d_cat), dtype=np.int64)
        for j, k in enumerate(self.n_choices):
            rand = rng.integers(0, k, size=m)
            if n:
                keep = rng.random(m) >= self.alpha
                own = self.c[idx, j]
                c[:, j] = np.where(prior | ~keep, rand, own)
            else:
                c[:, j] = rand
        return u, c

    def sorted_centres(self, extra: int = 0) -> np.ndarray:
        """The kernels' numeric centres sorted per dimension, ``(d_num, n + extra)`` (room
        for ``extra`` more: :func:`_insert_sorted`)."""
        out = np.empty((self.mu.shape[1], len(self.mu) + extra))
        out[:, : len(self.mu)] = np.sort(self.mu, axis=0).T
        return out

    def liar_sigma(self, liars: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Bandwidth (d_num,) of a lie at ``at`` joining this mixture after the ``liars`` (j, d_num).

        What Optuna's refit would give it: its larger gap to its neighbours among all centres,
        at least ``1 / min(100, n + 2)`` (Optuna's magic clip, ``n`` centres with this one) and
        half a grid step (:func:`_lie_sigma`, which the batch's picks use). Local where the
        centres are dense, so a lie pushes the next proposals off its own neighbourhood, not
        off the whole good region.
        """
        mu = np.concatenate([self.mu, liars], axis=0)
        srt = np.ascontiguousarray(np.sort(mu, axis=0).T)
        return _lie_sigma(srt, len(mu), np.asarray(at, dtype=np.float64), self.grid_sigma)

    def log_pdf(self, u: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Log density of points ``u`` (m, d_num), ``c`` (m, d_cat) under the mixture."""
        m = len(u)
        log_prior = -float(np.sum(np.log(self.n_choices))) if len(self.n_choices) else 0.0
        if not len(self.mu):
            return np.full(m, log_prior)
        # per kernel: its weight and normalisers (the same for every point)
        const = self.log_w - (
            np.log(self.sigma * math.sqrt(2 * math.pi))[None, :] + self.log_z
        ).sum(axis=1)
        k = self.n_choices.astype(np.float64)
        log_same = np.log(1 - self.alpha + self.alpha / k)
        log_diff = np.log(self.alpha / k)
        out = np.empty(m)
        _mixture_log_pdf(
            np.ascontiguousarray(u, dtype=np.float64),
            np.ascontiguousarray(c, dtype=np.int64),
            np.ascontiguousarray(self.mu, dtype=np.float64),
            np.ascontiguousarray(self.c, dtype=np.int64),
            1.0 / self.sigma,
            const,
            log_same,
            log_diff,
            self.log_w + log_prior,
            out,
        )
        return out


class BatchTPESampler(BatchSampler):
    """TPE proposing a whole batch from one fit (see the module docstring).

    Args:
        seed: seeds every draw.
        n_startup: trials drawn uniformly before the model is used.
        n_candidates: candidates drawn from ``l`` per proposal (argmax of ``l / g``).
        liar: add each proposal to ``g`` as a local lie before the next one is chosen
            (``False`` only to study the sampler: the batch then piles onto the argmax).
    """

    def __init__(
        self,
        seed: int | None = 0,
        *,
        n_startup: int = 10,
        n_candidates: int = 24,
        liar: bool = True,
    ) -> None:
        super().__init__(seed)
        self.n_startup = int(n_startup)
        self.n_candidates = int(n_candidates)
        self.liar = bool(liar)

    @staticmethod
    def gamma(n: int) -> int:
        """How many of ``n`` observed trials form the "good" group: ``min(⌈0.1 n⌉, 25)``."""
        return min(math.ceil(0.1 * n), 25)

    def _propose(self, study: optuna.Study, unit: _UnitSpace, k: int) -> list[dict[str, Any]]:
        u_obs, c_obs, value, complete = self._observed(study, unit)
        seen_rows = np.concatenate([unit.snap(u_obs, c_obs), c_obs], axis=1)
        if complete.sum() < self.n_startup:
            return self._pick_random(unit, k, {tuple(r) for r in seen_rows})
        order = np.argsort(-np.where(complete, value, -np.inf), kind="stable")
        n_good = max(self.gamma(int(complete.sum())), 1)
        good, bad = order[:n_good], order[n_good:]
        l_est = _Parzen(unit, u_obs[good], c_obs[good])
        g_est = _Parzen(unit, u_obs[bad], c_obs[bad])
        m = k * self.n_candidates
        u, c = l_est.sample(self._rng, m)
        u = unit.snap(u, c)
        log_l = l_est.log_pdf(u, c)
        log_g = g_est.log_pdf(u, c)
        ok = self._valid_mask(unit, u, c)
        # each distinct set (candidates and observations) gets one integer key; a candidate is
        # taken when observed or picked earlier in the batch
        rows = np.concatenate([np.concatenate([u, c], axis=1), seen_rows], axis=0)
        _, ids = np.unique(rows, axis=0, return_inverse=True)
        ids = np.asarray(ids, dtype=np.int64).ravel()
        key = ids[:m]
        taken = np.zeros(int(ids.max(initial=-1)) + 1, dtype=bool)
        taken[ids[m:]] = True
        chosen = _liar_batch(
            np.ascontiguousarray(ok, dtype=bool),
            np.ascontiguousarray(log_l, dtype=np.float64),
            np.ascontiguousarray(log_g, dtype=np.float64),
            np.ascontiguousarray(u, dtype=np.float64),
            np.ascontiguousarray(c, dtype=np.int64),
            np.ascontiguousarray(key),
            taken,
            k,
            self.n_candidates,
            self.liar,
            g_est.sorted_centres(extra=k),
            len(bad),
            np.asarray(g_est.grid_sigma, dtype=np.float64),
            float(g_est.alpha),
            unit.n_choices.astype(np.float64),
            float(len(bad) + 1),  # components of g, the prior included
        )
        return self._as_sets(unit, u[chosen], c[chosen])

    def _pick_random(self, unit: _UnitSpace, k: int, seen: set) -> list[dict[str, Any]]:
        # a space-filling start (scrambled Sobol points), valid and distinct where the space
        # allows (invalid or repeated points are redrawn uniformly, a few rounds at most)
        u, c = self._sobol(unit, k)
        for _ in range(8):
            u = unit.snap(u, c)
            keys = [tuple(r) for r in np.concatenate([u, c], axis=1)]
            ok = self._valid_mask(unit, u, c)
            taken = set(seen)
            bad = []
            for i, key in enumerate(keys):
                if not ok[i] or key in taken:
                    bad.append(i)
                taken.add(key)
            if not bad:
                break
            nu, nc = self._uniform(unit, len(bad))
            u[bad], c[bad] = nu, nc
        return self._as_sets(unit, unit.snap(u, c), c)


# ---------------------------------------------------------------------------------- CMA-ES


class BatchCmaEsSampler(BatchSampler):
    """CMA-ES with one generation per batch (see the module docstring); needs ``cmaes``."""

    def __init__(self, seed: int | None = 0, *, popsize: int | None = None) -> None:
        super().__init__(seed)
        self.popsize = popsize
        self._cma: Any = None
        self._cma_dim = -1
        self._pending: list[tuple[np.ndarray, int | None]] = []

    def _propose(self, study: optuna.Study, unit: _UnitSpace, k: int) -> list[dict[str, Any]]:
        from cmaes import CMA

        d = len(unit.num)
        if d and (self._cma is None or self._cma_dim != d):
            pop = max(int(self.popsize or k), 2)
            self._cma = CMA(
                mean=np.full(d, 0.5),
                sigma=1.0 / 6.0,
                bounds=np.tile([0.0, 1.0], (d, 1)),
                seed=int(self._rng.integers(2**31 - 1)),
                population_size=pop,
            )
            self._cma_dim, self._pending = d, []
        if d:
            self._tell_pending(study)
            xs = [self._cma.ask() for _ in range(self._cma.population_size)]
            self._pending = [(x, None) for x in xs]
            u = np.asarray(xs[:k]).reshape(min(k, len(xs)), d)
            if len(u) < k:  # a batch wider than the population: uniform extra points
                u = np.concatenate([u, self._rng.random((k - len(u), d))])
        else:
            u = np.zeros((k, 0))
        _, c = self._uniform(unit, k)
        return self._as_sets(unit, u, c)

    def _taken(self, sets: Sequence[dict[str, Any]], trial: FrozenTrial) -> None:
        for i, (x, num) in enumerate(self._pending):
            if num is None:
                self._pending[i] = (x, trial.number)
                return

    def _tell_pending(self, study: optuna.Study) -> None:
        if not self._pending:
            return
        numbers = {n for _, n in self._pending if n is not None}
        sign = 1.0 if study.directions[0] == StudyDirection.MAXIMIZE else -1.0
        values: dict[int, float] = {}
        for t in study.get_trials(deepcopy=False):
            if t.number in numbers and t.state == TrialState.COMPLETE and t.value is not None:
                v = float(t.value)
                if math.isfinite(v):
                    values[t.number] = -sign * v  # cmaes minimises
        worst = max(values.values(), default=0.0)
        worst = worst + abs(worst) + 1.0
        sols = [(x, values.get(n, worst) if n is not None else worst) for x, n in self._pending]
        self._cma.tell(sols)
        self._pending = []


# ---------------------------------------------------------------------------------- QMC


class BatchQMCSampler(BatchSampler):
    """Scrambled Sobol points over the space (no model); categoricals as a Sobol coordinate."""

    def __init__(self, seed: int | None = 0) -> None:
        super().__init__(seed)
        self._sobol: Any = None
        self._sobol_dim = -1

    def _propose(self, study: optuna.Study, unit: _UnitSpace, k: int) -> list[dict[str, Any]]:
        from scipy.stats import qmc

        d = unit.dim
        if self._sobol is None or self._sobol_dim != d:
            self._sobol = qmc.Sobol(d, scramble=True, seed=int(self._rng.integers(2**31 - 1)))
            self._sobol_dim = d
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # balance warning for non-powers of 2
            pts = self._sobol.random(k)
        n_num = len(unit.num)
        u = pts[:, :n_num]
        c = np.minimum((pts[:, n_num:] * unit.n_choices).astype(np.int64), unit.n_choices - 1)
        return self._as_sets(unit, u, c.reshape(k, len(unit.cat)))
