"""GPU simulation kernel (CuPy ``RawKernel``): the CPU algorithm, one thread per parameter set.

A line-by-line mirror of :func:`quantarena.engine.kernels_cpu._multi_param` (same state
layout, :mod:`quantarena.engine.layout`; same operations in the same order), compiled with
``--fmad=false`` so that no multiply-add is fused and the float64 results match the CPU's
to rounding (``pow`` of the impact model may differ in the last bit). Each thread loops over
the block's bars, carrying its state in registers and in the ``S`` / ``SA`` arrays, laid
out ``[field][asset][param]`` so that a warp's accesses are coalesced.

CuPy is imported only when a kernel is first needed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from quantarena.engine.layout import NRF, NRI, c_defines

THREADS = 64  # small blocks spread a few thousand parameter sets over more SMs

_SOURCE = r"""
typedef long long i64;

#define SAI(k, a) ((((i64)(k)) * A + (a)) * P + p)
#define SI(k) (((i64)(k)) * P + p)
#define PX(arr, t, a) (arr[((i64)(t)) * A + (a)])

__device__ void open_trade(double* SA, int A, int P, int p, int a, i64 t, double side,
                           double q, double fpx, double fee) {
    SA[SAI(EVAL, a)] = q * fpx;
    SA[SAI(EQTY, a)] = q;
    SA[SAI(XVAL, a)] = 0.0;
    SA[SAI(XQTY, a)] = 0.0;
    SA[SAI(TCOST, a)] = fee;
    SA[SAI(DIR, a)] = side;
    SA[SAI(ETS, a)] = (double)t;
    SA[SAI(BEST, a)] = fpx;
    SA[SAI(EPX, a)] = fpx;
}

__device__ void close_trade(double* S, double* SA, int A, int P, int p, int a, i64 t,
                            int reason, int rec_on, const i64* offs, double* RF, i64* RI,
                            i64 n_rec) {
    double d = SA[SAI(DIR, a)];
    double ev = SA[SAI(EVAL, a)];
    double pnl = d * (SA[SAI(XVAL, a)] - ev) - SA[SAI(TCOST, a)];
    double ret = ev > 0.0 ? pnl / ev : 0.0;
    S[SI(NTR)] += 1.0;
    if (pnl > 0.0) {
        S[SI(WINS)] += 1.0;
        S[SI(GP)] += pnl;
    } else {
        S[SI(GL)] -= pnl;
    }
    S[SI(SUM_TRET)] += ret;
    if (rec_on) {
        i64 k = offs[p] + (i64)S[SI(NREC)];
        if (k < n_rec) {
            RF[k * NRF + R_ENTRY_T] = SA[SAI(ETS, a)];
            RF[k * NRF + R_EXIT_T] = (double)t;
            RF[k * NRF + R_DIR] = d;
            RF[k * NRF + R_SIZE] = SA[SAI(EQTY, a)];
            RF[k * NRF + R_ENTRY_PX] = SA[SAI(EPX, a)];
            double xq = SA[SAI(XQTY, a)];
            RF[k * NRF + R_EXIT_PX] = xq > 0.0 ? SA[SAI(XVAL, a)] / xq : QA_NAN;
            RF[k * NRF + R_PNL] = pnl;
            RF[k * NRF + R_RET] = ret;
            RI[k * NRI + R_PARAM] = p;
            RI[k * NRI + R_ASSET] = a;
            RI[k * NRI + R_REASON] = reason;
        }
        S[SI(NREC)] += 1.0;
    }
    SA[SAI(DIR, a)] = 0.0;
}

