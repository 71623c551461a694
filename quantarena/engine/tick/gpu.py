"""The market-making tick kernel on a GPU (CuPy ``RawKernel``): :func:`.core.run_mm` line by
line in CUDA C, one thread per parameter set looping over the events of a block.

The constants (field indices, order types, model codes) are generated from the Python
modules, so the two kernels read the same layouts. Compiled with ``--fmad=false`` so the
arithmetic rounds as on the CPU. The fill log is not kept on the GPU (``max_log`` is 0).
``tests/test_tick_gpu.py`` holds the two equal: on a GPU when one is present, and on every
machine by compiling this same source as C++ for the host.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from quantarena.engine.tick import core as C
from quantarena.engine.tick import queue as Qm
from quantarena.engine.tick import quoting as Q
from quantarena.engine.tick import venue as Vn
from quantarena.engine.tick.events import DEPTH, QUOTE, TRADE


def c_defines() -> str:
    """``#define`` lines of every constant the CUDA source uses."""
    names = {
        **{k: getattr(C, k) for k in dir(C) if k.isupper() and isinstance(getattr(C, k), int)},
        **{
            k: getattr(Q, k)
            for k in (
                "AS",
                "GLFT",
                "PR_GAMMA",
                "PR_K",
                "PR_TAU",
                "PR_MIN_HALF",
                "PR_MAX_INV",
                "PR_QTY",
                "N_PRM",
            )
        },  # fmt: skip
        **{
            k: getattr(Vn, k)
            for k in (
                "Q_KIND",
                "Q_N",
                "MAKER",
                "TAKER",
                "TICK",
                "LOT",
                "MIN_NOTIONAL",
                "ENTRY_MULT",
                "USE_DEPTH",
            )
        },  # fmt: skip
        "POWER": Qm.POWER,
        "LOG": Qm.LOG,
        "EV_TRADE": TRADE,
        "EV_QUOTE": QUOTE,
        "EV_DEPTH": DEPTH,
    }
    out = [f"#define {k} {int(v)}" for k, v in sorted(names.items())]
    out.append(f"#define INF_AHEAD {C.INF_AHEAD!r}")
    return "\n".join(out) + "\n"


