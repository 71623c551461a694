"""The GPU kernel against the CPU kernel.

* ``test_gpu_parity_*`` (marked ``gpu``, skipped without CUDA, with the reason): CuPy vs
  Numba on the same real data with stops and costs, one asset and two (one partly masked):
  metrics, returns, equity and recorded positions to a relative 1e-9, the same trades with
  the same exit reasons; a 2,000-set population (the agents' weights on the device are
  compared in test_strategies.py). Each test records its max |CPU - GPU| for the GPU
  check's report (``benchmarks/gpu_check.py``).
* ``test_cuda_source_emulated_on_host``: runs everywhere a C++ compiler is found. The CUDA
  source is compiled as C++ (``__device__`` -> ``static inline``, one loop iteration per
  thread) with ``-ffp-contract=off`` and driven through ``simulate`` in place of the Numba
  kernel, so the GPU algorithm is checked line by line on machines without a GPU.
"""

from __future__ import annotations

import ctypes
import importlib
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from quantarena.data.panel import BarPanel
from quantarena.engine import Costs, Fees, Funding, Slippage, Stops, VolumeImpact, simulate
from quantarena.engine.backend import to_host
from quantarena.engine.kernels_gpu import cuda_source

COSTS = Costs(
    fees=Fees(taker_bps=10.0),
    slippage=Slippage(bps=2.0),
    impact=VolumeImpact(k_bps=25.0, alpha=0.5),
    funding=Funding(rate_per_8h=1e-4),
)


@pytest.fixture(scope="module")
def bars(btc_1m_csv) -> BarPanel:
    df = pd.read_csv(btc_1m_csv, nrows=8_000)
    df.index = pd.to_datetime(df["timestamp"], utc=True)
    df["volume"] = df["volume"] / df["close"]  # USD -> BTC
    return BarPanel.from_frame(df, symbol="BTC-PERP")


@pytest.fixture(scope="module")
def weights(bars) -> np.ndarray:
    c = pd.Series(bars.close[:, 0])
    cols = [
        np.where(c.rolling(f).mean() > c.rolling(s).mean(), 1.0, -1.0) * size
        for f, s, size in [(5, 30, 0.9), (10, 60, 1.0), (20, 120, 0.7), (3, 15, 0.5)]
    ]
    w = np.stack(cols, axis=1)
    w[::53, 1] = np.nan
    return w


# the module (the package attribute of the same name is the function)
simulate_mod = importlib.import_module("quantarena.engine.simulate")

RECORD = ("returns", "equity", "positions")

STOPS = Stops(
    stop_loss=[0.004, 0.01, np.nan, 0.002], take_profit=0.008, trailing=[0.003, 0, 0.01, 0]
)


def _compare(a, b, rtol: float) -> None:
    for k in a.metrics:
        np.testing.assert_allclose(a.metrics[k], b.metrics[k], rtol=rtol, atol=1e-12, err_msg=k)
    for k in ("returns", "equity"):
        x, y = getattr(a, k), getattr(b, k)
        if x is not None:
            np.testing.assert_allclose(to_host(x), to_host(y), rtol=rtol, atol=1e-12, err_msg=k)
    if a.trades is not None:
        ta, tb = a.trades, b.trades
        assert len(ta) == len(tb)
        assert (ta.exit_reason.to_numpy() == tb.exit_reason.to_numpy()).all()
        np.testing.assert_allclose(ta.pnl.to_numpy(), tb.pnl.to_numpy(), rtol=rtol, atol=1e-12)


# ------------------------------------------------------------------ host emulation of CUDA

_SHIM = r"""
#include <cmath>
#include <cstdint>
#define __device__ static inline
#define __global__
#include <cstring>
static inline double __longlong_as_double(long long x) { double d; std::memcpy(&d, &x, 8); return d; }
struct Dim3 { int x; };
static Dim3 blockDim = {1}, blockIdx = {0}, threadIdx = {0};
"""

