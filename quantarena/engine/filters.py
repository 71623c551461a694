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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
