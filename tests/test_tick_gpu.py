"""The market-making tick kernel's CUDA twin (:mod:`quantarena.engine.tick.gpu`) against the
Numba kernel on the real Binance USD-M capture:

* ``test_cuda_source_emulated_on_host``: the CUDA source compiled as C++ and run on the host,
  one "thread" per parameter set — the GPU algorithm checked on every machine;
* ``test_gpu_parity`` (marked ``gpu``): CuPy on a device, skipped without CUDA with the reason
  from ``quantarena.engine.backend.cuda_unavailable_reason()``.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from quantarena.engine.tick import core as C
from quantarena.engine.tick import load_events
from quantarena.engine.tick.features import market_features
from quantarena.engine.tick.gpu import cuda_source, run_mm_gpu
from quantarena.engine.tick.latency import SampledLatency
from quantarena.engine.tick.queue import PowerProb
from quantarena.engine.tick.replay import TickState, decision_mask
from quantarena.strategies.market_making import GLFT, MarketMaker
from quantarena.strategies.tick_base import default_venue

N_EVENTS = 120_000

_SHIM = r"""
#include <cmath>
#include <cstring>
using std::fabs; using std::rint; using std::floor; using std::ceil; using std::pow;
using std::log1p; using std::sqrt;
#define __global__
#define __device__
#define __forceinline__ inline
struct QaDim { int x; };
static QaDim blockIdx = {0}, blockDim = {1}, threadIdx = {0};
static inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, 8); return d; }
extern "C" void qa_set_block(int b) { blockIdx.x = b; }
"""


@pytest.fixture(scope="module")
def case(usdm_store: Path) -> dict:
    ev = load_events(usdm_store, "BINANCE-USDM:BTCUSDT").slice(0, N_EVENTS)
    base = default_venue(ev)
    venue = type(base)(
        queue=PowerProb(2.0),
        latency=SampledLatency(median_ns=5_000_000, sigma=0.7, seed=4),
        fees=base.fees,
        filters=base.filters,
    )
    cases = []
    grids = (
        (MarketMaker(requote_ms=50), {"gamma": [1e-3, 1e-2, 0.1], "k": [0.5, 5.0],
                                      "horizon_s": [0.1, 1.0], "min_half_spread": [0.5]}),
        (GLFT(requote_ms=50), {"gamma": [0.01, 0.1, 1.0, 5.0], "min_half_spread": [0.5, 1, 3],
                               "max_inventory": [3.0]}),
    )  # fmt: skip
    for agent, grid in grids:
        pop = agent.grid(**grid)
        prm = np.ascontiguousarray(agent.param_block(pop))
        cases.append((agent.quote_kind, prm))
    feed = venue.latency.feed(ev.ts, ev.recv)
    return {
        "ev": ev,
        "venue": venue,
        "cases": cases,
        "feed": feed,
        "decide": decision_mask(ev, feed, 50_000_000),
        "FT": market_features(ev, venue.filters.tick),
        "sample_ts": np.arange(ev.ts[0], ev.ts[-1], 10_000_000_000, dtype=np.int64)[1:],
        # funding every 30 s at 1 bp (more often than any venue, to exercise it)
        "fund_ts": np.arange(ev.ts[0], ev.ts[-1], 30_000_000_000, dtype=np.int64)[1:],
        "fund_rate": np.full(np.arange(ev.ts[0], ev.ts[-1], 30_000_000_000).shape[0] - 1, 1e-4),
    }


def _args(c: dict, quote_kind: int, prm: np.ndarray) -> dict:
    ev, venue = c["ev"], c["venue"]
    st = TickState.new(prm.shape[0], 2, c["sample_ts"], 0, 10_000.0)
    return {
        "ts": ev.ts, "kind": ev.kind, "side": ev.side, "px": ev.px, "qty": ev.qty,
        "prev": ev.prev, "bid": ev.bid, "bid_qty": ev.bid_qty, "ask": ev.ask,
        "ask_qty": ev.ask_qty, "top0": st.top, "feed": c["feed"],
        "decide": c["decide"].view(np.uint8), "FT": np.ascontiguousarray(c["FT"]),
        "quote_kind": quote_kind, "prm": prm, "V": venue.compile(use_depth=ev.has_depth),
        "draws": venue.latency.entry_draws(), "OF": st.OF, "OI": st.OI, "AC": st.AC,
        "FLT": st.FLT, "FL": st.FL, "sample_ts": st.sample_ts, "EQ": st.EQ, "k0": 0,
        "fund_ts": c["fund_ts"], "fund_rate": c["fund_rate"], "f0": 0,
    }  # fmt: skip


def _numba(a: dict) -> dict:
    C.run_mm(
        a["ts"], a["kind"], a["side"], a["px"], a["qty"], a["prev"], a["bid"], a["bid_qty"],
        a["ask"], a["ask_qty"], a["top0"], a["feed"], a["decide"].view(np.bool_), a["FT"],
        a["quote_kind"], a["prm"], a["V"], a["draws"], a["OF"], a["OI"], a["AC"], a["FLT"],
        a["FL"], a["sample_ts"], a["EQ"], a["k0"], a["fund_ts"], a["fund_rate"], a["f0"], 2,
    )  # fmt: skip
    return a


def _same(cpu: dict, other: dict) -> None:
    np.testing.assert_array_equal(cpu["OI"], other["OI"])
    np.testing.assert_allclose(cpu["AC"], other["AC"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(cpu["OF"], other["OF"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cpu["EQ"], other["EQ"], rtol=1e-12, atol=1e-9)
    # the case exercises queue fills, replaces and the inventory limit
    assert (cpu["AC"][:, C.A_MAKER_QTY] > 0).sum() >= cpu["AC"].shape[0] // 2


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory):
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to emulate the CUDA kernel on the host")
    d = tmp_path_factory.mktemp("tick_cuda_emul")
    (d / "k.cpp").write_text(_SHIM + cuda_source())
    lib = d / "k.so"
    subprocess.run(
        [cxx, "-O1", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC", "-o", str(lib),
         str(d / "k.cpp")],
        check=True, capture_output=True,
    )  # fmt: skip
    so = ctypes.CDLL(str(lib))

    def launch(fn_args: tuple, P: int) -> None:
        conv = []
        for v in fn_args:
            if isinstance(v, np.ndarray):
                assert v.flags.c_contiguous
                conv.append(ctypes.c_void_p(v.ctypes.data))
            else:
                conv.append(ctypes.c_int(int(v)))
        for p in range(P):
            so.qa_set_block(p)
            so.run_mm(*conv)

    return launch


@pytest.mark.parametrize("which", [0, 1], ids=["avellaneda_stoikov", "glft"])
def test_cuda_source_emulated_on_host(case: dict, emulated, which: int):
    kind, prm = case["cases"][which]
    cpu = _numba(_args(case, kind, prm))
    host = _args(case, kind, prm)
    run_mm_gpu(host, launch=emulated)
    _same(cpu, host)


@pytest.mark.gpu
@pytest.mark.parametrize("which", [0, 1], ids=["avellaneda_stoikov", "glft"])
def test_gpu_parity(case: dict, which: int):
    import cupy as cp

    kind, prm = case["cases"][which]
    cpu = _numba(_args(case, kind, prm))
    host = _args(case, kind, prm)
    dev = {k: (cp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in host.items()}
    run_mm_gpu(dev)
    back = {k: (cp.asnumpy(v) if isinstance(v, cp.ndarray) else v) for k, v in dev.items()}
    _same(cpu, back)


def _replay(case: dict, backend: str):
    from quantarena.engine.tick.replay import replay_mm

    kind, prm = case["cases"][1]
    return replay_mm(
        case["ev"], kind, prm, case["venue"], features=case["FT"], requote_ns=50_000_000,
        sample_ts=case["sample_ts"], cash=10_000.0, block=50_000, backend=backend,
    )  # fmt: skip


@pytest.mark.gpu
def test_gpu_replay_in_blocks_matches_cpu(case: dict):
    cpu, gpu = _replay(case, "cpu"), _replay(case, "gpu")
    np.testing.assert_allclose(cpu.AC, gpu.AC, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(cpu.EQ, gpu.EQ, rtol=1e-12, atol=1e-9)


def test_gpu_backend_without_cuda_says_why(case: dict):
    from quantarena.engine.backend import cuda_unavailable_reason

    why = cuda_unavailable_reason()
    if not why:
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="backend='gpu'"):
        _replay(case, "gpu")