_DRIVER = r"""
extern "C" void emulate(
    const i64 t0, const int B, const int A, const int P, const POS_T* pos,
    const double* op, const double* hi, const double* lo, const double* cl, const double* vol,
    const unsigned char* mask, const double* fund, const int has_fund, const double* maxpos,
    const double lev, const double fee_r, const double slip_r, const double imp_k,
    const double imp_a, const double imp_max, const double* sl, const double* tp,
    const double* tr, const int has_stops, const int fill_close, double* S, double* SA,
    double* rec_ret, const int do_ret, double* rec_eq, const int do_eq, double* rec_pos,
    const int do_pos, const int rec_on, const i64* offs, double* RF, i64* RI, const i64 n_rec)
{
    for (int p = 0; p < P; ++p) {
        blockIdx.x = p;
        run_block(t0, B, A, P, pos, op, hi, lo, cl, vol, mask, fund, has_fund, maxpos, lev,
                  fee_r, slip_r, imp_k, imp_a, imp_max, sl, tp, tr, has_stops, fill_close, S,
                  SA, rec_ret, do_ret, rec_eq, do_eq, rec_pos, do_pos, rec_on, offs, RF, RI,
                  n_rec);
    }
}
"""


@pytest.fixture(scope="module")
def emulated_kernel(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to emulate the CUDA kernel on the host")
    d = tmp_path_factory.mktemp("cuda_emul")
    src = _SHIM + cuda_source("double") + _DRIVER
    (d / "k.cpp").write_text(src)
    lib = d / "k.so"
    subprocess.run(
        [cxx, "-O1", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC", "-o", str(lib),
         str(d / "k.cpp")],
        check=True, capture_output=True,
    )  # fmt: skip
    so = ctypes.CDLL(str(lib))
    fn = so.emulate
    fn.restype = None

    def ptr(a):
        return ctypes.c_void_p(a.ctypes.data)

    def run_block(t0, pos, op, hi, lo, cl, vol, mask, fund, has_fund, maxpos, lev, fee_r,
                  slip_r, imp_k, imp_a, imp_max, sl, tp, tr, has_stops, fill_close, S, SA,
                  rec_ret, rec_eq, rec_pos, rec_on, offs, RF, RI):  # fmt: skip
        B, A, P = pos.shape
        if B == 0:
            return
        arrays = [pos, op, hi, lo, cl, vol, mask, fund, maxpos, sl, tp, tr, S, SA, rec_ret,
                  rec_eq, rec_pos, offs, RF, RI]  # fmt: skip
        for a in arrays:
            assert a.flags.c_contiguous
        assert pos.dtype == np.float64 and mask.dtype == np.bool_
        Ci, D = ctypes.c_int, ctypes.c_double
        fn(
            ctypes.c_int64(t0), Ci(B), Ci(A), Ci(P), ptr(pos), ptr(op), ptr(hi), ptr(lo),
            ptr(cl), ptr(vol), ptr(mask), ptr(fund), Ci(bool(has_fund)), ptr(maxpos), D(lev),
            D(fee_r), D(slip_r), D(imp_k), D(imp_a), D(imp_max), ptr(sl), ptr(tp), ptr(tr),
            Ci(bool(has_stops)), Ci(bool(fill_close)), ptr(S), ptr(SA), ptr(rec_ret),
            Ci(rec_ret.shape[0] > 0), ptr(rec_eq), Ci(rec_eq.shape[0] > 0), ptr(rec_pos),
            Ci(rec_pos.shape[0] > 0), Ci(bool(rec_on)), ptr(offs), ptr(RF), ptr(RI),
            ctypes.c_int64(RF.shape[0]),
        )  # fmt: skip

    return run_block


@pytest.mark.parametrize(
    "kw",
    [
        dict(costs=COSTS, stops=STOPS),
        dict(costs=COSTS, stops=STOPS, fill="close"),
        dict(costs=Costs.default(), max_position=0.8, leverage=0.9),
    ],
    ids=["stops+costs", "fill-close", "plain"],
)
def test_cuda_source_emulated_on_host(bars, weights, emulated_kernel, monkeypatch, kw):
    common = dict(record=("returns", "equity", "positions"), trades=True, backend="cpu", block=1500)
    cpu = simulate(bars, weights, **kw, **common)
    monkeypatch.setattr(simulate_mod, "_kernel", lambda be: emulated_kernel)
    emu = simulate(bars, weights, **kw, **common)
    _compare(cpu, emu, rtol=1e-12)
    assert cpu.metrics["n_trades"].min() > 20


def _multi(bars, weights) -> tuple[BarPanel, np.ndarray]:
    """Two assets (the series and its reverse), 20 masked bars on the first, opposite
    weights on each."""
    o = np.stack([bars.open[:, 0], bars.open[::-1, 0]], 1)
    c = np.stack([bars.close[:, 0], bars.close[::-1, 0]], 1)
    h = np.maximum(np.stack([bars.high[:, 0], bars.high[::-1, 0]], 1), np.maximum(o, c))
    lo = np.minimum(np.stack([bars.low[:, 0], bars.low[::-1, 0]], 1), np.minimum(o, c))
    v = np.stack([bars.volume[:, 0], bars.volume[::-1, 0]], 1)
    multi = BarPanel.from_arrays(bars.ts, o, h, lo, c, v, symbols=["A", "B"])
    mask = multi.mask.copy()
    mask[500:520, 0] = False
    multi.mask = mask
    return multi, np.stack([weights * 0.6, -weights * 0.6], axis=1)


def test_cuda_source_emulated_multi_asset(bars, weights, emulated_kernel, monkeypatch):
    multi, w = _multi(bars, weights)
    kw = dict(costs=COSTS, stops=STOPS, record=("equity", "positions"), trades=True, block=777)
    cpu = simulate(multi, w, backend="cpu", **kw)
    monkeypatch.setattr(simulate_mod, "_kernel", lambda be: emulated_kernel)
    emu = simulate(multi, w, backend="cpu", **kw)
    _compare(cpu, emu, rtol=1e-12)


def _crash(bars, weights) -> tuple[BarPanel, np.ndarray]:
    """The bars with every price from bar 4,000 on cut to 30% (a gap down), and leveraged
    weights (2x long, one set short): two sets are ruined (equity <= 0), one profits."""
    f = np.ones(bars.n_bars)
    f[4000:] = 0.3
    o, h, lo, c = (getattr(bars, n)[:, 0] * f for n in ("open", "high", "low", "close"))
    crash = BarPanel.from_arrays(bars.ts, o, h, lo, c, bars.volume[:, 0], symbols=["X"])
    w = np.abs(weights) * 2.0
    w[:, 1] *= -1.0
    return crash, w


RUIN = dict(costs=COSTS, max_position=2.0, leverage=2.0, record=("equity", "positions"))


def test_cuda_source_emulated_ruin(bars, weights, emulated_kernel, monkeypatch):
    crash, w = _crash(bars, weights)
    cpu = simulate(crash, w, backend="cpu", trades=True, **RUIN)
    assert (cpu.trades.exit_reason == "ruin").sum() == 2
    monkeypatch.setattr(simulate_mod, "_kernel", lambda be: emulated_kernel)
    emu = simulate(crash, w, backend="cpu", trades=True, **RUIN)
    _compare(cpu, emu, rtol=1e-12)


# ------------------------------------------------------------------ real GPU parity
#
# Tolerance: the kernel is compiled with --fmad=false, so float64 results match the CPU's to
# rounding; ``pow`` in the impact model may differ in the last bit, which a path can carry
# along. RTOL = 1e-9 relative on metrics and curves, and exactly the same trades (count,
# exit reasons, bars, params, assets).

RTOL = 1e-9


def _compare_recorded(cpu, gpu, diff, tag: str) -> None:
    """``_compare`` plus recorded positions and every trade column; each max |cpu - gpu| is
    recorded for the GPU check's report."""
    assert gpu.backend == "gpu" and cpu.backend == "cpu"
    _compare(cpu, gpu, rtol=RTOL)
    for k in ("returns", "equity", "positions"):
        a, b = getattr(cpu, k), getattr(gpu, k)
        if a is not None:
            diff(f"{tag}:{k}", a, b)
            np.testing.assert_allclose(to_host(b), to_host(a), rtol=RTOL, atol=1e-12, err_msg=k)
    for k, v in cpu.metrics.items():
        diff(f"{tag}:metrics", v, gpu.metrics[k])
    if cpu.trades is not None:
        ta, tb = cpu.trades, gpu.trades
        for col in ("param", "asset", "entry_bar", "exit_bar", "direction", "exit_reason"):
            assert (ta[col].to_numpy() == tb[col].to_numpy()).all(), col
        for col in ("size", "entry_price", "exit_price", "pnl", "return"):
            diff(f"{tag}:trades.{col}", ta[col].to_numpy(), tb[col].to_numpy())
            np.testing.assert_allclose(
                tb[col].to_numpy(), ta[col].to_numpy(), rtol=RTOL, atol=1e-12, err_msg=col
            )


@pytest.mark.gpu
@pytest.mark.parametrize("fill", ["open", "close"])
def test_gpu_parity_one_asset_with_stops(bars, weights, fill, max_abs_diff):
    kw = dict(costs=COSTS, stops=STOPS, fill=fill, record=RECORD, trades=True)
    cpu = simulate(bars, weights, backend="cpu", **kw)
    gpu = simulate(bars, weights, backend="gpu", **kw)
    _compare_recorded(cpu, gpu, max_abs_diff, f"engine-1asset-{fill}")
    reasons = set(cpu.trades.exit_reason)
    assert {"stop_loss", "take_profit", "trailing_stop"} <= reasons, reasons  # stops were exercised


@pytest.mark.gpu
def test_gpu_parity_several_assets_masked_with_stops(bars, weights, max_abs_diff):
    multi, w = _multi(bars, weights)
    kw = dict(costs=COSTS, stops=STOPS, record=RECORD, trades=True, block=777)
    cpu = simulate(multi, w, backend="cpu", **kw)
    gpu = simulate(multi, w, backend="gpu", **kw)
    _compare_recorded(cpu, gpu, max_abs_diff, "engine-2assets")
    assert set(cpu.trades.asset) == {"A", "B"}


@pytest.mark.gpu
def test_gpu_parity_float32_source_and_streaming(bars, weights, max_abs_diff):
    import cupy as cp

    class Source:
        n_params = weights.shape[1]

        def __call__(self, t0, t1):
            return cp.asarray(weights[t0:t1], dtype=cp.float32)

    w32 = weights.astype(np.float32).astype(np.float64)
    kw = dict(costs=Costs.default(), stops=STOPS, record=("returns",))
    cpu = simulate(bars, w32, backend="cpu", block=100_000, **kw)
    gpu = simulate(bars, Source(), backend="gpu", block=333, **kw)
    _compare(cpu, gpu, rtol=RTOL)
    max_abs_diff("engine-float32-source:returns", cpu.returns, gpu.returns)


@pytest.mark.gpu
def test_gpu_parity_large_population_metrics(bars, max_abs_diff):
    """2,000 parameter sets (many thread blocks, a partial last block) with every cost."""
    rng = np.random.default_rng(3)
    P = 2_000
    base = np.sign(rng.standard_normal((bars.n_bars // 40 + 1, P)))
    w = np.repeat(base, 40, axis=0)[: bars.n_bars] * rng.uniform(0.1, 1.0, P)
    kw = dict(costs=COSTS, stops=Stops(stop_loss=0.01, trailing=0.02))
    cpu = simulate(bars, w, backend="cpu", **kw)
    gpu = simulate(bars, w, backend="gpu", **kw)
    _compare(cpu, gpu, rtol=RTOL)
    for k, v in cpu.metrics.items():
        max_abs_diff("engine-2000params:metrics", v, gpu.metrics[k])


@pytest.mark.gpu
def test_gpu_parity_ruin(bars, weights, max_abs_diff):
    """Sets whose equity falls to zero are closed out at the close and stay flat."""
    crash, w = _crash(bars, weights)
    cpu = simulate(crash, w, backend="cpu", trades=True, **RUIN)
    gpu = simulate(crash, w, backend="gpu", trades=True, **RUIN)
    _compare_recorded(cpu, gpu, max_abs_diff, "engine-ruin")
    assert (gpu.trades.exit_reason == "ruin").sum() == 2
