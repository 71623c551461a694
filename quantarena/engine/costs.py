"""Trading-cost models: small pluggable objects, one per effect (after zipline's ``finance/``).

Every fill (a target change or a stop exit) is a market order at a *base price* ``px``
(the open of the fill bar for ``fill="open"``, the close for ``fill="close"``, the stop or
take-profit level for a stop exit). The models act on it as follows, for a trade of
``q = |Δshares|`` shares with side ``s = +1`` (buy) or ``-1`` (sell):

* :class:`Slippage` ``(bps)``: the fill price moves against the trader,
  ``fill = px * (1 + s * (slippage_bps + impact_bps) / 1e4)``.
* :class:`VolumeImpact` ``(k_bps, alpha, max_bps)``: extra adverse price move, in bps,
  ``impact_bps = min(k_bps * (q * px / (volume * close))**alpha, max_bps)`` where
  ``volume * close`` is the fill bar's notional volume (``volume`` in base-asset units, as
  the store holds it). A bar with no volume gets ``max_bps``.
* :class:`Fees` ``(taker_bps, maker_bps)``: a commission of ``fee_bps / 1e4`` of the traded
  notional at the fill price, ``q * fill * fee_bps / 1e4``, taken from cash. Bar replay
  sends market orders, so the taker rate applies unless ``liquidity="maker"``.
* :class:`Funding` (perpetual swaps): at every funding time (multiples of ``period_hours``
  since the epoch, 00:00/08:00/16:00 UTC for 8 h) that falls inside a bar
  ``[ts, ts + interval)``, cash pays ``rate * shares * close`` (the position held after the
  bar's fills, valued at its close): longs pay and shorts receive when the rate is positive.
  Or give ``rates``: the funding rate charged at each bar, aligned to the bars.

:class:`Costs` bundles them; :meth:`Costs.compile` turns them into the plain numbers and
arrays the kernels take (:class:`CompiledCosts`).

Defaults: :data:`DEFAULT_COSTS` (= :meth:`Costs.default`: 10 bps taker fee + 2 bps slippage) is
the one default of every entry point — ``quantarena.backtest``, the CLI's ``backtest`` and
``tune``, :func:`quantarena.training.tuning.tune` and a tournament config's ``costs`` section.
Only the low-level :func:`quantarena.engine.simulate` treats ``costs=None`` as free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

NS_PER_HOUR = 3_600_000_000_000

#: The default taker fee, bps of traded notional (see :meth:`Costs.default`).
DEFAULT_FEE_BPS = 10.0
#: The default maker fee, bps (charged only with ``Fees(liquidity="maker")``).
DEFAULT_MAKER_FEE_BPS = 2.0
#: The default slippage, bps of the fill price.
DEFAULT_SLIPPAGE_BPS = 2.0


class CostError(ValueError):
    """An invalid cost setting (one-line message naming the field)."""


def _check_bps(name: str, value: float) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise CostError(f"{name} must be a finite number of bps >= 0, got {value!r}")
    return v


@dataclass(frozen=True)
class Fees:
    """Commission in bps of traded notional (1 bp = 0.01 %).

    ``liquidity`` selects the rate charged on every fill: ``"taker"`` (default: bar replay
    sends market orders) or ``"maker"``.
    """

    taker_bps: float = field(
        default=0.0, metadata={"key": "fee_bps", "ge": 0, "doc": "commission per fill (taker)"}
    )
    maker_bps: float = field(default=0.0, metadata={"config": False})
    liquidity: Literal["taker", "maker"] = field(default="taker", metadata={"config": False})

    def __post_init__(self) -> None:
        _check_bps("Fees.taker_bps", self.taker_bps)
        _check_bps("Fees.maker_bps", self.maker_bps)
        if self.liquidity not in ("taker", "maker"):
            raise CostError(f"Fees.liquidity must be 'taker' or 'maker', got {self.liquidity!r}")

    def rate_bps(self) -> float:
        """The fee rate charged on each fill, in bps."""
        return float(self.taker_bps if self.liquidity == "taker" else self.maker_bps)


@dataclass(frozen=True)
class Slippage:
    """A fixed adverse price move of ``bps`` on every fill (buys pay more, sells get less)."""

    bps: float = field(
        default=0.0,
        metadata={"key": "slippage_bps", "ge": 0, "doc": "fixed adverse price move per fill"},
    )

    def __post_init__(self) -> None:
        _check_bps("Slippage.bps", self.bps)

    def fill_price(self, px: float, side: float) -> float:
        """The fill price of a trade of ``side`` (+1 buy, -1 sell) at base price ``px``."""
        return px * (1.0 + side * self.bps / 1e4)


@dataclass(frozen=True)
class VolumeImpact:
    """Square-root-style market impact: ``min(k_bps * participation**alpha, max_bps)`` bps,
    participation = traded notional / the fill bar's notional volume (``volume * close``)."""

    k_bps: float = field(
        default=0.0, metadata={"key": "impact_k_bps", "ge": 0, "doc": "impact scale; 0 = off"}
    )
    alpha: float = field(default=0.5, metadata={"key": "impact_alpha", "gt": 0, "le": 2})
    max_bps: float = field(default=1000.0, metadata={"key": "impact_max_bps", "ge": 0})

    def __post_init__(self) -> None:
        _check_bps("VolumeImpact.k_bps", self.k_bps)
        _check_bps("VolumeImpact.max_bps", self.max_bps)
        if not (0.0 < float(self.alpha) <= 2.0):
            raise CostError(f"VolumeImpact.alpha must be in (0, 2], got {self.alpha!r}")

    def impact_bps(self, traded_notional: float, bar_notional: float) -> float:
        """Impact in bps of a trade of ``traded_notional`` in a bar of ``bar_notional``."""
        if self.k_bps == 0.0 or traded_notional == 0.0:
            return 0.0
        if not bar_notional > 0.0:
            return float(self.max_bps)
        return float(min(self.k_bps * (traded_notional / bar_notional) ** self.alpha, self.max_bps))