__device__ double fill(double* S, double* SA, int A, int P, int p, int a, i64 t, double dsh,
                       double px, double eref, int reason, double cash, double fee_r,
                       double slip_r, double imp_k, double imp_a, double imp_max,
                       double bar_notional, int rec_on, const i64* offs, double* RF, i64* RI,
                       i64 n_rec) {
    double side = dsh > 0.0 ? 1.0 : -1.0;
    double q = fabs(dsh);
    double adj = slip_r;
    if (imp_k > 0.0) {
        double ib;
        if (bar_notional > 0.0) {
            ib = imp_k * pow(q * px / bar_notional, imp_a);
            if (ib > imp_max) ib = imp_max;
        } else {
            ib = imp_max;
        }
        adj += ib;
    }
    double fpx = px * (1.0 + side * adj * 1e-4);
    double notional = q * fpx;
    double fee = notional * fee_r * 1e-4;
    cash -= dsh * fpx + fee;
    if (eref > 0.0) S[SI(TURN)] += notional / eref;
    S[SI(FEES)] += fee;
    double sh0 = SA[SAI(SH, a)];
    double sh1 = sh0 + dsh;
    if (sh0 == 0.0) {
        open_trade(SA, A, P, p, a, t, side, q, fpx, fee);
    } else if ((sh0 > 0.0) == (dsh > 0.0)) {
        SA[SAI(EVAL, a)] += notional;
        SA[SAI(EQTY, a)] += q;
        SA[SAI(TCOST, a)] += fee;
        SA[SAI(EPX, a)] = SA[SAI(EVAL, a)] / SA[SAI(EQTY, a)];
    } else if (sh1 != 0.0 && (sh1 > 0.0) == (sh0 > 0.0)) {
        SA[SAI(XVAL, a)] += notional;
        SA[SAI(XQTY, a)] += q;
        SA[SAI(TCOST, a)] += fee;
    } else {
        double qc = fabs(sh0);
        double fc = fee * (qc / q);
        SA[SAI(XVAL, a)] += qc * fpx;
        SA[SAI(XQTY, a)] += qc;
        SA[SAI(TCOST, a)] += fc;
        close_trade(S, SA, A, P, p, a, t, reason, rec_on, offs, RF, RI, n_rec);
        if (sh1 != 0.0) open_trade(SA, A, P, p, a, t, side, fabs(sh1), fpx, fee - fc);
    }
    SA[SAI(SH, a)] = sh1;
    return cash;
}

__device__ void process_row(const POS_T* pos, i64 i, int A, int P, int p, double mp,
                            double lev, double* SA, int dst) {
    double gross = 0.0;
    for (int a = 0; a < A; ++a) {
        double w = (double)pos[(i * A + a) * P + p];
        if (w != w) {
            w = 0.0;
        } else if (w > mp) {
            w = mp;
        } else if (w < -mp) {
            w = -mp;
        }
        SA[SAI(dst, a)] = w;
        gross += fabs(w);
    }
    if (gross > lev) {
        double sc = lev / gross;
        for (int a = 0; a < A; ++a) SA[SAI(dst, a)] = SA[SAI(dst, a)] * sc;
    }
}

__device__ bool changed(const double* SA, int A, int P, int p, i64 t, const unsigned char* mask) {
    for (int a = 0; a < A; ++a) {
        if (PX(mask, t, a) && SA[SAI(PEND, a)] != SA[SAI(LAST, a)]) return true;
    }
    return false;
}

__device__ double rebalance(double* S, double* SA, int A, int P, int p, i64 t,
                            const double* prices, const unsigned char* mask, const double* vol,
                            const double* cl, double cash, double fee_r, double slip_r,
                            double imp_k, double imp_a, double imp_max, int rec_on,
                            const i64* offs, double* RF, i64* RI, i64 n_rec) {
    double ef = cash;
    for (int a = 0; a < A; ++a) {
        double sh = SA[SAI(SH, a)];
        if (sh != 0.0) ef += sh * PX(prices, t, a);
    }
    for (int a = 0; a < A; ++a) {
        if (PX(mask, t, a) && SA[SAI(PEND, a)] != SA[SAI(LAST, a)]) {
            double w = SA[SAI(PEND, a)];
            double px = PX(prices, t, a);
            if (px > 0.0 && ef > 0.0) {
                double dsh = w * ef / px - SA[SAI(SH, a)];
                if (dsh != 0.0) {
                    cash = fill(S, SA, A, P, p, a, t, dsh, px, ef, EXIT_SIGNAL, cash, fee_r,
                                slip_r, imp_k, imp_a, imp_max, PX(vol, t, a) * PX(cl, t, a),
                                rec_on, offs, RF, RI, n_rec);
                }
            }
            SA[SAI(LAST, a)] = w;
        }
    }
    return cash;
}

