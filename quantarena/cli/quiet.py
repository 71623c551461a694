"""Keep the terminal for results: library noise off (unless ``--verbose``), a status line
while Numba compiles the kernels on a first run.

* :func:`quiet_library_noise` silences messages a user can do nothing about: Optuna's
  experimental-feature warnings, MLflow's / Alembic's database-setup logs, Ray's hints
  about its own settings, torch's warning about read-only NumPy arrays. ``--verbose``
  (a global option) leaves them on. Ray workers started from this process inherit the
  environment part (``MLFLOW_LOGGING_LEVEL``, ``PYTHONWARNINGS``).
* :func:`kernels_cold` tells whether Numba's on-disk cache lacks the compiled kernels (a
  first run, or sources changed); :func:`compiling_status` then shows "compiling kernels
  (first run only)" on stderr for as long as the block runs.

Only the standard library and rich are imported at module level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["compiling_status", "kernels_cold", "quiet_library_noise"]

#: (message regex, category name) of warnings hidden without --verbose
_WARNINGS = (
    r".*is experimental \(supported from",  # optuna ExperimentalWarning
    r".*[Aa]rgument .* is an experimental feature",  # optuna, older wording
    r"The given NumPy array is not writable",  # torch.from_numpy on a read-only view
)
#: logger -> level without --verbose (child loggers keep their level when a library
#: configures its root logger at import)
_LOGGERS = {
    "alembic": logging.WARNING,
    "mlflow.store.db.utils": logging.WARNING,
    "ray._private.worker": logging.WARNING,  # "Started a local Ray instance."
    "ray._private.authentication.authentication_token_setup": logging.ERROR,  # auth hint
}
#: environment read by libraries in this process and in Ray workers started from it
_ENV = {
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # tqdm bars per downloaded file
}

#: kernel modules whose Numba cache decides "cold"
_KERNEL_MODULES = ("quantarena.engine.kernels_cpu", "quantarena.strategies.kernels")


def quiet_library_noise() -> None:
    """Hide third-party warnings and info logs a user cannot act on (see the module doc)."""
    for pattern in _WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name, level in _LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    for k, v in _ENV.items():
        os.environ.setdefault(k, v)
    # Ray workers are new processes: PYTHONWARNINGS carries the torch filter to them
    torch_ro = "ignore:The given NumPy array is not writable"
    current = os.environ.get("PYTHONWARNINGS", "")
    if torch_ro not in current:
        os.environ["PYTHONWARNINGS"] = ",".join(p for p in (current, torch_ro) if p)


def _cache_dirs(source: Path) -> list[Path]:
    """Where Numba keeps the cache of ``source`` (NUMBA_CACHE_DIR, the ``__pycache__``
    beside it, or a user-wide folder when that is read-only)."""
    base = os.environ.get("NUMBA_CACHE_DIR")
    if base:
        return [Path(base)]
    return [source.parent / "__pycache__", Path.home() / ".cache" / "numba"]


def kernels_cold() -> bool:
    """True when Numba has no up-to-date cache of a kernel module: the next engine call
    compiles for 10-25 s. False when every module has cache files newer than its source.
    Reads file names and times only (imports nothing)."""
    import importlib.util

    for mod in _KERNEL_MODULES:
        spec = importlib.util.find_spec(mod)
        if spec is None or not spec.origin:
            continue
        src = Path(spec.origin)
        stem = src.stem + "."
        mtime = src.stat().st_mtime
        found = False
        for d in _cache_dirs(src):
            if not d.is_dir():
                continue
            for idx in d.rglob(f"{stem}*.nbi"):
                if idx.stat().st_mtime >= mtime:
                    found = True
                    break
            if found:
                break
        if not found:
            return True
    return False


@contextlib.contextmanager
def compiling_status(enabled: bool = True, *, console: Any = None) -> Iterator[None]:
    """Show "compiling kernels (first run only)" on stderr (or ``console``, a rich
    Console) while the block runs, when :func:`kernels_cold` says Numba will compile;
    nothing otherwise."""
    if not enabled or not kernels_cold():
        yield
        return
    from rich.console import Console
    from rich.errors import LiveError

    console = console or Console(stderr=True)
    text = "compiling kernels (first run only, 10-25 s)"
    status = console.status(text)
    try:
        status.start()
    except LiveError:  # another live display owns the terminal (older rich)
        console.print(text)
        yield
        return
    try:
        yield
    finally:
        status.stop()
