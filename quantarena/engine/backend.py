"""The array backend: NumPy + Numba on the CPU, CuPy on a CUDA GPU, chosen once.

``get_backend("auto")`` returns the GPU backend only when CuPy imports and sees a CUDA
device; otherwise the CPU one. CuPy is imported lazily, here and nowhere at module level,
so the package works without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

BACKENDS = ("auto", "cpu", "gpu")


class BackendError(RuntimeError, ValueError):
    """The requested backend cannot be used here (one-line message with what to do). A
    ``ValueError`` too, so the command line reports it as one line like any bad option."""


@dataclass(frozen=True)
class Backend:
    """A backend: its name (``"cpu"`` or ``"gpu"``) and its array module ``xp``."""

    name: str
    xp: ModuleType

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """``a`` as an array on this backend's device (no copy when already there)."""
        return self.xp.asarray(a, dtype=dtype)


@lru_cache(maxsize=1)
def _cupy_or_reason() -> tuple[ModuleType | None, str]:
    try:
        import cupy  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if exc.name == "cupy":
            return None, "CuPy is not installed"
        return None, f"CuPy is installed but does not import ({type(exc).__name__}: {exc})"
    except Exception as exc:  # a broken CUDA install, a CuPy built for another CUDA
        return None, f"CuPy is installed but does not import ({type(exc).__name__}: {exc})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, driver too old for this CuPy, no device node
        text = " ".join(str(exc).split()) or "no message"
        return None, (
            f"CuPy is installed but the CUDA driver/runtime fails ({type(exc).__name__}: {text})"
        )
    if n < 1:
        return None, "CuPy is installed but sees no CUDA device"
    return cupy, ""


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return _cupy_or_reason()[0] is not None


def cuda_unavailable_reason() -> str:
    """Why the GPU backend cannot be used here, in one line ("" when it can): CuPy not
    installed, CuPy installed but not importable, the CUDA driver/runtime failing (with its
    error text), or no device."""
    return _cupy_or_reason()[1]


def get_backend(name: str = "auto") -> Backend:
    """The backend called ``name``: ``"auto"`` (GPU if CUDA is usable, else CPU), ``"cpu"``
    or ``"gpu"`` (an error when CUDA is not usable)."""
    if isinstance(name, Backend):
        return name
    key = str(name).lower().strip()
    if key not in BACKENDS:
        raise BackendError(f"unknown backend {name!r} (--backend): use one of auto, cpu, gpu")
    if key == "cpu":
        return Backend("cpu", np)
    cupy, reason = _cupy_or_reason()
    if cupy is not None:
        return Backend("gpu", cupy)
    if key == "gpu":
        raise BackendError(
            f"backend 'gpu' (--backend gpu) requested but {reason} — install the gpu extra "
            'on a CUDA machine: pip install "quantarena[gpu]", or use --backend cpu '
            "(backend='cpu')"
        )
    return Backend("cpu", np)


def array_module(a: Any) -> ModuleType:
    """``numpy`` or ``cupy``: the module that owns array ``a``."""
    mod = type(a).__module__
    if mod.startswith("cupy"):
        import cupy  # noqa: PLC0415

        return cupy
    return np


def is_device_array(a: Any) -> bool:
    """True for a CuPy array."""
    return type(a).__module__.startswith("cupy")


def to_host(a: Any) -> np.ndarray:
    """``a`` as a NumPy array on the host (a no-op for NumPy arrays)."""
    if a is None:
        return None  # type: ignore[return-value]
    if is_device_array(a):
        return a.get()
    return np.asarray(a)
