"""The look-ahead audit: does an agent's weight at bar t depend on bars after t?

Four checks:

* ``every_bar`` — EVERY bar ``c`` of the last ``every_bar_span`` bars is a cut: the positions
  computed on ``bars[s:c+1]`` must equal rows ``s..c`` of the positions computed on
  ``bars[s:c+1+horizon]`` (the same start, ``horizon`` more bars of future). The start ``s``
  trails the cut by the window and moves once per ``block`` of cuts, so a cut costs one short
  run (``window + block`` bars) and a block shares one reference run: ``T`` cuts cost about
  ``T * (window + block)`` bar-rows instead of ``T**2 / 2``. A causal agent passes whatever
  ``s`` is (its rows up to ``c`` see the same bars); an agent that peeks at bar ``c+1`` on
  even one bar in a thousand fails at that bar. The window is ``window`` bars, widened to
  twice the agent's warm-up (the first bar where a set's weight is not flat in the full run)
  up to ``max_window``, so a set with a long look-back is not flat in every short run. The
  check runs on up to ``every_bar_params`` parameter sets spread over the population (the
  other checks use all of it). Agents whose every call trains models (the
  ``ml`` agent) set ``audit_every_bar = False`` and name their critical bars (refits) in
  ``audit_bars(bars, params)``; those bars are added to the cuts below.

  An agent class of quantarena itself (not a user subclass) with a streaming path
  (:meth:`Agent.stream`) is checked in one incremental pass instead: from ``s0`` (the
  window before the span's first cut, where the truncation check's first runs start; bar 0
  when the span is every bar) its stream, fed the bars one at a time, must give at every bar
  the positions computed on all of ``bars[s0:]``. The stream never holds a later bar, so
  equality proves each of those weights is a function of the bars up to its own — with no
  ``horizon`` limit — at ``O(window)`` per bar instead of a ``window + block`` bar run per
  cut. Where the stream differs anywhere (a changed agent, a device's rounding) the
  truncation check above decides, so the fast path can only confirm a pass, never hide or
  invent a failure. ``every_bar_method="truncate"`` forces the truncation check.
* ``truncate`` — the positions computed on ``bars[:t+1]`` must equal rows ``0..t`` of the
  positions computed on the full data. An agent that reads ``close[t+1]`` sees a
  different (missing) value when the data stops at ``t``.
* ``perturb`` — replace every bar after ``t`` by a random walk (seeded; OHLC consistent,
  random volume): rows ``0..t`` must not change. This catches reads of the future that
  truncation would miss (e.g. a full-sample mean or a "centre" of the series).
* ``stream`` — the blocks served by :meth:`Agent.source` (odd block sizes) concatenated must
  equal :meth:`Agent.positions`: the streaming path the engine uses is the audited one.

``truncate`` and ``perturb`` run on a few cut points over the whole data (they catch leaks
that reach far ahead, e.g. a full-sample mean); ``every_bar`` catches leaks a few bars ahead
on any bar.

Positions are compared with a tiny tolerance (``atol=1e-7``: float32 weights) and NaN = NaN
(bit-equal blocks are recognised in one ``==`` pass; only unequal rows are compared in float64).
The result names the first offending bar and parameter set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from quantarena.strategies import params as P
from quantarena.strategies.base import Agent
from quantarena.strategies.indicators import to_numpy
from quantarena.strategies.registry import get_agent

if TYPE_CHECKING:
    from quantarena.data.panel import BarPanel


#: bumped when a change of the audit can change a verdict (cached verdicts then expire)
AUDIT_VERSION = 3

CHECKS: tuple[str, ...] = ("every_bar", "truncate", "perturb", "stream")

#: defaults of the every-bar check: history before each cut, cuts per shared reference run,
#: future bars in the reference, parameter sets checked
WINDOW, BLOCK, HORIZON, EVERY_BAR_PARAMS = 512, 64, 16, 16
#: the widest window the every-bar check widens to for agents with a long warm-up
MAX_WINDOW = 4_096
#: the every-bar check covers the last this many bars (None: all of them)
EVERY_BAR_SPAN: int | None = 5_000


@dataclass
class AuditResult:
    """Outcome of :func:`audit`.

    ``passed`` is True when every check held at every cut. Otherwise ``check`` names the
    failing check, ``cut`` the cut point, ``first_bar`` the first bar index whose weights
    differ (and ``first_ts`` its time, ns), ``param_index`` / ``params`` the first differing
    parameter set, ``expected`` / ``got`` the two weights. ``every_bar_window`` is the
    truncation runs' history (bars) and ``every_bar_method`` which every-bar check ran
    (``"stream"``: the incremental pass; ``"truncate"``: the truncation runs).
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
    every_bar_window: int | None = None
    every_bar_method: str | None = None

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


