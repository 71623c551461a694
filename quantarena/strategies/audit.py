"""The look-ahead audit: does an agent's weight at bar t depend on bars after t?

Three checks, on a set of cut points ``t`` (bar indices):

* ``truncate`` — the positions computed on ``bars[:t+1]`` must equal rows ``0..t`` of the
  positions computed on the full data. An agent that reads ``close[t+1]`` sees a
  different (missing) value when the data stops at ``t``.
* ``perturb`` — replace every bar after ``t`` by a random walk (seeded; OHLC consistent,
  random volume): rows ``0..t`` must not change. This catches reads of the future that
  truncation would miss (e.g. a full-sample mean or a "centre" of the series).
* ``stream`` — the blocks served by :meth:`Agent.source` (odd block sizes) concatenated must
  equal :meth:`Agent.positions`: the streaming path the engine uses is the audited one.

Positions are compared with a tiny tolerance (``atol=1e-7``: float32 weights) and NaN = NaN.
The result names the first offending bar and parameter set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from quantarena.strategies import params as P
from quantarena.strategies.base import Agent
from quantarena.strategies.indicators import to_numpy
from quantarena.strategies.registry import get_agent

if TYPE_CHECKING:
    from quantarena.data.panel import BarPanel


CHECKS: tuple[str, ...] = ("truncate", "perturb", "stream")


@dataclass
class AuditResult:
    """Outcome of :func:`audit`.

    ``passed`` is True when every check held at every cut. Otherwise ``check`` names the
    failing check, ``cut`` the cut point, ``first_bar`` the first bar index whose weights
    differ (and ``first_ts`` its time, ns), ``param_index`` / ``params`` the first differing
    parameter set, ``expected`` / ``got`` the two weights.
    """

    agent: str
    passed: bool
    n_params: int
    n_bars: int
    cuts: list[int]
    checks: list[str] = field(default_factory=list)
    check: str | None = None
    cut: int | None = None
    first_bar: int | None = None
    first_ts: int | None = None
    param_index: int | None = None
    params: dict[str, Any] | None = None
    asset: str | None = None
    expected: float | None = None
    got: float | None = None

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def message(self) -> str:
        """A one-line human summary."""
        if self.passed:
            return (
                f"{self.agent}: PASS — {self.n_params} parameter sets, {len(self.cuts)} cut points, "
                f"checks {', '.join(self.checks)}"
            )
        when = ""
        if self.first_ts is not None:
            import pandas as pd

            when = f" ({pd.Timestamp(self.first_ts, unit='ns', tz='UTC').isoformat()})"
        at = f" at cut {self.cut}" if self.cut is not None else ""
        return (
            f"{self.agent}: FAIL — check {self.check!r}{at}: the weight of bar "
            f"{self.first_bar}{when}, asset {self.asset}, parameter set #{self.param_index} "
            f"{self.params} is {self.got:.6g} instead of {self.expected:.6g}"
            + (
                ": it depends on later bars"
                if self.check != "stream"
                else ": source blocks differ from positions()"
            )
        )

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["verdict"] = self.verdict
        return d


def _as3d(a: Any) -> np.ndarray:
    h = np.asarray(to_numpy(a), dtype=np.float64)
    if h.ndim == 1:
        h = h[:, None]
    if h.ndim == 2:
        h = h[:, None, :]
    return h


def perturb_after(bars: BarPanel, t: int, seed: int = 0) -> BarPanel:
    """A copy of ``bars`` whose bars after index ``t`` are a seeded random walk starting from
    the close of bar ``t`` (OHLC consistent, volumes random), bars ``0..t`` untouched."""
    rng = np.random.default_rng(seed)
    out = bars.select(slice(None))
    T, A = bars.n_bars, bars.n_assets
    n = T - t - 1
    if n <= 0:
        return out
    start = np.where(np.isfinite(bars.close[t]), bars.close[t], 1.0)
    steps = rng.normal(0.0, 0.01, size=(n, A))
    close = start * np.exp(np.cumsum(steps, axis=0))
    prev = np.vstack([start[None, :], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.004, size=(n, A)))
    out.open[t + 1 :] = prev
    out.close[t + 1 :] = close
    out.high[t + 1 :] = np.maximum(prev, close) * (1 + spread)
    out.low[t + 1 :] = np.minimum(prev, close) * (1 - spread)
    out.volume[t + 1 :] = rng.lognormal(0.0, 1.0, size=(n, A))
    out.mask[t + 1 :] = True
    return out


def _first_diff(expected: np.ndarray, got: np.ndarray, atol: float) -> tuple[int, int, int] | None:
    same = np.isclose(got, expected, rtol=0.0, atol=atol, equal_nan=True)
    if same.all():
        return None
    t, a, p = np.argwhere(~same)[0]
    return int(t), int(a), int(p)


def default_cuts(n_bars: int, n_cuts: int = 6, seed: int = 0) -> list[int]:
    """``n_cuts`` distinct cut points spread over the data: fixed fractions (10, 35, 60 and
    85 % of the bars; fewer, evenly spread, when ``n_cuts < 4``) plus seeded random bars
    (fewer only when the data has fewer bars)."""
    if n_cuts < 1:
        raise ValueError(f"n_cuts must be at least 1, got {n_cuts}")
    if n_bars < 3:
        return [max(n_bars - 2, 0)]
    fracs = (0.1, 0.35, 0.6, 0.85) if n_cuts >= 4 else np.linspace(0.1, 0.85, n_cuts + 2)[1:-1]
    fixed = sorted({int(f * (n_bars - 2)) for f in fracs})
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(1, n_bars - 1), fixed)
    k = min(max(0, n_cuts - len(fixed)), len(pool))
    extra = rng.choice(pool, size=k, replace=False).tolist() if k else []
    return sorted({int(c) for c in fixed + extra if 0 <= c < n_bars - 1})


def audit(
    agent: str | Agent,
    bars: BarPanel,
    params: dict[str, Any] | None = None,
    *,
    cuts: list[int] | None = None,
    n_cuts: int = 6,
    seed: int = 0,
    xp: Any = np,
    atol: float = 1e-7,
    stream_block: int = 997,
    checks: tuple[str, ...] = CHECKS,
) -> AuditResult:
    """Audit ``agent`` for look-ahead on ``bars`` (see the module docstring).

    Args:
        agent: an :class:`Agent` or a registered name / import path.
        bars: the data to audit on.
        params: a grid spec (name -> values, as for :meth:`Agent.grid`); None = the agent's
            default grid.
        cuts: bar indices to cut at; None = :func:`default_cuts`.
        seed: seeds the cut points and the random walks.
        atol: weights closer than this count as equal.
        stream_block: block size of the ``stream`` check.
        checks: which checks to run (default all: truncate, perturb, stream).
    """
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown audit check {unknown[0]!r}: use {', '.join(CHECKS)}")
    ag = get_agent(agent)
    pop = ag.grid(**(params or {}))
    T = bars.n_bars
    cut_list = sorted(
        {int(c) for c in (cuts if cuts is not None else default_cuts(T, n_cuts, seed))}
    )
    for c in cut_list:
        if not 0 <= c < T:
            raise ValueError(f"cut point {c} is outside the {T} bars")
    result = AuditResult(
        agent=ag.name or type(ag).__name__,
        passed=True,
        n_params=P.n_params(pop),
        n_bars=T,
        cuts=cut_list,
        checks=[c for c in CHECKS if c in checks],
    )
    full = _as3d(ag.positions(bars, pop, xp))

    def fail(
        check: str, cut: int | None, where: tuple[int, int, int], exp: np.ndarray, got: np.ndarray
    ) -> AuditResult:
        t, a, p = where
        result.passed = False
        result.check = check
        result.cut = cut
        result.first_bar = t
        result.first_ts = int(bars.ts[t])
        result.asset = bars.symbols[a]
        result.param_index = p
        result.params = {k: np.asarray(v)[p].item() for k, v in pop.items()}
        result.expected = float(exp[t, a, p])
        result.got = float(got[t, a, p])
        return result

    for i, cut in enumerate(cut_list):
        if "truncate" in checks:
            head = _as3d(ag.positions(bars.select(slice(0, cut + 1)), pop, xp))
            d = _first_diff(full[: cut + 1], head, atol)
            if d is not None:
                return fail("truncate", cut, d, full, head)
        if "perturb" in checks:
            alt = _as3d(ag.positions(perturb_after(bars, cut, seed + i), pop, xp))
            d = _first_diff(full[: cut + 1], alt[: cut + 1], atol)
            if d is not None:
                return fail("perturb", cut, d, full, alt)

    if "stream" not in checks:
        return result
    src = ag.source(bars, pop, xp)
    blocks = [to_numpy(src(a, min(a + stream_block, T))) for a in range(0, T, stream_block)]
    streamed = _as3d(np.concatenate(blocks, axis=0))
    d = _first_diff(full, streamed, atol)
    if d is not None:
        return fail("stream", None, d, full, streamed)
    return result
