"""Market features of an event stream, computed once and shared by every parameter set.

* ``mid`` = (bid + ask) / 2 after each event;
* ``sigma``: the mid's volatility in ticks per √s, an exponentially weighted estimate over
  quote events: with ``x`` the mid change in ticks and ``dt`` the time since the last quote
  (s), ``sigma² = Σ w·x² / Σ w·dt``, weights halving every ``halflife_s``;
* ``A``, ``k``: the trade intensity ``λ(δ) = A·exp(−kδ)`` fitted by least squares on
  ``ln λ`` over depth buckets ``δ_m = m`` ticks (m = 0 … n_buckets−1), where ``λ(δ_m)`` is
  the exponentially weighted rate (per s, same half-life) of trades printed at ``|px − mid|
  >= δ_m`` ticks from the mid before the trade. Before two buckets have trades, ``A``, ``k``
  keep their initial values ``A0``, ``k0``.

Returned as ``(N, 4)`` float64: mid, sigma, A, k.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantarena.engine.tick.events import QUOTE, TRADE, EventStream


@njit(cache=True)
def _features(ts, kind, px, bid, ask, tick, halflife_s, n_buckets, A0, k0, out):
    n = ts.shape[0]
    lam = math.log(2.0) / halflife_s
    sx2 = 0.0
    sdt = 0.0
    cnt = np.zeros(n_buckets)
    span = 0.0
    last_q = -1
    last_mid = math.nan
    last_t = ts[0] if n else 0
    A = A0
    k = k0
    sig = 0.0
    for i in range(n):
        dt = (ts[i] - last_t) * 1e-9
        if dt > 0.0:
            d = math.exp(-lam * dt)
            cnt *= d
            span = span * d + dt
            last_t = ts[i]
        mid = 0.5 * (bid[i] + ask[i])
        if kind[i] == QUOTE and mid == mid:
            if last_q >= 0 and last_mid == last_mid:
                gap = (ts[i] - ts[last_q]) * 1e-9
                x = (mid - last_mid) / tick
                w = math.exp(-lam * gap)
                sx2 = sx2 * w + x * x
                sdt = sdt * w + gap
                if sdt > 0.0:
                    sig = math.sqrt(sx2 / sdt)
            last_q = i
            last_mid = mid
        elif kind[i] == TRADE and last_mid == last_mid:
            depth = abs(px[i] - last_mid) / tick
            m = int(depth)
            for b in range(min(m + 1, n_buckets)):
                cnt[b] += 1.0
            # refit ln λ = ln A − k δ over the buckets with trades
            if span > 0.0:
                sx = 0.0
                sy = 0.0
                sxx = 0.0
                sxy = 0.0
                c = 0
                for b in range(n_buckets):
                    if cnt[b] > 1e-9:
                        y = math.log(cnt[b] / span)
                        sx += b
                        sy += y
                        sxx += b * b
                        sxy += b * y
                        c += 1
                if c >= 2:
                    den = c * sxx - sx * sx
                    slope = (c * sxy - sx * sy) / den
                    if slope < 0.0:
                        k = -slope
                        A = math.exp((sy - slope * sx) / c)
        out[i, 0] = mid
        out[i, 1] = sig
        out[i, 2] = A
        out[i, 3] = k


def market_features(
    events: EventStream,
    tick: float,
    *,
    halflife_s: float = 60.0,
    n_buckets: int = 10,
    A0: float = 1.0,
    k0: float = 1.0,
) -> np.ndarray:
    """``(N, 4)``: mid, sigma (ticks/√s), A (1/s), k (1/tick) after each event."""
    if not tick > 0:
        raise ValueError(f"market features need the venue's tick size > 0, got {tick}")
    out = np.zeros((len(events), 4))
    _features(
        events.ts, events.kind, events.px, events.bid, events.ask, float(tick),
        float(halflife_s), int(n_buckets), float(A0), float(k0), out,
    )  # fmt: skip
    return out