_SOURCE = r"""
typedef long long i64;
#define OFI(j, s, f) ((((i64)(j)) * 2 + (s)) * N_OF + (f))
#define OII(j, s, f) ((((i64)(j)) * 2 + (s)) * N_OI + (f))
#define ACI(j, f) (((i64)(j)) * N_AC + (f))

__device__ __forceinline__ double pmin(double a, double b) { return (b < a) ? b : a; }
__device__ __forceinline__ double pmax(double a, double b) { return (b > a) ? b : a; }

__device__ void qa_fill(int j, int s, double x, double px, int maker, double* OF, double* AC,
                        const double* V) {
    double side = OF[OFI(j, s, O_SIDE)];
    double rate = maker ? V[MAKER] : V[TAKER];
    double fee = x * px * rate;
    AC[ACI(j, A_POS)] += side * x;
    AC[ACI(j, A_CASH)] -= side * x * px + fee;
    AC[ACI(j, A_FEES)] += fee;
    AC[ACI(j, A_NFILL)] += 1.0;
    if (maker) AC[ACI(j, A_MAKER_QTY)] += x; else AC[ACI(j, A_TAKER_QTY)] += x;
    double a = fabs(AC[ACI(j, A_POS)]);
    if (a > AC[ACI(j, A_MAX_INV)]) AC[ACI(j, A_MAX_INV)] = a;
}

__device__ int qa_passes(double px, double qty, const double* V) {
    double tick = V[TICK];
    if (tick > 0.0) {
        double r = px / tick;
        if (fabs(r - rint(r)) > 1e-9 * pmax(1.0, fabs(r))) return 0;
    }
    double lot = V[LOT];
    if (qty <= 0.0) return 0;
    if (lot > 0.0) {
        double r = qty / lot;
        if (fabs(r - rint(r)) > 1e-9 * pmax(1.0, fabs(r))) return 0;
    }
    if (V[MIN_NOTIONAL] > 0.0 && px * qty < V[MIN_NOTIONAL] * (1.0 - 1e-12)) return 0;
    return 1;
}

__device__ double qa_join(double side, double px, double bid, double bq, double ask, double aq) {
    if (side > 0) {
        if (px == bid) return bq;
        if (!(px < bid)) return 0.0;
        return INF_AHEAD;
    }
    if (px == ask) return aq;
    if (!(px > ask)) return 0.0;
    return INF_AHEAD;
}

__device__ void qa_arrive(int j, int s, int typ, double side, double px, double qty, double bid,
                          double bq, double ask, double aq, double* OF, i64* OI, double* AC,
                          const double* V) {
    OF[OFI(j, s, O_SIDE)] = side;
    OF[OFI(j, s, O_TYPE)] = typ;
    OI[OII(j, s, O_ST)] = ST_NONE;
    OI[OII(j, s, O_RT)] = -1;
    double touch = side > 0 ? ask : bid;
    double touch_qty = side > 0 ? aq : bq;
    double check_px = typ == MARKET ? touch : px;
    if (!(check_px > 0.0) || !qa_passes(check_px, qty, V)) {
        AC[ACI(j, A_REJ_FILTER)] += 1.0;
        return;
    }
    int crosses = (side > 0 && px >= touch) || (side < 0 && px <= touch);
    if (typ == MARKET) {
        if (touch > 0.0) qa_fill(j, s, qty, touch, 0, OF, AC, V);
        return;
    }
    if (crosses) {
        if (typ == POST_ONLY) { AC[ACI(j, A_REJ_POST)] += 1.0; return; }
        if (typ == IOC) {
            double x = pmin(qty, touch_qty);
            if (x > 0.0) qa_fill(j, s, x, touch, 0, OF, AC, V);
            return;
        }
        qa_fill(j, s, qty, touch, 0, OF, AC, V);
        return;
    }
    if (typ == IOC) return;
    OF[OFI(j, s, O_PX)] = px;
    OF[OFI(j, s, O_QTY)] = qty;
    OF[OFI(j, s, O_AHEAD)] = qa_join(side, px, bid, bq, ask, aq);
    OF[OFI(j, s, O_TR)] = 0.0;
    OI[OII(j, s, O_ST)] = ST_LIVE;
}

__device__ void qa_passive(int j, int s, double x, double* OF, i64* OI, double* AC,
                           const double* V) {
    double lv = OF[OFI(j, s, O_QTY)];
    if (x >= lv) x = lv;
    qa_fill(j, s, x, OF[OFI(j, s, O_PX)], 1, OF, AC, V);
    OF[OFI(j, s, O_QTY)] = lv - x;
    if (OF[OFI(j, s, O_QTY)] <= lv * 1e-12) {
        OF[OFI(j, s, O_QTY)] = 0.0;
        OI[OII(j, s, O_ST)] = ST_NONE;
    }
}

__device__ double qa_qf(double x, int kind, double n) {
    if (kind == POWER) return pow(x, n);
    return log1p(x);
}

__device__ double qa_level(double ahead, double traded, double prev, double nw, const double* V) {
    if (ahead >= INF_AHEAD) return nw;
    int kind = (int)V[Q_KIND];
    if (kind != POWER && kind != LOG) return pmin(ahead, nw);
    double chg = prev - nw - traded;
    if (chg < 0.0) return pmin(ahead, nw);
    double front = ahead;
    double back = prev - front;
    double fb = qa_qf(pmax(back, 0.0), kind, V[Q_N]);
    double ff = qa_qf(pmax(front, 0.0), kind, V[Q_N]);
    double p = (fb + ff) > 0.0 ? fb / (fb + ff) : 1.0;
    double est = front - (1.0 - p) * chg + pmin(back - p * chg, 0.0);
    return pmax(pmin(est, nw), 0.0);
}

__device__ void qa_event(int j, int kind, double eside, double epx, double eqty, double eprev,
                         double nb, double nbq, double na, double naq, double pb, double pbq,
                         double pa, double paq, double* OF, i64* OI, double* AC,
                         const double* V) {
    int use_depth = V[USE_DEPTH] > 0.0;
    for (int s = 0; s < 2; ++s) {
        if (OI[OII(j, s, O_ST)] != ST_LIVE) continue;
        double side = OF[OFI(j, s, O_SIDE)];
        double px = OF[OFI(j, s, O_PX)];
        if (kind == EV_TRADE) {
            int hits = (side > 0 && eside <= 0) || (side < 0 && eside >= 0);
            if (!hits) continue;
            if ((side > 0 && epx < px) || (side < 0 && epx > px)) {
                qa_passive(j, s, OF[OFI(j, s, O_QTY)], OF, OI, AC, V);
            } else if (epx == px) {
                double ahead = OF[OFI(j, s, O_AHEAD)];
                OF[OFI(j, s, O_TR)] += eqty;
                if (ahead < INF_AHEAD) {
                    if (eqty > ahead) {
                        OF[OFI(j, s, O_AHEAD)] = 0.0;
                        qa_passive(j, s, eqty - ahead, OF, OI, AC, V);
                    } else {
                        OF[OFI(j, s, O_AHEAD)] = ahead - eqty;
                    }
                }
            }
        } else if (kind == EV_QUOTE) {
            if (side > 0) {
                if (na <= px) { qa_passive(j, s, OF[OFI(j, s, O_QTY)], OF, OI, AC, V); continue; }
                if (use_depth) continue;
                if (px == nb) {
                    double prev = pb == px ? pbq : OF[OFI(j, s, O_AHEAD)];
                    OF[OFI(j, s, O_AHEAD)] = qa_level(OF[OFI(j, s, O_AHEAD)], OF[OFI(j, s, O_TR)], prev, nbq, V);
                    OF[OFI(j, s, O_TR)] = 0.0;
                } else if (px > nb) {
                    OF[OFI(j, s, O_AHEAD)] = 0.0;
                    OF[OFI(j, s, O_TR)] = 0.0;
                }
            } else {
                if (nb >= px) { qa_passive(j, s, OF[OFI(j, s, O_QTY)], OF, OI, AC, V); continue; }
                if (use_depth) continue;
                if (px == na) {
                    double prev = pa == px ? paq : OF[OFI(j, s, O_AHEAD)];
                    OF[OFI(j, s, O_AHEAD)] = qa_level(OF[OFI(j, s, O_AHEAD)], OF[OFI(j, s, O_TR)], prev, naq, V);
                    OF[OFI(j, s, O_TR)] = 0.0;
                } else if (px < na) {
                    OF[OFI(j, s, O_AHEAD)] = 0.0;
                    OF[OFI(j, s, O_TR)] = 0.0;
                }
            }
        } else if (kind == EV_DEPTH) {
            if (eside == side && epx == px) {
                OF[OFI(j, s, O_AHEAD)] = qa_level(OF[OFI(j, s, O_AHEAD)], OF[OFI(j, s, O_TR)], eprev, eqty, V);
                OF[OFI(j, s, O_TR)] = 0.0;
            }
        }
    }
}

__device__ void qa_depths(int kind, const double* prm, int j, double sigma, double A, double kfit,
                          double q, double* bd_out, double* ad_out) {
    const double* p = prm + ((i64)j) * N_PRM;
    double g = p[PR_GAMMA];
    double hmin = p[PR_MIN_HALF];
    double bd, ad;
    if (kind == AS) {
        double k = p[PR_K];
        double v = g * sigma * sigma * p[PR_TAU];
        double h = pmax(0.5 * v + log1p(g / k) / g, hmin);
        double shift = q * v;
        bd = h + shift;
        ad = h - shift;
    } else {
        double k = kfit;
        double c1 = log1p(g / k) / g;
        double c2 = sqrt(g / (2.0 * A * k) * pow(1.0 + g / k, k / g + 1.0));
        bd = pmax(c1 + 0.5 * sigma * c2 + sigma * c2 * q, hmin);
        ad = pmax(c1 + 0.5 * sigma * c2 - sigma * c2 * q, hmin);
    }
    double qmax = p[PR_MAX_INV];
    if (q >= qmax) bd = QA_NAN;
    if (q <= -qmax) ad = QA_NAN;
    *bd_out = bd;
    *ad_out = ad;
}

__device__ i64 qa_send(int j, i64 t, double* AC, const i64* draws, int nd, i64 extra) {
    i64 m = (i64)AC[ACI(j, A_NORD)];
    AC[ACI(j, A_NORD)] = (double)(m + 1);
    return t + draws[m % nd] + extra;
}

extern "C" __global__ void run_mm(
    const int n, const int P, const i64* ts, const signed char* kind, const signed char* eside,
    const double* px, const double* qty, const double* prev, const double* bid,
    const double* bid_qty, const double* ask, const double* ask_qty, const double* top0,
    const i64* feed, const unsigned char* decide, const double* FT, const int quote_kind,
    const double* prm, const double* V, const i64* draws, const int nd, double* OF, i64* OI,
    double* AC, const i64* sample_ts, const int n_samples, double* EQ, const int k0,
    const i64* fund_ts, const double* fund_rate, const int n_fund, const int f0)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= P) return;
    double tick = V[TICK], lot = V[LOT], mult = V[ENTRY_MULT];
    int k = k0;
    int f = f0;
    double pb = top0[0], pbq = top0[1], pa = top0[2], paq = top0[3];
    double oq = prm[((i64)j) * N_PRM + PR_QTY];
    if (lot > 0.0) oq = floor(oq / lot + 1e-9) * lot;
    for (int i = 0; i < n; ++i) {
        i64 t = ts[i];
        while (k < n_samples && sample_ts[k] <= t) {
            EQ[((i64)k) * P + j] = AC[ACI(j, A_CASH)] + AC[ACI(j, A_POS)] * AC[ACI(j, A_MID)];
            k++;
        }
        while (f < n_fund && fund_ts[f] <= t) {
            double pay = fund_rate[f] * AC[ACI(j, A_POS)] * AC[ACI(j, A_MID)];
            AC[ACI(j, A_CASH)] -= pay;
            AC[ACI(j, A_FUND)] += pay;
            f++;
        }
        for (int s = 0; s < 2; ++s) {
            if (OI[OII(j, s, O_ST)] == ST_FLIGHT && OI[OII(j, s, O_T)] <= t) {
                qa_arrive(j, s, POST_ONLY, 1.0 - 2.0 * s, OF[OFI(j, s, O_NPX)],
                          OF[OFI(j, s, O_NQTY)], pb, pbq, pa, paq, OF, OI, AC, V);
            }
            i64 rt = OI[OII(j, s, O_RT)];
            if (rt >= 0 && rt <= t) {
                if (OF[OFI(j, s, O_NQTY)] == 0.0) {
                    OI[OII(j, s, O_ST)] = ST_NONE;
                    OI[OII(j, s, O_RT)] = -1;
                } else {
                    OI[OII(j, s, O_RT)] = -1;
                    if (OI[OII(j, s, O_ST)] == ST_LIVE) {
                        int typ = (int)OF[OFI(j, s, O_TYPE)];
                        qa_arrive(j, s, typ, OF[OFI(j, s, O_SIDE)], OF[OFI(j, s, O_NPX)],
                                  OF[OFI(j, s, O_NQTY)], pb, pbq, pa, paq, OF, OI, AC, V);
                    }
                }
            }
        }
        double nb = bid[i], nbq = bid_qty[i], na = ask[i], naq = ask_qty[i];
        qa_event(j, kind[i], (double)eside[i], px[i], qty[i], prev[i], nb, nbq, na, naq, pb, pbq,
                 pa, paq, OF, OI, AC, V);
        if (nb == nb && na == na) AC[ACI(j, A_MID)] = 0.5 * (nb + na);
        pb = nb; pbq = nbq; pa = na; paq = naq;
        if (!decide[i] || !(nb == nb && na == na)) continue;
        double mid = FT[((i64)i) * 4 + 0];
        double q = AC[ACI(j, A_POS)] / oq;
        double bd, ad;
        qa_depths(quote_kind, prm, j, FT[((i64)i) * 4 + 1], FT[((i64)i) * 4 + 2],
                  FT[((i64)i) * 4 + 3], q, &bd, &ad);
        i64 t_dec = t + feed[i];
        i64 extra = (i64)(mult * (double)feed[i]);
        for (int s = 0; s < 2; ++s) {
            double d = s == 0 ? bd : ad;
            double want = QA_NAN;
            if (d == d) {
                if (s == 0) {
                    want = floor((mid - d * tick) / tick + 1e-9) * tick;
                    want = pmin(want, na - tick);
                } else {
                    want = ceil((mid + d * tick) / tick - 1e-9) * tick;
                    want = pmax(want, nb + tick);
                }
            }
            i64 st = OI[OII(j, s, O_ST)];
            if (st == ST_FLIGHT || OI[OII(j, s, O_RT)] >= 0) continue;
            if (st == ST_NONE) {
                if (want == want) {
                    OF[OFI(j, s, O_NPX)] = want;
                    OF[OFI(j, s, O_NQTY)] = oq;
                    OI[OII(j, s, O_T)] = qa_send(j, t_dec, AC, draws, nd, extra);
                    OI[OII(j, s, O_ST)] = ST_FLIGHT;
                }
            } else if (want != want) {
                OF[OFI(j, s, O_NQTY)] = 0.0;
                OI[OII(j, s, O_RT)] = qa_send(j, t_dec, AC, draws, nd, extra);
            } else if (fabs(want - OF[OFI(j, s, O_PX)]) > 0.5 * tick) {
                OF[OFI(j, s, O_NPX)] = want;
                OF[OFI(j, s, O_NQTY)] = oq;
                OI[OII(j, s, O_RT)] = qa_send(j, t_dec, AC, draws, nd, extra);
            }
        }
    }
}
"""


