"""A host stand-in for CuPy, for checking the GPU *plumbing* on machines without a GPU.

Put ``tests/hostcupy`` first on ``PYTHONPATH`` and ``import cupy`` gives this module: NumPy
arrays in a subclass whose module reads ``cupy`` (so ``is_device_array`` and ``to_host`` treat
them as device arrays), every NumPy function returning that subclass, one fake device, and a
``RawKernel`` that compiles the CUDA source as C++ for the host (``__device__`` → ``static
inline``, ``-ffp-contract=off``) and runs its threads one after another, taking only the
argument types CuPy passes to a C kernel (``int32``, ``int64``, ``float64`` scalars and
C-contiguous arrays).

It checks how the GPU path is driven — argument packing of ``kernels_gpu.run_block``, device
arrays through the engine, the strategies' ``cupy`` branches, the GPU tests and the GPU check
— and proves nothing about CUDA itself (no parallel execution, no device memory, NumPy's
sequential reductions): only a real GPU does (``make gpu-check``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as _np
from numpy import *  # noqa: F403  (the array API; wrapped below)

__version__ = "0.0+host"


class ndarray(_np.ndarray):  # noqa: N801  (CuPy's name)
    """A NumPy array that says it is a CuPy one."""

    def get(self) -> _np.ndarray:
        return _np.array(self, copy=True).view(_np.ndarray)

    @property
    def data(self):  # a device pointer, as ``cupy.ndarray.data.ptr``
        return type("MemoryPointer", (), {"ptr": self.__array_interface__["data"][0]})()


ndarray.__module__ = "cupy._core.core"


def _wrap(x):
    if type(x) is _np.ndarray:
        return x.view(ndarray)
    if isinstance(x, tuple | list):
        return type(x)(_wrap(i) for i in x)
    return x


def _wrapped(f):
    @functools.wraps(f)
    def g(*a, **k):
        return _wrap(f(*a, **k))

    return g


for _name in dir(_np):
    _obj = getattr(_np, _name)
    if callable(_obj) and not isinstance(_obj, type) and not _name.startswith("_"):
        globals()[_name] = _wrapped(_obj)


def asnumpy(a) -> _np.ndarray:
    return _np.array(a, copy=True).view(_np.ndarray)


def from_dlpack(t):
    return _wrap(_np.from_dlpack(t))


class _Pool:
    def set_limit(self, size: int) -> None:
        pass

    def free_all_blocks(self) -> None:
        pass


def get_default_memory_pool() -> _Pool:
    return _Pool()


class cuda:  # noqa: N801
    class runtime:  # noqa: N801
        @staticmethod
        def getDeviceCount() -> int:  # noqa: N802
            return 1

        @staticmethod
        def driverGetVersion() -> int:  # noqa: N802
            return 13000

        @staticmethod
        def runtimeGetVersion() -> int:  # noqa: N802
            return 13000

        @staticmethod
        def getDeviceProperties(i: int) -> dict:  # noqa: N802
            return {"name": b"host stand-in (no GPU)", "totalGlobalMem": 1 << 30}

    class Device:
        def __init__(self, i: int = 0) -> None:
            pass

        @property
        def mem_info(self) -> tuple[int, int]:
            return (1 << 30, 1 << 30)

        def synchronize(self) -> None:
            pass


_SHIM = r"""
#include <cmath>
#include <cstdint>
#include <cstring>
#define __device__ static inline
#define __global__
static inline double __longlong_as_double(long long x) { double d; std::memcpy(&d, &x, 8); return d; }
struct Dim3 { int x; };
static Dim3 blockDim = {1}, blockIdx = {0}, threadIdx = {0};
extern "C" void qa_set_idx(int bd, int b, int t) { blockDim.x = bd; blockIdx.x = b; threadIdx.x = t; }
"""


class RawKernel:
    """The CUDA source compiled for the host; ``kernel(grid, block, args)`` runs each thread."""

    def __init__(self, code: str, name: str, options: tuple = ()) -> None:
        cxx = shutil.which("g++") or shutil.which("clang++")
        if cxx is None:
            raise RuntimeError("the host CuPy stand-in needs a C++ compiler (g++ or clang++)")
        src = _SHIM + code
        d = Path(tempfile.gettempdir()) / "quantarena-hostcupy"
        d.mkdir(exist_ok=True)
        so = d / f"{hashlib.sha1(src.encode()).hexdigest()[:16]}.so"
        if not so.exists():
            cpp = so.with_suffix(".cpp")
            cpp.write_text(src)
            tmp = so.with_suffix(f".{os.getpid()}.so")
            subprocess.run(
                [cxx, "-O1", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
                 "-o", str(tmp), str(cpp)],
                check=True, capture_output=True,
            )  # fmt: skip
            tmp.replace(so)
        self._lib = ctypes.CDLL(str(so))
        self._fn = getattr(self._lib, name)
        self._fn.restype = None

    def __call__(self, grid: tuple, block: tuple, args: tuple) -> None:
        cargs = []
        for a in args:
            if isinstance(a, _np.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError("RawKernel argument is not C-contiguous")
                cargs.append(ctypes.c_void_p(a.__array_interface__["data"][0]))
            elif isinstance(a, _np.int32):
                cargs.append(ctypes.c_int(int(a)))
            elif isinstance(a, _np.int64):
                cargs.append(ctypes.c_longlong(int(a)))
            elif isinstance(a, _np.float64):
                cargs.append(ctypes.c_double(float(a)))
            else:
                raise TypeError(f"RawKernel argument of type {type(a).__name__}: pass a NumPy "
                                "int32 / int64 / float64 scalar or an array")  # fmt: skip
        for b in range(int(grid[0])):
            for t in range(int(block[0])):
                self._lib.qa_set_idx(int(block[0]), b, t)
                self._fn(*cargs)