@dataclass(frozen=True)
class Funding:
    """Perpetual-swap funding, charged on position notional (longs pay when positive).

    Either ``rate_per_8h`` (a constant rate per funding period of ``period_hours``, e.g.
    0.0001 = 1 bp every 8 h, charged at each funding time inside a bar) or ``rates``: the
    rate charged at each bar, shape ``(T,)`` or ``(T, A)``, aligned to the panel's bars.
    """

    rate_per_8h: float = field(
        default=0.0, metadata={"doc": "rate per funding time (0.0001 = 1 bp); longs pay if > 0"}
    )
    rates: np.ndarray | None = field(default=None, compare=False, metadata={"config": False})
    period_hours: float = field(default=8.0, metadata={"gt": 0})

    def __post_init__(self) -> None:
        if not np.isfinite(float(self.rate_per_8h)):
            raise CostError(f"Funding.rate_per_8h must be finite, got {self.rate_per_8h!r}")
        if not float(self.period_hours) > 0:
            raise CostError(f"Funding.period_hours must be > 0, got {self.period_hours!r}")

    def per_bar(self, ts: np.ndarray, interval_ns: int, n_assets: int) -> np.ndarray:
        """The funding rate charged at each bar, ``(T, A)`` float64."""
        ts = np.asarray(ts, dtype=np.int64)
        n = ts.shape[0]
        if self.rates is not None:
            r = np.asarray(self.rates, dtype=np.float64)
            if r.ndim == 1:
                r = r[:, None]
            if r.shape[0] != n or r.shape[1] not in (1, n_assets):
                raise CostError(
                    f"Funding.rates has shape {np.shape(self.rates)}, expected ({n},) or "
                    f"({n}, {n_assets}) aligned to the bars — pass one rate per bar"
                )
            if not np.all(np.isfinite(r)):
                raise CostError("Funding.rates holds NaN or inf — fill missing rates with 0")
            return np.ascontiguousarray(np.broadcast_to(r, (n, n_assets)))
        period = int(round(float(self.period_hours) * NS_PER_HOUR))
        # number of k with ts <= k * period < ts + interval  (ceil division on int64)
        hi = -((-(ts + int(interval_ns))) // period)
        lo = -((-ts) // period)
        count = (hi - lo).astype(np.float64)
        out = count * float(self.rate_per_8h)
        return np.ascontiguousarray(np.broadcast_to(out[:, None], (n, n_assets)))


@dataclass(frozen=True)
class CompiledCosts:
    """What the kernels see: plain numbers, and the funding array (or ``None``)."""

    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    impact_k_bps: float = 0.0
    impact_alpha: float = 0.5
    impact_max_bps: float = 1000.0
    funding: np.ndarray | None = None  # (T, A) rate charged at each bar


@dataclass(frozen=True)
class Costs:
    """All cost models of a simulation; any may be ``None`` (free).

    A tournament config's ``costs`` section is generated from these fields
    (:func:`quantarena.config_sections.composite_section`): ``metadata["config"]`` ``"flat"``
    puts the model's fields (named by their ``key``: ``fee_bps``, ``slippage_bps``,
    ``impact_*``) directly in the section, ``"section"`` nests it (``funding: {...}``). A new
    cost model is one dataclass here plus one field below.
    """

    fees: Fees | None = field(default=None, metadata={"config": "flat"})
    slippage: Slippage | None = field(default=None, metadata={"config": "flat"})
    impact: VolumeImpact | None = field(default=None, metadata={"config": "flat"})
    funding: Funding | None = field(default=None, metadata={"config": "section"})

    @classmethod
    def default(cls) -> Costs:
        """The default costs of every entry point (``quantarena.backtest``, the CLI's
        ``backtest`` and ``tune``, :func:`~quantarena.training.tuning.tune` and a tournament's
        ``costs`` section): a 10 bps taker fee (a retail tier on the large crypto exchanges;
        maker 2 bps) and 2 bps slippage; no impact, no funding. Same as :data:`DEFAULT_COSTS`."""
        return cls(
            fees=Fees(taker_bps=DEFAULT_FEE_BPS, maker_bps=DEFAULT_MAKER_FEE_BPS),
            slippage=Slippage(bps=DEFAULT_SLIPPAGE_BPS),
        )

    @classmethod
    def none(cls) -> Costs:
        """No costs at all."""
        return cls()

    def describe(self) -> str:
        """One line naming the costs applied, e.g. ``"fee 10 bps (taker), slippage 2 bps"``
        or ``"no costs"``; printed beside results so a figure always says what it paid."""
        parts = []
        if self.fees is not None and self.fees.rate_bps() > 0:
            parts.append(f"fee {self.fees.rate_bps():g} bps ({self.fees.liquidity})")
        if self.slippage is not None and self.slippage.bps > 0:
            parts.append(f"slippage {self.slippage.bps:g} bps")
        if self.impact is not None and self.impact.k_bps > 0:
            i = self.impact
            parts.append(f"impact {i.k_bps:g}·participation^{i.alpha:g} bps (max {i.max_bps:g})")
        if self.funding is not None:
            f = self.funding
            if f.rates is not None:
                parts.append("funding per bar")
            elif f.rate_per_8h != 0:
                parts.append(f"funding {f.rate_per_8h:g} per {f.period_hours:g} h")
        return ", ".join(parts) if parts else "no costs"

    def as_dict(self) -> dict[str, float]:
        """The flat numbers of :meth:`describe` (bps; funding as a rate per period), for JSON
        output and run logs."""
        i = self.impact
        f = self.funding
        return {
            "fee_bps": self.fees.rate_bps() if self.fees else 0.0,
            "slippage_bps": float(self.slippage.bps) if self.slippage else 0.0,
            "impact_k_bps": float(i.k_bps) if i else 0.0,
            "funding_rate_per_8h": float(f.rate_per_8h) if f and f.rates is None else 0.0,
        }

    def compile(self, ts: np.ndarray, interval_ns: int, n_assets: int) -> CompiledCosts:
        """Plain numbers for the kernels; the funding rates as a ``(T, A)`` array."""
        fund = None
        if self.funding is not None:
            fund = self.funding.per_bar(ts, interval_ns, n_assets)
            if not np.any(fund):
                fund = None
        imp = self.impact
        return CompiledCosts(
            fee_bps=self.fees.rate_bps() if self.fees else 0.0,
            slippage_bps=float(self.slippage.bps) if self.slippage else 0.0,
            impact_k_bps=float(imp.k_bps) if imp else 0.0,
            impact_alpha=float(imp.alpha) if imp else 0.5,
            impact_max_bps=float(imp.max_bps) if imp else 1000.0,
            funding=fund,
        )


#: The default costs of every entry point: :meth:`Costs.default` (10 bps taker fee + 2 bps
#: slippage). Pass ``Costs.none()`` to trade for free.
DEFAULT_COSTS = Costs.default()
