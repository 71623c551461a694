"""Shared fixtures: paths to the bundled real market data (data/sample, see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


def _has_cuda() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


HAS_CUDA = _has_cuda()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="no CUDA device: GPU tests run only where CuPy sees a GPU")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The folder of real exchange files shipped with the repo."""
    return SAMPLE


@pytest.fixture(scope="session")
def btc_1m_csv() -> Path:
    """FTX BTC-PERP 1-minute bars, 2021-12-31 → 2022-02-01 (45,031 rows)."""
    return SAMPLE / "btc-perp-20211231-20220201_1m.csv"