def cuda_source() -> str:
    """The CUDA C source of the market-making tick kernel."""
    return "#define QA_NAN __longlong_as_double(0x7ff8000000000000LL)\n" + c_defines() + _SOURCE


@lru_cache(maxsize=1)
def _kernel() -> Any:
    import cupy as cp  # noqa: PLC0415

    return cp.RawKernel(cuda_source(), "run_mm", options=("--fmad=false",))


def run_mm_gpu(args: dict[str, Any], launch: Any = None) -> None:
    """Run one block on the device (``args``: the arrays of :func:`.core.run_mm`, CuPy or
    NumPy; state arrays updated in place). ``launch(fn_args, P)`` replaces the CuPy launch
    (the host emulation in the tests)."""
    a = args
    P = int(a["AC"].shape[0])
    n = int(a["ts"].shape[0])
    fn_args = (
        np.int32(n), np.int32(P), a["ts"], a["kind"], a["side"], a["px"], a["qty"], a["prev"],
        a["bid"], a["bid_qty"], a["ask"], a["ask_qty"], a["top0"], a["feed"], a["decide"],
        a["FT"], np.int32(a["quote_kind"]), a["prm"], a["V"], a["draws"],
        np.int32(a["draws"].shape[0]), a["OF"], a["OI"], a["AC"], a["sample_ts"],
        np.int32(a["sample_ts"].shape[0]), a["EQ"], np.int32(a["k0"]), a["fund_ts"],
        a["fund_rate"], np.int32(a["fund_ts"].shape[0]), np.int32(a["f0"]),
    )  # fmt: skip
    if launch is not None:
        launch(fn_args, P)
        return
    threads = 128
    _kernel()(((P + threads - 1) // threads,), (threads,), fn_args)
