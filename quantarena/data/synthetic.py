"""Synthetic bars: correlated geometric Brownian motion with jumps and volatility regimes.

Model, per bar of length ``dt`` (in years, 365-day years: crypto trades 24/7):

* A market-wide volatility regime ``s_t`` in {0 = calm, 1 = turbulent} follows a
  two-state Markov chain; the expected stay in each state is ``calm_days`` and
  ``turbulent_days``. Per-bar volatility is ``sigma_t = annual_vol`` when calm and
  ``annual_vol * turbulent_vol_multiplier`` when turbulent.
* Diffusive log returns ``(drift - sigma_t^2/2) dt + sigma_t sqrt(dt) z``, with
  ``z = sqrt(rho) f_t + sqrt(1 - rho) e_{t,a}``: a common factor ``f`` gives every pair of
  symbols the diffusive correlation ``rho = correlation``.
* Jumps: each symbol gets Poisson arrivals at ``jumps_per_year``; a jump adds a normal
  log-return ``N(jump_mean, jump_std)``.
* ``open`` equals the previous ``close`` (a continuous market); ``high``/``low`` are
  drawn from the exact distribution of the maximum/minimum of a Brownian bridge from
  ``open`` to ``close`` with the bar's diffusive variance, so ``high >= max(open, close)``
  and ``low <= min(open, close)`` always. The two extremes are drawn independently given
  the close: each has the exact law, and the range is slightly wider than a Brownian
  path's (Parkinson's estimator reads the variance about 3% high).
* ``volume`` (base units) is lognormal around ``base_volume`` per bar, scaled by
  ``exp(volume_beta * |z_total|)`` (more volume on big moves, ``z_total`` = the bar's
  return in units of its diffusive sd) and by ``turbulent_volume_multiplier`` in the
  turbulent regime.

Randomness: ``seed`` seeds a :class:`numpy.random.SeedSequence`; its first child draws the
regime path, the common factor and the start prices, and one further child per symbol
draws that symbol's noise, jumps, ranges and volume. The same seed gives identical
arrays, independent of threading; symbol ``j``'s path depends only on ``seed``,
``n_bars`` and ``j``'s rank (not on ``n_symbols``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantarena.data.intervals import interval_ns

YEAR_NS = 365 * 86_400 * 1_000_000_000


@dataclass
class SyntheticMarket:
    """A simulated market. Price arrays are laid out **by symbol**: ``(A, T)``.

    Attributes:
        ts: ``(T,)`` int64 bar open times, ns since the epoch, UTC.
        symbols: ``A`` names ``SYN000``, ``SYN001``, ...
        open, high, low, close, volume: ``(A, T)`` float64.
        regime: ``(T,)`` int8, 1 in the turbulent regime.
        jumps: ``(A, T)`` int16 number of jumps in each bar.
        interval_ns: bar length.
        params: the parameters used.
    """

    ts: np.ndarray
    symbols: list[str]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    regime: np.ndarray
    jumps: np.ndarray
    interval_ns: int
    params: dict[str, Any] = field(default_factory=dict)

    def to_table(self) -> Any:
        """The bars as a pyarrow Table in BAR_SCHEMA, sorted by (symbol, ts)."""
        import pyarrow as pa

        from quantarena.data.schema import BAR_SCHEMA

        n_sym, n_bars = self.close.shape
        n = n_sym * n_bars
        dictionary = pa.array(self.symbols, pa.string())
        symbol = dictionary.take(pa.array(np.repeat(np.arange(n_sym, dtype=np.int32), n_bars)))
        cols = [
            symbol,
            pa.array(np.tile(self.ts, n_sym)),
            pa.array(self.open.reshape(n)),
            pa.array(self.high.reshape(n)),
            pa.array(self.low.reshape(n)),
            pa.array(self.close.reshape(n)),
            pa.array(self.volume.reshape(n)),
            pa.nulls(n, pa.float64()),
            pa.nulls(n, pa.int64()),
            pa.nulls(n, pa.float64()),
        ]
        return pa.Table.from_arrays(cols, schema=BAR_SCHEMA)

    def to_panel(self) -> Any:
        """The bars as a :class:`~quantarena.data.panel.BarPanel` (arrays ``(T, A)``)."""
        from quantarena.data.panel import BarPanel

        def t(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a.T)

        close = t(self.close)
        return BarPanel(
            ts=self.ts.copy(),
            symbols=list(self.symbols),
            open=t(self.open),
            high=t(self.high),
            low=t(self.low),
            close=close,
            volume=t(self.volume),
            mask=np.ones(close.shape, dtype=bool),
            interval_ns=self.interval_ns,
        )


def _start_ns(start: Any) -> int:
    if isinstance(start, int | np.integer):
        return int(start)
    import pandas as pd

    ts = pd.Timestamp(start)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def markov_regimes(
    rng: np.random.Generator, n_bars: int, p_enter: float, p_leave: float
) -> np.ndarray:
    """A two-state Markov chain path of length ``n_bars`` (int8, starting calm), built from
    geometric sojourn times: P(calm → turbulent) = ``p_enter`` and P(turbulent → calm) =
    ``p_leave`` per bar."""
    if n_bars == 0 or p_enter <= 0:
        return np.zeros(n_bars, dtype=np.int8)
    # alternating stays calm, turbulent, calm, ... drawn in batches of pairs until they
    # cover n_bars; the batch size depends only on the arguments, so the path is seeded
    p_leave = max(p_leave, 1e-12)
    mean_pair = 1.0 / p_enter + 1.0 / p_leave
    batches, covered = [], 0
    while covered < n_bars:
        k = int((n_bars - covered) / mean_pair) + 16
        pair = np.empty(2 * k, dtype=np.int64)
        pair[0::2] = rng.geometric(p_enter, size=k)
        pair[1::2] = rng.geometric(p_leave, size=k)
        batches.append(pair)
        covered += int(pair.sum())
    ends = np.minimum(np.cumsum(np.concatenate(batches)), n_bars)
    # turbulent stay i covers [ends[2i], ends[2i+1])
    diff = np.zeros(n_bars + 1, dtype=np.int32)
    np.add.at(diff, ends[0::2], 1)
    np.add.at(diff, ends[1::2], -1)
    regime = (np.cumsum(diff[:-1]) > 0).astype(np.int8)
    return regime


def _symbol_path(
    child: np.random.SeedSequence,
    n_bars: int,
    p0: float,
    f: np.ndarray,
    sig: np.ndarray,
    mu_dt: np.ndarray,
    regime: np.ndarray,
    p: dict[str, Any],
    dt: float,
    out: tuple[np.ndarray, ...],
) -> None:
    """Fill one symbol's rows ``out = (open, high, low, close, volume, jumps)`` in place."""
    open_, high, low, close, volume, jumps = out
    rng = np.random.default_rng(child)
    rho = float(p["correlation"])
    z = rng.standard_normal(n_bars)
    z *= np.sqrt(1.0 - rho)
    z += np.sqrt(rho) * f
    r = sig * z
    r += mu_dt
    n_jumps = rng.poisson(p["jumps_per_year"] * dt * n_bars)
    where = rng.integers(0, n_bars, size=n_jumps)
    jumps[:] = np.bincount(where, minlength=n_bars)
    np.add.at(r, where, rng.normal(p["jump_mean"], p["jump_std"], size=n_jumps))
    logp = np.cumsum(r)
    logp += np.log(p0)
    np.exp(logp, out=close)
    open_[0] = p0
    open_[1:] = close[:-1]
    # Brownian-bridge extremes: max of a bridge 0 → b with variance s2 is
    # (b + sqrt(b^2 - 2 s2 ln U)) / 2, U ~ Uniform(0, 1]
    s2 = sig * sig
    u = 1.0 - rng.random((2, n_bars))
    np.log(u, out=u)
    u *= -2.0 * s2
    b2 = r * r
    up = np.sqrt(b2 + u[0])
    dn = np.sqrt(b2 + u[1])
    up += r
    up *= 0.5
    np.exp(up, out=high)
    high *= open_
    np.subtract(r, dn, out=dn)
    dn *= 0.5
    np.exp(dn, out=low)
    low *= open_
    np.maximum(high, np.maximum(open_, close), out=high)
    np.minimum(low, np.minimum(open_, close), out=low)
    zabs = np.abs(r - mu_dt)
    zabs /= sig
    log_v = rng.standard_normal(n_bars)
    log_v *= p["volume_sigma"]
    log_v += p["volume_beta"] * zabs
    log_v += np.log(p["turbulent_volume_multiplier"]) * regime
    log_v += np.log(p["base_volume"]) - 0.5 * p["volume_sigma"] ** 2
    np.exp(log_v, out=volume)


