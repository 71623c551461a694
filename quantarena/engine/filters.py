"""Exchange filters of the bar engine: lot size and minimum notional.

Exchanges refuse orders whose quantity is not a multiple of the lot size (Binance's
``LOT_SIZE.stepSize``) or whose value is below a minimum (``MIN_NOTIONAL`` /
``NOTIONAL.minNotional``). The engine applies both to the trades a target change asks for
(:func:`quantarena.engine.simulate.simulate`, ``filters=``):

* the target quantity ``w * E_f / price`` is rounded toward zero to a multiple of
  ``lot_size`` (so a target smaller than one lot means flat);
* a trade worth less than ``min_notional`` (``|quantity| * price``, before slippage) is not
  filled — unless it closes the position (a full exit always fills, as a stop does), so an
  account is never stuck with a position it cannot sell. The engine trades again only when
  the target changes (then against the shares actually held);
* stops, take-profits and the close-out on ruin are full exits and are not filtered.

Units: ``lot_size`` in units of the asset (shares, coins), ``min_notional`` in the quote
currency — the units of the account's equity, so give the replay an ``init_cash`` in the
quote currency (e.g. ``init_cash=10_000`` for 10,000 USDT) when filters are on. Both are
scalars (every asset) or one value per asset; 0 = no filter.

In a config (live ``filters:``, tournament ``filters:``) they are one section read by
:meth:`ExchangeFilters.from_config`: global ``lot_size`` / ``min_notional`` and per-symbol
overrides under ``symbols``::

    filters:
      min_notional: 10            # every symbol: 10 USDT
      symbols:
        BTC-PERP: {lot_size: 0.001}
        ETH-PERP: {lot_size: 0.01, min_notional: 5}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SymbolFilters:
    """The keys of a ``filters:`` config section, globally or for one symbol under
    ``symbols`` (None: not set — a symbol's takes the global value, the global is 0 = off)."""

    lot_size: float | None = field(
        default=None, metadata={"doc": "lot size, asset units; 0 = off", "ge": 0}
    )
    min_notional: float | None = field(
        default=None, metadata={"doc": "minimum trade value, quote currency; 0 = off", "ge": 0}
    )


@dataclass(frozen=True)
class ExchangeFilters:
    """Lot size (asset units) and minimum notional (quote currency) of each asset; 0 = off."""

    lot_size: float | tuple[float, ...] = 0.0
    min_notional: float | tuple[float, ...] = 0.0

    def compile(self, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
        """``(lot, min_notional)`` as ``(A,)`` float64 arrays; ValueError on bad values."""
        out = []
        for name in ("lot_size", "min_notional"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.ndim == 0:
                a = np.full(n_assets, float(a))
            if a.shape != (n_assets,):
                raise ValueError(
                    f"filters.{name}: {a.size} values for {n_assets} assets — give one value "
                    "or one per asset"
                )
            if not (np.all(np.isfinite(a)) and np.all(a >= 0)):
                raise ValueError(f"filters.{name} must be finite and >= 0, got {a.tolist()}")
            out.append(np.ascontiguousarray(a))
        return out[0], out[1]

    @classmethod
    def from_config(
        cls, d: Mapping[str, Any] | None, symbols: Sequence[str], where: str = "filters"
    ) -> ExchangeFilters | None:
        """The filters of a config section (see the module docstring) for ``symbols`` in
        column order; None when the section is empty. Errors name the key."""
        if not d:
            return None
        keys = tuple(f.name for f in fields(SymbolFilters))
        bad = sorted(set(d) - {*keys, "symbols"})
        if bad:
            raise ValueError(
                f"{where}: unknown key {bad[0]!r}; known: lot_size, min_notional, symbols"
            )
        per = d.get("symbols") or {}
        if not isinstance(per, Mapping):
            raise ValueError(
                f"{where}.symbols: give a mapping symbol -> {{lot_size, min_notional}}"
            )
        unknown = sorted(set(per) - set(symbols))
        if unknown:
            raise ValueError(
                f"{where}.symbols: {unknown[0]!r} is not a symbol of the data ({', '.join(symbols)})"
            )
        out: dict[str, tuple[float, ...]] = {}
        for f in keys:
            vals = []
            for s in symbols:
                sd = per.get(s) or {}
                extra = sorted(set(sd) - set(keys))
                if extra:
                    raise ValueError(f"{where}.symbols.{s}: unknown key {extra[0]!r}")
                v = sd.get(f)
                if v is None:
                    v = d.get(f)
                if v is None:
                    v = 0.0
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise ValueError(f"{where}.{f}: give a number >= 0, got {v!r}")
                vals.append(float(v))
            out[f] = tuple(vals)
        filt = cls(**out)
        filt.compile(len(symbols))  # validate: finite, >= 0
        return filt

    def per_unit(self, capital: float) -> ExchangeFilters:
        """The filters of an account of 1.0 standing for ``capital`` in the quote currency:
        both amounts divided by ``capital`` (its quantities are ``1 / capital`` of the real
        account's, so it rounds and refuses exactly the same trades)."""
        if not capital > 0:
            raise ValueError(f"filters: capital must be > 0, got {capital!r}")

        def div(v: float | tuple[float, ...]) -> float | tuple[float, ...]:
            return tuple(float(x) / capital for x in v) if isinstance(v, tuple) else v / capital

        return ExchangeFilters(div(self.lot_size), div(self.min_notional))
