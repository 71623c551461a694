"""Shared fixtures: paths to the bundled real market data (data/sample, see its README), and
the GPU markers.

* ``@pytest.mark.gpu``: needs CuPy and a CUDA device. Skipped otherwise, with the reason that
  holds here: CuPy not installed, CuPy installed but not importable, the CUDA driver/runtime
  failing (its error text), or no device.
* ``@pytest.mark.torch_cuda``: needs torch built with CUDA and seeing a device (skipped with
  the reason: torch missing, a CPU-only build, or no device).
* ``max_abs_diff``: a GPU test's CPU-vs-GPU comparison, recorded as a JUnit property
  ``max_abs_diff:<name>`` (``benchmarks/gpu_check.py`` reads them into its report).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


def cuda_skip_reason() -> str:
    """Why GPU tests cannot run here ("" when they can) — one source: the engine's backend."""
    from quantarena.engine.backend import cuda_unavailable_reason

    return cuda_unavailable_reason()


def torch_cuda_skip_reason() -> str:
    """Why torch-on-CUDA tests cannot run here ("" when they can)."""
    try:
        import torch
    except ModuleNotFoundError:
        return "torch is not installed (the ml extra)"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"
    try:
        if torch.cuda.is_available():
            return ""
    except Exception as exc:  # a driver too old for this torch
        return f"torch {torch.__version__} cannot use CUDA ({type(exc).__name__}: {exc})"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "torch_cuda: needs torch with CUDA (skipped without)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [i for i in items if "gpu" in i.keywords]
    torch_items = [i for i in items if "torch_cuda" in i.keywords]
    if gpu_items:
        reason = cuda_skip_reason()
        if reason:
            mark = pytest.mark.skip(reason=f"GPU test skipped: {reason}")
            for item in gpu_items:
                item.add_marker(mark)
    if torch_items:
        reason = torch_cuda_skip_reason()
        if reason:
            mark = pytest.mark.skip(reason=f"torch CUDA test skipped: {reason}")
            for item in torch_items:
                item.add_marker(mark)


def abs_diff(a: Any, b: Any) -> float:
    """Largest ``|a - b|`` over the elements (host or device arrays); a NaN on both sides
    counts as equal, a NaN on one side only as ``inf``."""
    from quantarena.engine.backend import to_host

    x = np.asarray(to_host(a), dtype=np.float64)
    y = np.asarray(to_host(b), dtype=np.float64)
    if x.shape != y.shape:
        raise AssertionError(f"shapes differ: {x.shape} vs {y.shape}")
    if x.size == 0:
        return 0.0
    nx, ny = np.isnan(x), np.isnan(y)
    if (nx != ny).any():
        return float("inf")
    d = np.abs(np.where(nx, 0.0, x) - np.where(ny, 0.0, y))
    return float(d.max())


@pytest.fixture
def max_abs_diff(record_property: Callable[[str, object], None]) -> Callable[..., float]:
    """``max_abs_diff(name, cpu, gpu)`` → the largest absolute difference, recorded as the
    JUnit property ``max_abs_diff:<name>`` (the largest one kept when a name repeats)."""
    seen: dict[str, float] = {}

    def record(name: str, a: Any, b: Any) -> float:
        d = abs_diff(a, b)
        seen[name] = max(d, seen.get(name, 0.0))
        record_property(f"max_abs_diff:{name}", repr(seen[name]))
        return d

    return record


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The folder of real exchange files shipped with the repo."""
    return SAMPLE


@pytest.fixture(scope="session")
def btc_1m_csv() -> Path:
    """FTX BTC-PERP 1-minute bars, 2021-12-31 → 2022-02-01 (45,031 rows)."""
    return SAMPLE / "btc-perp-20211231-20220201_1m.csv"


@pytest.fixture(scope="session")
def usdm_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the real Binance USD-M BTCUSDT capture of 2024-08-08 (book, quotes,
    trades), ingested once per session. Read it only: tests that write make their own."""
    from quantarena.data.store import Store

    root = tmp_path_factory.mktemp("usdm") / "store"
    Store(root).ingest([SAMPLE / "ticks" / "binance-usdm-BTCUSDT-20240808-capture.gz"])
    return root