def _as3d(a: Any, n_params: int) -> np.ndarray:
    """Weights as ``(T, A, P)`` floats on the host (their own float dtype: no float64 copy
    of a float32 block); one column stands for every set."""
    h = np.asarray(to_numpy(a))
    if h.dtype.kind != "f":
        h = h.astype(np.float64)
    if h.ndim == 1:
        h = h[:, None]
    if h.ndim == 2:
        h = h[:, None, :]
    if h.shape[2] == 1 and n_params != 1:
        h = np.broadcast_to(h, h.shape[:2] + (n_params,))
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
    """The first ``(row, asset, set)`` where ``got`` and ``expected`` differ by more than
    ``atol`` (NaN = NaN; ``np.isclose`` with ``rtol=0`` in float64), or None.

    Bit-equal blocks (a causal agent's, nearly always) cost one ``==`` pass in their own dtype;
    only the rows with an unequal value are compared in float64."""
    eq = got == expected
    if eq.all():
        return None
    rows = np.flatnonzero(~eq.reshape(eq.shape[0], -1).all(axis=1))
    g = np.asarray(np.broadcast_to(got, eq.shape)[rows], dtype=np.float64)
    e = np.asarray(np.broadcast_to(expected, eq.shape)[rows], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        same = eq[rows] | (np.isnan(g) & np.isnan(e)) | (np.abs(g - e) <= atol)
    if same.all():
        return None
    r, a, p = np.argwhere(~same)[0]
    return int(rows[r]), int(a), int(p)


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


@contextmanager
def _one_thread() -> Iterator[None]:
    """Numba kernels on one thread: the every-bar check makes thousands of short calls, for
    which waking a thread pool costs more than it saves (5-20x slower on a busy machine)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def spread_indices(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices spread evenly over ``0..n-1`` (first and last included)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


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
    window: int = WINDOW,
    block: int = BLOCK,
    horizon: int = HORIZON,
    every_bar_params: int = EVERY_BAR_PARAMS,
    every_bar_span: int | None = EVERY_BAR_SPAN,
    max_window: int = MAX_WINDOW,
    population: P.Params | None = None,
    every_bar_method: str = "auto",
) -> AuditResult:
    """Audit ``agent`` for look-ahead on ``bars`` (see the module docstring).

    Args:
        agent: an :class:`Agent` or a registered name / import path.
        bars: the data to audit on.
        params: a grid spec (name -> values, as for :meth:`Agent.grid`); None = the agent's
            default grid.
        cuts: bar indices to cut at (``truncate``, ``perturb``); None = :func:`default_cuts`
            plus the agent's ``audit_bars``.
        seed: seeds the cut points and the random walks.
        atol: weights closer than this count as equal.
        stream_block: block size of the ``stream`` check.
        checks: which checks to run (default all: every_bar, truncate, perturb, stream).
        window: ``every_bar``: bars of history before each cut (at least the agent's
            longest look-back, so its weights are not all flat).
        block: ``every_bar``: cuts that share one reference run.
        horizon: ``every_bar``: bars of future in the reference run (catches peeks up to
            that far ahead on every bar; further peeks are for ``truncate`` / ``perturb``).
        every_bar_params: ``every_bar``: parameter sets checked (spread over the population).
        every_bar_span: ``every_bar``: check the last this many bars (None: every bar).
        max_window: ``every_bar``: the widest window (see the module docstring).
        population: an explicit population (name -> (P,) array) instead of ``params``.
        every_bar_method: ``every_bar``: ``"auto"`` (an agent of quantarena with a streaming
            path passes when its stream reproduces its positions at every bar; any other
            agent, or a stream that differs, is checked by truncation) or ``"truncate"``
            (truncation always).
    """
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown audit check {unknown[0]!r}: use {', '.join(CHECKS)}")
    if every_bar_method not in ("auto", "truncate"):
        raise ValueError(f"unknown every_bar_method {every_bar_method!r}: use auto or truncate")
    for name, v in (("window", window), ("block", block), ("horizon", horizon)):
        if int(v) < 1:
            raise ValueError(f"audit option {name} must be at least 1 bar, got {v}")
    ag = get_agent(agent)
    pop = ag.check_params(population) if population is not None else ag.grid(**(params or {}))
    T = bars.n_bars
    if cuts is None:
        extra = getattr(ag, "audit_bars", None)
        cuts = default_cuts(T, n_cuts, seed) + (list(extra(bars, pop)) if extra else [])
    cut_list = sorted({int(c) for c in cuts})
    for c in cut_list:
        if not 0 <= c < T:
            raise ValueError(f"cut point {c} is outside the {T} bars")
    if not getattr(ag, "audit_every_bar", True):
        checks = tuple(c for c in checks if c != "every_bar")
    result = AuditResult(
        agent=ag.name or type(ag).__name__,
        passed=True,
        n_params=P.n_params(pop),
        n_bars=T,
        cuts=cut_list,
        checks=[c for c in CHECKS if c in checks],
    )
    n_sets = result.n_params
    full = _as3d(ag.positions(bars, pop, xp), n_sets)

    def fail(
        check: str,
        cut: int | None,
        where: tuple[int, int, int],
        exp: np.ndarray,
        got: np.ndarray,
        offset: int = 0,
        cols: np.ndarray | None = None,
    ) -> AuditResult:
        t, a, p = where
        result.passed = False
        result.check = check
        result.cut = cut
        result.first_bar = t + offset
        result.first_ts = int(bars.ts[t + offset])
        result.asset = bars.symbols[a]
        result.param_index = int(cols[p]) if cols is not None else p
        result.params = {k: np.asarray(v)[result.param_index].item() for k, v in pop.items()}
        result.expected = float(exp[t, a, p])
        result.got = float(got[t, a, p])
        return result

    if "every_bar" in checks:
        cols = spread_indices(result.n_params, int(every_bar_params))
        sub = P.take(pop, cols)
        traded = (full[:, :, cols] != 0) & np.isfinite(full[:, :, cols])
        warmup = int(np.argmax(traded, axis=0)[traded.any(axis=0)].max(initial=0))
        window = min(max(int(window), 2 * warmup), max(int(max_window), int(window)))
        result.every_bar_window = window
        first = 0 if every_bar_span is None else max(0, T - int(every_bar_span))
        streamed = every_bar_method == "auto" and has_shipped_stream(ag)
        if streamed:
            # the stream pass starts a window before the span (where the truncation check's
            # first runs start) and is compared with the positions computed from that bar
            s0 = max(0, first - window)
            tail = bars.select(slice(s0, T))
            want = full[:, :, cols] if s0 == 0 else _as3d(ag.positions(tail, sub, xp), len(cols))
            streamed = _stream_reproduces(ag, tail, sub, want, atol)
        if streamed:
            result.every_bar_method = "stream"
            found = None
        else:  # no shipped stream, or it differs somewhere: the truncation check decides
            result.every_bar_method = "truncate"
            found = _every_bar(
                ag, bars, sub, xp, atol, int(window), int(block), int(horizon), first
            )
        if found is not None:
            cut, s, d, exp, got = found
            return fail("every_bar", cut, d, exp, got, offset=s, cols=cols)

    for i, cut in enumerate(cut_list):
        if "truncate" in checks:
            head = _as3d(ag.positions(bars.select(slice(0, cut + 1)), pop, xp), n_sets)
            d = _first_diff(full[: cut + 1], head, atol)
            if d is not None:
                return fail("truncate", cut, d, full, head)
        if "perturb" in checks:
            alt = _as3d(ag.positions(perturb_after(bars, cut, seed + i), pop, xp), n_sets)
            d = _first_diff(full[: cut + 1], alt[: cut + 1], atol)
            if d is not None:
                return fail("perturb", cut, d, full, alt)

    if "stream" not in checks:
        return result
    src = ag.source(bars, pop, xp)
    blocks = [to_numpy(src(a, min(a + stream_block, T))) for a in range(0, T, stream_block)]
    streamed = _as3d(np.concatenate(blocks, axis=0), n_sets)
    d = _first_diff(full, streamed, atol)
    if d is not None:
        return fail("stream", None, d, full, streamed)
    return result


def has_shipped_stream(ag: Agent) -> bool:
    """Whether ``ag`` is an agent class of :mod:`quantarena.strategies` itself (not a user
    subclass) with a streaming path: its stream is fed one bar at a time and sees no later
    bar, so it is a causal computation the audit can trust."""
    cls = type(ag)
    return cls.__module__.startswith("quantarena.strategies.") and (
        cls._stream is not Agent._stream
    )


def _stream_reproduces(
    ag: Agent, bars: BarPanel, pop: P.Params, expected: np.ndarray, atol: float
) -> bool:
    """Whether the agent's stream, fed ``bars`` one at a time from the first, gives
    ``expected`` (the positions on all of ``bars``, ``(T, A, P)``) at every bar."""
    try:
        st = ag.stream(pop, n_assets=bars.n_assets, interval_ns=int(bars.interval_ns))
        streamed = st.run(bars)
    except (NotImplementedError, ValueError):  # no stream for this case: truncation decides
        return False
    return _first_diff(expected, streamed, atol) is None


def _every_bar(
    ag: Agent,
    bars: BarPanel,
    pop: P.Params,
    xp: Any,
    atol: float,
    window: int,
    block: int,
    horizon: int,
    first: int = 0,
) -> tuple[int, int, tuple[int, int, int], np.ndarray, np.ndarray] | None:
    """The ``every_bar`` check on cuts ``first .. T-2``: the first (cut, start, (row, asset,
    set), reference, head) where the weights up to a cut change once ``horizon`` future bars
    are appended."""
    pop = ag.check_params(pop)
    with _one_thread():
        return _every_bar_cuts(ag, bars, pop, xp, atol, window, block, horizon, first)


def _every_bar_cuts(
    ag: Agent,
    bars: BarPanel,
    pop: P.Params,
    xp: Any,
    atol: float,
    window: int,
    block: int,
    horizon: int,
    first: int,
) -> tuple[int, int, tuple[int, int, int], np.ndarray, np.ndarray] | None:
    T = bars.n_bars
    n_sets = P.n_params(pop)

    def run(lo: int, hi: int) -> np.ndarray:
        # Agent.positions without re-validating the (checked) population at every call
        part = bars.select(slice(lo, hi))
        return _as3d(ag.signal(ag.indicators(part, pop, xp), pop, xp, 0, hi - lo), n_sets)

    for b in range(first, T - 1, block):
        e = min(b + block, T - 1)  # cuts b .. e-1; the last bar has no future to peek at
        s = max(0, b - window)
        ref = run(s, min(T, e + horizon))
        for c in range(b, e):
            head = run(s, c + 1)
            d = _first_diff(ref[: c + 1 - s], head, atol)
            if d is not None:
                return c, s, d, ref, head
    return None
