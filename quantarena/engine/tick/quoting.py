"""Market-making quote rules compiled into the tick loop (:func:`.core.run_mm`).

Units: prices in ticks of the venue, time in seconds, inventory ``q = position /
order_qty`` (in order sizes). Market features per event (computed once for the stream,
shared by every parameter set, :mod:`.features`): ``mid``; ``sigma`` the mid's volatility in
ticks per √s; ``A`` (trades per s) and ``k`` (per tick) of the fitted trade intensity
``λ(δ) = A · exp(−k δ)`` at depth ``δ`` ticks from the mid.

**Avellaneda–Stoikov** (:data:`AS`; Avellaneda & Stoikov 2008, with a fixed horizon ``τ``):

    reservation  r = mid − q · γ · σ² · τ
    half spread  h = γ · σ² · τ / 2 + (1/γ) · ln(1 + γ/k)
    bid = r − max(h, h_min),  ask = r + max(h, h_min)

with ``k`` the agent's parameter.

**Guéant–Lehalle–Fernandez-Tapia**, infinite horizon (:data:`GLFT`; Guéant 2017's closed-form
approximation, ``ξ = γ``, ``Δ = 1`` tick, as in hftbacktest's GLFT tutorial), with the
fitted ``A``, ``k``:

    c1 = (1/γ) · ln(1 + γ/k)
    c2 = sqrt( γ / (2 A k) · (1 + γ/k) ** (k/γ + 1) )
    bid depth = max(c1 + σ·c2/2 + σ·c2·q, h_min),  ask depth = max(c1 + σ·c2/2 − σ·c2·q, h_min)

Both: no bid when ``q >= q_max``, no ask when ``q <= −q_max``; the bid is rounded down and
the ask up to the tick, and kept one tick inside the other side of the book (post-only).
"""

from __future__ import annotations

import math

from numba import njit

AS = 0
GLFT = 1
# columns of the agents' parameter block (P, N_PRM)
PR_GAMMA, PR_K, PR_TAU, PR_MIN_HALF, PR_MAX_INV, PR_QTY = range(6)
N_PRM = 6


@njit(cache=True, inline="always")
def quote_depths(kind, prm, j, sigma, A, kfit, q):
    """(bid depth, ask depth) in ticks from the mid (NaN: no quote on that side)."""
    g = prm[j, PR_GAMMA]
    hmin = prm[j, PR_MIN_HALF]
    if kind == AS:
        k = prm[j, PR_K]
        v = g * sigma * sigma * prm[j, PR_TAU]
        h = max(0.5 * v + math.log1p(g / k) / g, hmin)
        shift = q * v  # the reservation price sits q·γσ²τ below the mid
        bd = h + shift
        ad = h - shift
    else:
        k = kfit
        c1 = math.log1p(g / k) / g
        c2 = math.sqrt(g / (2.0 * A * k) * (1.0 + g / k) ** (k / g + 1.0))
        bd = max(c1 + 0.5 * sigma * c2 + sigma * c2 * q, hmin)
        ad = max(c1 + 0.5 * sigma * c2 - sigma * c2 * q, hmin)
    qmax = prm[j, PR_MAX_INV]
    if q >= qmax:
        bd = math.nan
    if q <= -qmax:
        ad = math.nan
    return bd, ad