extern "C" __global__ void run_block(
    const i64 t0, const int B, const int A, const int P, const POS_T* pos,
    const double* op, const double* hi, const double* lo, const double* cl, const double* vol,
    const unsigned char* mask, const double* fund, const int has_fund, const double* maxpos,
    const double lev, const double fee_r, const double slip_r, const double imp_k,
    const double imp_a, const double imp_max, const double* sl, const double* tp,
    const double* tr, const int has_stops, const int fill_close, double* S, double* SA,
    double* rec_ret, const int do_ret, double* rec_eq, const int do_eq, double* rec_pos,
    const int do_pos, const int rec_on, const i64* offs, double* RF, i64* RI, const i64 n_rec)
{
    const int p = blockDim.x * blockIdx.x + threadIdx.x;
    if (p >= P) return;
    double mp = maxpos[p];
    double cash = S[SI(CASH)];
    double eprev = S[SI(EQ_PREV)];
    double peak = S[SI(PEAK)];
    double invpeak = S[SI(INV_PEAK)];
    double lp = S[SI(LAST_PEAK_T)];
    double trough = S[SI(TROUGH)];
    double maxdd = S[SI(MAX_DD)];
    double maxddur = S[SI(MAX_DD_DUR)];
    double sr = S[SI(SUM_R)];
    double sr2 = S[SI(SUM_R2)];
    double sd2 = S[SI(SUM_D2)];
    double expo = S[SI(EXPO)];
    bool ruined = S[SI(RUINED)] != 0.0;
    double slp = sl[p];
    double tpp = tp[p];
    double trp = tr[p];
    for (i64 i = 0; i < B; ++i) {
        i64 t = t0 + i;
        if (ruined) {
            if (do_ret) rec_ret[i * P + p] = 0.0;
            if (do_eq) rec_eq[i * P + p] = eprev;
            if (do_pos) for (int a = 0; a < A; ++a) rec_pos[(i * A + a) * P + p] = 0.0;
            continue;
        }
        // 1. fill the previous close's targets at this open
        if (!fill_close && changed(SA, A, P, p, t, mask)) {
            cash = rebalance(S, SA, A, P, p, t, op, mask, vol, cl, cash, fee_r, slip_r, imp_k,
                             imp_a, imp_max, rec_on, offs, RF, RI, n_rec);
        }
        // 2. stops inside the bar
        if (has_stops) {
            for (int a = 0; a < A; ++a) {
                double sh = SA[SAI(SH, a)];
                if (sh != 0.0 && PX(mask, t, a)) {
                    double e = SA[SAI(EPX, a)];
                    double b = SA[SAI(BEST, a)];
                    double s_lvl, t_lvl, l_sl, l_tr;
                    int s_rs = EXIT_STOP_LOSS;
                    if (sh > 0.0) {
                        l_sl = e * (1.0 - slp);
                        l_tr = b * (1.0 - trp);
                        s_lvl = l_sl;
                        if (l_tr > l_sl) { s_lvl = l_tr; s_rs = EXIT_TRAILING; }
                        t_lvl = e * (1.0 + tpp);
                    } else {
                        l_sl = e * (1.0 + slp);
                        l_tr = b * (1.0 + trp);
                        s_lvl = l_sl;
                        if (l_tr < l_sl) { s_lvl = l_tr; s_rs = EXIT_TRAILING; }
                        t_lvl = e * (1.0 - tpp);
                    }
                    double o = PX(op, t, a), h = PX(hi, t, a), lw = PX(lo, t, a);
                    double px = 0.0;
                    int reason = -1;
                    if (sh > 0.0) {
                        if (o <= s_lvl) { px = o; reason = s_rs; }
                        else if (o >= t_lvl) { px = o; reason = EXIT_TAKE_PROFIT; }
                        else if (lw <= s_lvl) { px = s_lvl; reason = s_rs; }
                        else if (h >= t_lvl) { px = t_lvl; reason = EXIT_TAKE_PROFIT; }
                    } else {
                        if (o >= s_lvl) { px = o; reason = s_rs; }
                        else if (o <= t_lvl) { px = o; reason = EXIT_TAKE_PROFIT; }
                        else if (h >= s_lvl) { px = s_lvl; reason = s_rs; }
                        else if (lw <= t_lvl) { px = t_lvl; reason = EXIT_TAKE_PROFIT; }
                    }
                    if (reason >= 0) {
                        cash = fill(S, SA, A, P, p, a, t, -sh, px, eprev, reason, cash, fee_r,
                                    slip_r, imp_k, imp_a, imp_max, PX(vol, t, a) * PX(cl, t, a),
                                    rec_on, offs, RF, RI, n_rec);
                    }
                }
            }
        }
        // 3. funding on positions held at the close
        if (has_fund) {
            for (int a = 0; a < A; ++a) {
                double sh = SA[SAI(SH, a)];
                if (sh != 0.0) {
                    double f = PX(fund, t, a) * sh * PX(cl, t, a);
                    cash -= f;
                    SA[SAI(TCOST, a)] += f;
                    S[SI(FUND)] += f;
                }
            }
        }
        // 3b. fill="close": this row's targets trade at this close
        if (fill_close) {
            process_row(pos, i, A, P, p, mp, lev, SA, PEND);
            if (changed(SA, A, P, p, t, mask)) {
                cash = rebalance(S, SA, A, P, p, t, cl, mask, vol, cl, cash, fee_r, slip_r,
                                 imp_k, imp_a, imp_max, rec_on, offs, RF, RI, n_rec);
            }
        }
        // 4. mark to the close
        double eq = cash;
        double held = 0.0;
        for (int a = 0; a < A; ++a) {
            double sh = SA[SAI(SH, a)];
            eq += sh * PX(cl, t, a);
            if (sh != 0.0) held = 1.0;
        }
        double r = (eq - eprev) / eprev;
        sr += r;
        sr2 += r * r;
        double m = fmin(r, 0.0);
        sd2 += m * m;
        expo += held;
        if (eq >= peak) {
            if (trough < peak) {
                double dd = 1.0 - trough * invpeak;
                if (dd > maxdd) maxdd = dd;
                double dur = (double)t - lp - 1.0;
                if (dur > maxddur) maxddur = dur;
            }
            peak = eq;
            invpeak = 1.0 / eq;
            lp = (double)t;
            trough = eq;
        } else if (eq < trough) {
            trough = eq;
        }
        if (eq <= 0.0) {
            for (int a = 0; a < A; ++a) {
                double sh = SA[SAI(SH, a)];
                if (sh != 0.0) {
                    cash = fill(S, SA, A, P, p, a, t, -sh, PX(cl, t, a), 0.0, EXIT_RUIN, cash,
                                0.0, 0.0, 0.0, imp_a, 0.0, 0.0, rec_on, offs, RF, RI, n_rec);
                }
            }
            ruined = true;
        }
        if (has_stops) {
            for (int a = 0; a < A; ++a) {
                double sh = SA[SAI(SH, a)];
                double c = PX(cl, t, a);
                if (sh > 0.0) {
                    if (c > SA[SAI(BEST, a)]) SA[SAI(BEST, a)] = c;
                } else if (sh < 0.0) {
                    if (c < SA[SAI(BEST, a)]) SA[SAI(BEST, a)] = c;
                }
            }
        }
        if (do_ret) rec_ret[i * P + p] = r;
        if (do_eq) rec_eq[i * P + p] = eq;
        if (do_pos) {
            for (int a = 0; a < A; ++a) {
                double sh = SA[SAI(SH, a)];
                rec_pos[(i * A + a) * P + p] =
                    (sh != 0.0 && eq != 0.0) ? sh * PX(cl, t, a) / eq : 0.0;
            }
        }
        eprev = eq;
        // 5. targets decided at this close, to fill at the next open
        if (!fill_close && !ruined) process_row(pos, i, A, P, p, mp, lev, SA, PEND);
    }
    S[SI(CASH)] = cash;
    S[SI(EQ_PREV)] = eprev;
    S[SI(PEAK)] = peak;
    S[SI(INV_PEAK)] = invpeak;
    S[SI(LAST_PEAK_T)] = lp;
    S[SI(TROUGH)] = trough;
    S[SI(MAX_DD)] = maxdd;
    S[SI(MAX_DD_DUR)] = maxddur;
    S[SI(SUM_R)] = sr;
    S[SI(SUM_R2)] = sr2;
    S[SI(SUM_D2)] = sd2;
    S[SI(EXPO)] = expo;
    S[SI(RUINED)] = ruined ? 1.0 : 0.0;
}
"""


def cuda_source(pos_type: str = "double") -> str:
    """The CUDA C source of the kernel for weights of ``pos_type`` (``double``/``float``)."""
    head = (
        "#define QA_NAN __longlong_as_double(0x7ff8000000000000LL)\n"
        + c_defines()
        + f"#define POS_T {pos_type}\n"
    )
    return head + _SOURCE


@lru_cache(maxsize=4)
def _kernel(pos_type: str) -> Any:
    import cupy as cp  # noqa: PLC0415

    return cp.RawKernel(cuda_source(pos_type), "run_block", options=("--fmad=false",))


def run_block(
    t0,
    pos,
    op,
    hi,
    lo,
    cl,
    vol,
    mask,
    fund,
    has_fund,
    maxpos,
    lev,
    fee_r,
    slip_r,
    imp_k,
    imp_a,
    imp_max,
    sl,
    tp,
    tr,
    has_stops,
    fill_close,
    S,
    SA,
    rec_ret,
    rec_eq,
    rec_pos,
    rec_on,
    offs,
    RF,
    RI,
) -> None:
    """Replay one block on the GPU; arguments as :func:`kernels_cpu.run_block_multi`, all
    arrays CuPy, C-contiguous (``pos`` float32 or float64, the rest float64 / bool / int64)."""
    B, A, P = (int(x) for x in pos.shape)
    if B == 0:
        return
    pos_type = "float" if pos.dtype == np.float32 else "double"
    kern = _kernel(pos_type)
    i32 = np.int32
    f64 = np.float64
    args = (
        np.int64(t0), i32(B), i32(A), i32(P), pos, op, hi, lo, cl, vol, mask, fund,
        i32(bool(has_fund)), maxpos, f64(lev), f64(fee_r), f64(slip_r), f64(imp_k),
        f64(imp_a), f64(imp_max), sl, tp, tr, i32(bool(has_stops)), i32(bool(fill_close)),
        S, SA, rec_ret, i32(rec_ret.shape[0] > 0), rec_eq, i32(rec_eq.shape[0] > 0), rec_pos,
        i32(rec_pos.shape[0] > 0), i32(bool(rec_on)), offs, RF, RI, np.int64(RF.shape[0]),
    )  # fmt: skip
    grid = ((P + THREADS - 1) // THREADS,)
    kern(grid, (THREADS,), args)


__all__ = ["NRF", "NRI", "THREADS", "cuda_source", "run_block"]
