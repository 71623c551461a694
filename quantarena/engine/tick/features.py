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

# carried state (:class:`FeatureState`): float part, then the int64 part
S_SX2, S_SDT, S_SPAN, S_LAST_MID, S_A, S_K, S_SIG = range(7)
N_SF = 7
I_STARTED, I_LAST_Q_TS, I_LAST_T = range(3)
N_SI = 3


@njit(cache=True)
def _features(ts, kind, px, bid, ask, tick, halflife_s, n_buckets, SF, SI, cnt, out):
    n = ts.shape[0]
    lam = math.log(2.0) / halflife_s
    if SI[I_STARTED] == 0 and n:
        SI[I_STARTED] = 1
        SI[I_LAST_T] = ts[0]
    sx2 = SF[S_SX2]
    sdt = SF[S_SDT]
    span = SF[S_SPAN]
    last_q_ts = SI[I_LAST_Q_TS]  # -1: no quote yet
    last_mid = SF[S_LAST_MID]
    last_t = SI[I_LAST_T]
    A = SF[S_A]
    k = SF[S_K]
    sig = SF[S_SIG]
    for i in range(n):
        dt = (ts[i] - last_t) * 1e-9
        if dt > 0.0:
            d = math.exp(-lam * dt)
            cnt *= d
            span = span * d + dt
            last_t = ts[i]
        mid = 0.5 * (bid[i] + ask[i])
        if kind[i] == QUOTE and mid == mid:
            if last_q_ts >= 0 and last_mid == last_mid:
                gap = (ts[i] - last_q_ts) * 1e-9
                x = (mid - last_mid) / tick
                w = math.exp(-lam * gap)
                sx2 = sx2 * w + x * x
                sdt = sdt * w + gap
                if sdt > 0.0:
                    sig = math.sqrt(sx2 / sdt)
            last_q_ts = ts[i]
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
    SF[S_SX2] = sx2
    SF[S_SDT] = sdt
    SF[S_SPAN] = span
    SF[S_LAST_MID] = last_mid
    SF[S_A] = A
    SF[S_K] = k
    SF[S_SIG] = sig
    SI[I_LAST_Q_TS] = last_q_ts
    SI[I_LAST_T] = last_t


class FeatureState:
    """The estimators' state carried from one block of events to the next, so that
    :meth:`update` over consecutive blocks gives exactly :func:`market_features` of their
    concatenation (paper trading feeds events as they arrive)."""

    def __init__(
        self,
        tick: float,
        *,
        halflife_s: float = 60.0,
        n_buckets: int = 10,
        A0: float = 1.0,
        k0: float = 1.0,
    ) -> None:
        if not tick > 0:
            raise ValueError(f"market features need the venue's tick size > 0, got {tick}")
        if not halflife_s > 0:
            raise ValueError(f"market features need a half-life > 0 s, got {halflife_s}")
        self.tick = float(tick)
        self.halflife_s = float(halflife_s)
        self.SF = np.zeros(N_SF)
        self.SF[S_LAST_MID] = math.nan
        self.SF[S_A] = float(A0)
        self.SF[S_K] = float(k0)
        self.SI = np.zeros(N_SI, dtype=np.int64)
        self.SI[I_LAST_Q_TS] = -1
        self.cnt = np.zeros(int(n_buckets))

    def update(self, events: EventStream) -> np.ndarray:
        """``(len(events), 4)``: mid, sigma, A, k after each event of this block."""
        out = np.zeros((len(events), 4))
        _features(
            events.ts, events.kind, events.px, events.bid, events.ask, self.tick,
            self.halflife_s, int(self.cnt.shape[0]), self.SF, self.SI, self.cnt, out,
        )  # fmt: skip
        return out


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
    fs = FeatureState(tick, halflife_s=halflife_s, n_buckets=n_buckets, A0=A0, k0=k0)
    return fs.update(events)