def simulate_market(
    n_symbols: int = 4,
    n_bars: int = 10_000,
    interval: str | int = "1m",
    start: Any = "2024-01-01",
    seed: int = 0,
    *,
    annual_vol: float = 0.6,
    turbulent_vol_multiplier: float = 3.0,
    calm_days: float = 20.0,
    turbulent_days: float = 5.0,
    drift: float = 0.0,
    correlation: float = 0.5,
    jumps_per_year: float = 25.0,
    jump_mean: float = 0.0,
    jump_std: float = 0.03,
    start_price: float | None = None,
    base_volume: float = 100.0,
    volume_sigma: float = 0.5,
    volume_beta: float = 0.3,
    turbulent_volume_multiplier: float = 2.0,
    threads: int | None = None,
) -> SyntheticMarket:
    """Simulate ``n_symbols`` × ``n_bars`` bars; see the module doc for the model.

    Args:
        interval: bar length ("1m", "1h", ... or ns).
        start: time of the first bar (ISO string, Timestamp or int ns); naive = UTC.
        annual_vol: annualised volatility of the calm regime (365-day years).
        drift: annualised drift of log prices plus half the variance (GBM ``mu``).
        correlation: pairwise correlation of the diffusive returns, in [0, 1).
        jumps_per_year, jump_mean, jump_std: Poisson jump rate per symbol and the normal
            law of a jump's log size.
        start_price: first open of every symbol; default lognormal around 100 per symbol.
        base_volume: median-ish volume per bar in the calm regime (base units).
        threads: worker threads over symbols (default: up to the CPU count).
    """
    if n_symbols < 1 or n_bars < 1:
        raise ValueError(f"need n_symbols >= 1 and n_bars >= 1, got {n_symbols}, {n_bars}")
    if not 0.0 <= correlation < 1.0:
        raise ValueError(f"correlation must be in [0, 1), got {correlation}")
    step = interval_ns(interval)
    dt = step / YEAR_NS
    params = dict(
        n_symbols=n_symbols,
        n_bars=n_bars,
        interval_ns=step,
        seed=seed,
        annual_vol=annual_vol,
        turbulent_vol_multiplier=turbulent_vol_multiplier,
        calm_days=calm_days,
        turbulent_days=turbulent_days,
        drift=drift,
        correlation=correlation,
        jumps_per_year=jumps_per_year,
        jump_mean=jump_mean,
        jump_std=jump_std,
        start_price=start_price,
        base_volume=base_volume,
        volume_sigma=volume_sigma,
        volume_beta=volume_beta,
        turbulent_volume_multiplier=turbulent_volume_multiplier,
    )
    common_ss = np.random.SeedSequence(seed, spawn_key=(0,))
    sym_ss = [np.random.SeedSequence(seed, spawn_key=(1, j)) for j in range(n_symbols)]
    rng = np.random.default_rng(common_ss)
    bars_per_day = 86_400e9 / step
    p_enter = min(1.0, 1.0 / max(calm_days * bars_per_day, 1.0))
    p_leave = min(1.0, 1.0 / max(turbulent_days * bars_per_day, 1.0))
    regime = markov_regimes(rng, n_bars, p_enter, p_leave)
    f = rng.standard_normal(n_bars)
    if start_price is None:
        p0 = 100.0 * np.exp(rng.normal(0.0, 1.0, n_symbols))
    else:
        p0 = np.full(n_symbols, float(start_price))
    vol = np.where(regime == 1, annual_vol * turbulent_vol_multiplier, annual_vol)
    sig = vol * np.sqrt(dt)
    mu_dt = drift * dt - 0.5 * sig * sig
    shape = (n_symbols, n_bars)
    out = {k: np.empty(shape) for k in ("open", "high", "low", "close", "volume")}
    jumps = np.empty(shape, dtype=np.int16)

    def work(j: int) -> None:
        rows = tuple(out[k][j] for k in ("open", "high", "low", "close", "volume")) + (jumps[j],)
        _symbol_path(sym_ss[j], n_bars, p0[j], f, sig, mu_dt, regime, params, dt, rows)

    import os

    n_threads = min(threads or os.cpu_count() or 1, n_symbols)
    if n_threads > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(work, range(n_symbols)))
    else:
        for j in range(n_symbols):
            work(j)
    ts = _start_ns(start) + np.arange(n_bars, dtype=np.int64) * step
    return SyntheticMarket(
        ts=ts,
        symbols=[f"SYN{j:03d}" for j in range(n_symbols)],
        regime=regime,
        jumps=jumps,
        interval_ns=step,
        params=params,
        **out,
    )


def synthetic_bars(
    n_symbols: int,
    n_bars: int,
    interval: str | int = "1m",
    start: Any = "2024-01-01",
    seed: int = 0,
    **kwargs: Any,
) -> Any:
    """Synthetic bars as a pyarrow Table in BAR_SCHEMA (sorted by symbol, ts); symbols
    ``SYN000``…; keyword arguments as :func:`simulate_market`."""
    return simulate_market(n_symbols, n_bars, interval, start, seed, **kwargs).to_table()


def synthetic_panel(
    n_symbols: int,
    n_bars: int,
    interval: str | int = "1m",
    start: Any = "2024-01-01",
    seed: int = 0,
    **kwargs: Any,
) -> Any:
    """Synthetic bars as a :class:`~quantarena.data.panel.BarPanel` (``(T, A)``, no gaps);
    same numbers as :func:`synthetic_bars` for the same arguments."""
    return simulate_market(n_symbols, n_bars, interval, start, seed, **kwargs).to_panel()
