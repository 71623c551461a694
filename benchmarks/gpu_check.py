"""The GPU check: one command that proves CPU/GPU parity and measures the GPU.

``make gpu-check`` (``python -m benchmarks.gpu_check [--out bench-output/gpu-check.md]``):

1. Where CuPy sees no CUDA device it prints one line saying why (CuPy not installed, CuPy
   not importable, the CUDA driver/runtime failing, no device) and exits 0, running nothing.
2. Wheels in ``.whl/`` (made by ``make gpu-wheels`` on a machine with network) are installed
   with ``pip install --no-index --no-deps --target <tmp>/quantarena-gpu-site`` and put on
   the path of this process and of the test and benchmark subprocesses.
3. Every GPU test runs (``pytest -m "gpu or torch_cuda"`` over the files that hold one): the
   engine for one and several assets, the strategies, the ML agent on CUDA, a tournament in
   process and, where Ray is installed, on Ray. Each test's max |CPU - GPU| comes back as a JUnit property.
   Tests that need Ray, MLflow or Optuna are skipped with the reason where those are missing.
4. The GPU benchmarks, each in its own process with a time limit: the engine kernel's
   bar-parameter updates/s at growing populations (weights resident on the device) against
   the CPU on the same machine; the MA-crossover grid end to end; the tournament benchmark's
   in-process form on the GPU (8 agents × 1,000 sets, 8 weekly rounds, then 52 if time
   allows); batched Optuna tuning where Optuna is installed (else skipped with the reason).
5. One report, Markdown and JSON side by side (``--out`` and the same path with ``.json``),
   rewritten after every step so that a run cut short still leaves what it measured. The
   Markdown is meant to be pasted into docs/benchmarks.md's GPU section.

``python -m benchmarks.gpu_check wheels [--dest .whl] [--dry-run]`` (``make gpu-wheels``)
downloads, for Python 3.12 manylinux x86_64, the wheels that the check needs beyond what the
GPU image ships (see :data:`IMAGE_HAS`): the closure of quantarena's core dependencies
(pyproject.toml, less the shell-only Ray/MLflow/Optuna/Redis) and the test tools, pinned to
the versions installed here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("bench-output") / "gpu-check.md"
WHEEL_DIR = Path(".whl")
SITE = Path(tempfile.gettempdir()) / "quantarena-gpu-site"

#: shell dependencies the check runs without (tests needing them are skipped with the reason)
SHELL_ONLY = ("ray", "mlflow", "optuna", "cmaes", "redis")
#: what the GPU tests need beyond the core dependencies
TEST_DEPS = ("pytest", "pytest-timeout", "hypothesis")
#: distributions the GPU image ships (Python 3.12, CUDA 13): not downloaded by ``wheels``.
#: ``--have`` replaces this list (e.g. with a ``pip freeze`` of another image).
IMAGE_HAS = (
    "numpy", "pandas", "pyarrow", "numba", "llvmlite", "torch", "cupy-cuda13x", "pytest",
    "pluggy", "iniconfig", "packaging", "pytest-timeout", "hypothesis", "attrs",
    "sortedcontainers", "scipy", "matplotlib", "contourpy", "cycler", "fonttools",
    "kiwisolver", "pillow", "pyparsing", "python-dateutil", "six", "pytz", "tzdata", "pyyaml",
    "rich", "typer", "click", "shellingham", "pygments", "markdown-it-py", "mdurl",
    "fastrlock", "cuda-pathfinder", "setuptools", "filelock", "fsspec",
    "jinja2", "markupsafe", "networkx", "sympy", "mpmath", "triton",
)  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
#: modules the parity tests import; a missing one is named at the start of the report
NEEDED_MODULES = (
    "numpy", "pandas", "pyarrow", "numba", "scipy", "pydantic", "yaml", "matplotlib",
    "pytest", "hypothesis", "torch", "cupy",
)  # fmt: skip
OPTIONAL_MODULES = ("ray", "mlflow", "optuna")
BENCHES = ("kernel", "ma_grid", "tournament", "tuning")


# ------------------------------------------------------------------------------ environment


def gpu_reason() -> str:
    """Why there is no usable GPU here ("" when there is): the engine backend's reason."""
    from quantarena.engine.backend import cuda_unavailable_reason

    return cuda_unavailable_reason()


def install_wheels(wheel_dir: Path, site: Path = SITE) -> dict[str, Any]:
    """Install ``wheel_dir/*.whl`` into ``site`` (no index, no dependency resolution) and put
    ``site`` first on this process's path and on ``PYTHONPATH`` for its subprocesses."""
    wheels = sorted(Path(wheel_dir).glob("*.whl"))
    if not wheels:
        return {"status": "none", "dir": str(wheel_dir)}
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
           "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site),
           *map(str, wheels)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"status": "failed", "error": (out.stderr or out.stdout)[-2000:]}
    _prepend_path(site)
    return {"status": "installed", "wheels": [w.name for w in wheels], "site": str(site)}


def _prepend_path(site: Path) -> None:
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    old = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), old) if p)


def _run(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _cuda_version(v: int) -> str:
    """CUDA's integer version (1000 * major + 10 * minor) as ``major.minor``."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def environment() -> dict[str, Any]:
    """The device, driver, CUDA and library versions, and which modules are missing."""
    env: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "host": platform.node(),
    }
    try:
        import cupy

        rt = cupy.cuda.runtime
        props = rt.getDeviceProperties(0)
        name = props.get("name", b"")
        env["device"] = name.decode() if isinstance(name, bytes) else str(name)
        env["device_memory_mib"] = int(props.get("totalGlobalMem", 0)) // 2**20
        env["device_count"] = int(rt.getDeviceCount())
        env["cuda_driver"] = _cuda_version(int(rt.driverGetVersion()))
        env["cuda_runtime"] = _cuda_version(int(rt.runtimeGetVersion()))
        env["cupy"] = cupy.__version__
    except Exception as exc:  # the report says what could not be read
        env["cupy_error"] = f"{type(exc).__name__}: {exc}"
    smi = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader"])  # fmt: skip
    if smi:
        env["nvidia_smi"] = smi.splitlines()[0]
        parts = [p.strip() for p in env["nvidia_smi"].split(",")]
        if len(parts) >= 2:
            env["driver"] = parts[1]
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda or "none (CPU build)"
        env["torch_sees_gpu"] = bool(torch.cuda.is_available())
    except Exception as exc:
        env["torch"] = f"not importable ({type(exc).__name__})"
    for mod in ("numba", "numpy", "pandas"):
        try:
            env[mod] = importlib.import_module(mod).__version__
        except Exception:
            env[mod] = "missing"
    env["missing"] = [m for m in NEEDED_MODULES if not _has(m)]
    env["missing_optional"] = [m for m in OPTIONAL_MODULES if not _has(m)]
    return env


def _has(module: str) -> bool:
    """Whether ``module`` is importable here (without importing it)."""
    if sys.modules.get(module) is not None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# ------------------------------------------------------------------------------ tests


def gpu_test_files(tests_dir: Path = ROOT / "tests") -> list[Path]:
    """The test files holding at least one test marked ``gpu`` or ``torch_cuda`` (a decorator
    line, or a module-level ``pytestmark``)."""
    mark = re.compile(
        r"^\s*(@pytest\.mark\.(gpu|torch_cuda)\b|pytestmark\s*=.*pytest\.mark\.gpu\b)", re.M
    )
    return sorted(p for p in Path(tests_dir).glob("test_*.py") if mark.search(p.read_text()))


def parse_junit(path: Path) -> list[dict[str, Any]]:
    """Per test case: ``id``, ``outcome`` (passed / failed / error / skipped), ``seconds``,
    ``message`` and ``diffs`` (its ``max_abs_diff:<name>`` properties, the largest kept)."""
    root = ET.parse(path).getroot()
    rows = []
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = (el.get("message") or el.text or "").strip()
                break
        diffs: dict[str, float] = {}
        for prop in case.iter("property"):
            name = prop.get("name", "")
            if name.startswith("max_abs_diff:"):
                key = name.split(":", 1)[1]
                diffs[key] = max(float(prop.get("value", "nan")), diffs.get(key, -math.inf))
        file = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        rows.append({
            "id": f"{Path(file).name}::{case.get('name')}",
            "outcome": outcome,
            "seconds": float(case.get("time", 0) or 0),
            "message": " ".join(message.split())[:300],
            "diffs": diffs,
        })  # fmt: skip
    return rows


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_tests(files: Sequence[Path], timeout_s: float, work: Path) -> dict[str, Any]:
    """``pytest -m "gpu or torch_cuda"`` over ``files`` in a subprocess; the parsed JUnit
    report."""
    junit = work / "gpu-tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu or torch_cuda", "-q", "-rs",
           "-p", "no:cacheprovider", f"--junitxml={junit}", "-o", "junit_family=xunit1",
           *map(str, files)]  # fmt: skip
    t0 = time.perf_counter()
    status = "ran"
    # SIGINT back to its default in the child: a parent that ignores it (a library may set
    # SIG_IGN) would pass that on, and Python would then not raise KeyboardInterrupt — pytest
    # killed after the grace period, with no report of what it ran
    proc = subprocess.Popen(cmd, cwd=ROOT, preexec_fn=_default_sigint)
    try:
        rc: int | None = proc.wait(timeout=max(timeout_s, 1))
    except subprocess.TimeoutExpired:  # interrupt: pytest still writes what it has run
        status = "timeout"
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    res: dict[str, Any] = {"status": status, "returncode": rc,
                           "seconds": time.perf_counter() - t0, "cases": []}  # fmt: skip
    if junit.exists():
        res["cases"] = parse_junit(junit)
    return res


# ------------------------------------------------------------------------------ benchmarks


class _Console:
    def print(self, *a: Any, **k: Any) -> None:
        print(*a, flush=True)


def _device_blocks(xp: Any, n_params: int, dtype: Any, block: int) -> Any:
    """Four ``(block, P)`` weight blocks on the device: the kernel benchmark's pattern (a
    level in -1, 0, 1 changing about every 50 bars), tiled to ``P`` columns with a random
    sign per column."""
    import numpy as np

    from benchmarks.bench_engine_kernel import BLOCK, _BlockSource

    assert block == BLOCK
    base = _BlockSource(min(n_params, 1000)).blocks.astype(dtype)
    reps = -(-n_params // base.shape[2])
    sign = np.where(np.random.default_rng(5).random(n_params) < 0.5, -1.0, 1.0).astype(dtype)
    arr = xp.tile(xp.asarray(base), (1, 1, reps))[:, :, :n_params]
    return xp.ascontiguousarray(arr * xp.asarray(sign))


class _Blocks:
    def __init__(self, blocks: Any, block: int) -> None:
        self.blocks, self.block, self.n_params = blocks, block, int(blocks.shape[2])

    def __call__(self, t0: int, t1: int) -> Any:
        return self.blocks[(t0 // self.block) % 4][: t1 - t0]


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _metric_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    import numpy as np

    d = 0.0
    for k, v in a.items():
        x, y = np.asarray(v, dtype=float), np.asarray(b[k], dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        if (np.isfinite(x) != np.isfinite(y)).any():
            return math.inf
        if ok.any():
            d = max(d, float(np.abs(x[ok] - y[ok]).max()))
    return d


def bench_kernel(quick: bool = False) -> list[dict[str, Any]]:
    """Engine kernel: bar-parameter updates/s on the GPU at growing populations (weights on
    the device, so the figure is the kernel's), the CPU on the same machine for reference."""
    import cupy as cp
    import numpy as np

    from benchmarks.bench_engine_kernel import BLOCK, _BlockSource, _panel
    from quantarena.engine import Costs, Stops, simulate

    n_bars = 20_000 if quick else 200_000
    sizes = (64, 256) if quick else (1_000, 10_000, 100_000)
    bars = _panel(n_bars)
    costs = Costs.default()
    stops = Stops(stop_loss=0.02, trailing=0.03)
    rows: list[dict[str, Any]] = []

    def sync_run(src: Any, backend: str, **kw: Any) -> Any:
        res = simulate(bars, src, costs, backend=backend, block=BLOCK, **kw)
        cp.cuda.Device().synchronize()
        return res

    warm = _Blocks(_device_blocks(cp, 8, np.float32, BLOCK), BLOCK)
    simulate(bars.select(slice(0, 5000)), warm, costs, backend="gpu", block=BLOCK)
    simulate(bars.select(slice(0, 5000)), _BlockSource(8), costs, backend="cpu", block=BLOCK)
    # CPU reference (all cores) and parity at the smallest size
    P0 = sizes[0]
    host = _BlockSource(P0)
    host.blocks = cp.asnumpy(_device_blocks(cp, P0, np.float64, BLOCK))
    cpu_s, cpu_res = _best(lambda: sync_run(host, "cpu"), 1 if quick else 2)
    rows.append({
        "case": f"CPU, all {os.cpu_count()} cores, fees+slippage ({P0:,} params x {n_bars:,} bars)",
        "seconds": cpu_s, "M updates/s": n_bars * P0 / cpu_s / 1e6,
    })  # fmt: skip
    print(rows[-1], flush=True)
    for P in sizes:
        for label, dtype, kw in (
            ("fees+slippage, float32 weights", np.float32, {}),
            ("fees+slippage, float64 weights", np.float64, {}),
            ("+ stop-loss & trailing, float32", np.float32, {"stops": stops}),
        ):
            if P == sizes[-1] and dtype is np.float64:
                continue  # the largest size: float32 only (memory and time)
            src = _Blocks(_device_blocks(cp, P, dtype, BLOCK), BLOCK)
            sec, res = _best(lambda s=src, kw=kw: sync_run(s, "gpu", **kw), 2)
            row = {"case": f"GPU, {label} ({P:,} params x {n_bars:,} bars)", "seconds": sec,
                   "M updates/s": n_bars * P / sec / 1e6}  # fmt: skip
            if P == P0 and dtype is np.float64 and not kw:
                row["max abs diff vs CPU (metrics)"] = _metric_diff(cpu_res.metrics, res.metrics)
                row["speedup vs CPU"] = cpu_s / sec
            rows.append(row)
            print(rows[-1], flush=True)
            del src
            cp.get_default_memory_pool().free_all_blocks()
            if sec > 30:  # do not grow further on a slow device
                return rows
    if not quick:
        rows += _kernel_threads(sync_run, n_bars)
    return rows


def _kernel_threads(sync_run: Callable[..., Any], n_bars: int) -> list[dict[str, Any]]:
    """Threads per block at large populations (the engine's ``kernels_gpu.THREADS``, 64, is
    tuned for a few thousand sets): 100,000 and 400,000 float32 sets at 64, 128 and 256
    threads, each checked equal to the 64-thread result."""
    import cupy as cp
    import numpy as np

    from benchmarks.bench_engine_kernel import BLOCK
    from quantarena.engine import kernels_gpu

    rows: list[dict[str, Any]] = []
    default = kernels_gpu.THREADS
    try:
        for P in (100_000, 400_000):
            src = _Blocks(_device_blocks(cp, P, np.float32, BLOCK), BLOCK)
            ref = None
            for threads in (64, 128, 256):
                kernels_gpu.THREADS = threads
                sec, res = _best(lambda s=src: sync_run(s, "gpu"), 2)
                row = {"case": f"GPU, float32, {threads} threads/block ({P:,} params x "
                       f"{n_bars:,} bars)", "seconds": sec,
                       "M updates/s": n_bars * P / sec / 1e6}  # fmt: skip
                if ref is None:
                    ref = res
                else:
                    row["max abs diff vs 64 threads (metrics)"] = _metric_diff(
                        ref.metrics, res.metrics
                    )
                rows.append(row)
                print(rows[-1], flush=True)
            del src, ref
            cp.get_default_memory_pool().free_all_blocks()
    finally:
        kernels_gpu.THREADS = default
    return rows


def bench_ma_grid(quick: bool = False) -> list[dict[str, Any]]:
    """The MA-crossover grid end to end (indicators, signals, replay) as in
    ``bench_engine``: 625 sets, and a 9,801-set grid, on the GPU; the 625 also on the CPU."""
    import numpy as np

    from benchmarks.bench_engine import FAST, FEE_BPS, N_BARS, SLOW, synthetic_frame
    from quantarena.engine import Costs, Fees, simulate
    from quantarena.engine.api import load_bars_any
    from quantarena.strategies import get_agent

    n_bars = 20_000 if quick else N_BARS
    panel = load_bars_any(synthetic_frame(n_bars))
    agent = get_agent("momentum", max_position=1.0, long_only=True)
    costs = Costs(fees=Fees(taker_bps=FEE_BPS))
    grids = [("625 sets", agent.grid(fast=FAST, slow=SLOW))]
    if not quick:
        grids.append(("9,801 sets", agent.grid(fast="2:100:1", slow="110:600:5")))

    def run(params: Any, backend: str) -> Any:
        from quantarena.engine.backend import get_backend

        be = get_backend(backend)
        src = agent.source(panel, params, be.xp)
        return simulate(panel, src, costs, max_position=agent.max_position, backend=be)

    small = panel.select(slice(0, 5000))
    warm = agent.grid(fast=[4], slow=[110])
    for be in ("cpu", "gpu"):
        simulate(small, agent.source(small, warm), costs, backend=be)
    rows = []
    cpu_s, cpu_res = _best(lambda: run(grids[0][1], "cpu"), 1 if quick else 2)
    P0 = len(grids[0][1]["fast"])
    rows.append({"case": f"CPU, {grids[0][0]} x {n_bars:,} bars", "seconds": cpu_s,
                 "M updates/s": P0 * n_bars / cpu_s / 1e6})  # fmt: skip
    for label, params in grids:
        P = len(params["fast"])
        sec, res = _best(lambda p=params: run(p, "gpu"), 2)
        row = {"case": f"GPU, {label} x {n_bars:,} bars", "seconds": sec,
               "M updates/s": P * n_bars / sec / 1e6}  # fmt: skip
        if P == P0:
            row["max abs diff vs CPU (metrics)"] = _metric_diff(cpu_res.metrics, res.metrics)
            sh_c = np.asarray(cpu_res.metrics["sharpe"])
            sh_g = np.asarray(res.metrics["sharpe"])
            row["max abs diff vs CPU (Sharpe)"] = float(np.nanmax(np.abs(sh_c - sh_g)))
            row["speedup vs CPU"] = cpu_s / sec
        rows.append(row)
        print(rows[-1], flush=True)
    return rows


def bench_tournament(
    quick: bool = False,
    weeks: int = 8,
    population: int = 1000,
    backend: str = "gpu",
    profile: bool = False,
) -> list[dict]:
    """The tournament benchmark's in-process form (no Ray, no MLflow) on ``backend``: its 8
    agents × ``population`` sets × ``weeks`` weekly rounds of 1-minute bars. ``profile``:
    the run under cProfile, its 25 costliest functions (own time) in the row's ``profile``
    (the report prints them below the table: where the time goes)."""
    from benchmarks.bench_tournament import KINDS, make_config
    from quantarena.actors.driver import run_in_process
    from quantarena.config import TournamentConfig
    from quantarena.data.schema import LoadedData
    from quantarena.data.store import Store
    from quantarena.data.synthetic import synthetic_bars

    if quick:
        weeks, population = 1, 16
    n_bars = (weeks * 7 + 21 + 1) * 1440
    prof_text = ""
    with tempfile.TemporaryDirectory(prefix="qa-gpu-tour-") as tmp:
        tmpd = Path(tmp)
        table = synthetic_bars(1, n_bars, "1m", seed=11)
        Store(tmpd / "store").write(
            LoadedData("bars", table, "synthetic", "synthetic", interval_ns=60_000_000_000)
        )
        cfg = TournamentConfig.from_dict(
            make_config(tmpd / "store", tmpd / "out", weeks, population)
        )
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        marks: list[float] = []  # when the rounds start, and as each ends
        t0 = time.perf_counter()
        summary = run_in_process(
            cfg, log_mlflow=False, backend=backend,
            progress=lambda *_: marks.append(time.perf_counter()),
        )  # fmt: skip
        wall = time.perf_counter() - t0
        if prof is not None:
            import io
            import pstats

            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
            prof_text = buf.getvalue()
    rounds = int(summary["rounds"])
    where = "GPU" if backend == "gpu" else f"CPU ({os.cpu_count()} cores)"
    # setup (data, entrant audit, JIT) and the report are paid once: the estimate scales
    # only the rounds
    setup = marks[0] - t0 if marks else 0.0
    in_rounds = marks[-1] - marks[0] if len(marks) > 1 else wall - setup
    per_round = in_rounds / max(rounds, 1)
    row: dict[str, Any] = {
        "case": f"in process, {where}: {len(KINDS)} agents x {population:,} sets x {rounds} rounds (1m)",
        "seconds": wall,
        "setup (s)": setup,
        "seconds per round": per_round,
        "report (s)": wall - setup - in_rounds,
        "52-round estimate (s)": wall + per_round * (52 - rounds),
        "leader": summary["leaderboard"][0]["agent"] if summary["leaderboard"] else "",
    }  # fmt: skip
    if prof_text:
        row["profile"] = prof_text
    return [row]


def bench_tuning(quick: bool = False) -> list[dict[str, Any]]:
    """Batched Optuna tuning (``bench_tuning``) with the engine on the GPU."""
    from benchmarks import bench_tuning

    if quick:
        bench_tuning.N_BARS, bench_tuning.N_TRIALS = 5_000, 16
    return bench_tuning.run(_Console())


def _bench_fn(name: str) -> Callable[..., list[dict[str, Any]]]:
    return {
        "kernel": bench_kernel,
        "ma_grid": bench_ma_grid,
        "tournament": bench_tournament,
        "tuning": bench_tuning,
    }[name]


def bench_skip_reason(name: str) -> str:
    """Why benchmark ``name`` cannot run here ("" when it can)."""
    if name == "tuning" and not _has("optuna"):
        return "optuna is not installed (the batched-tuning benchmark needs it)"
    return ""


def run_bench(name: str, timeout_s: float, work: Path, args: Sequence[str] = ()) -> dict:
    """Benchmark ``name`` in a subprocess with a time limit; its rows or why there are none."""
    reason = bench_skip_reason(name)
    if reason:
        return {"name": name, "status": "skipped", "reason": reason, "rows": []}
    if timeout_s < 5:
        return {"name": name, "status": "skipped", "reason": "no time left", "rows": []}
    out = work / f"bench-{name}{re.sub(r'[^A-Za-z0-9]+', '-', '-'.join(args))}.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "bench", name, "--json", str(out),
           *args]  # fmt: skip
    t0 = time.perf_counter()
    try:
        rc = subprocess.run(cmd, cwd=ROOT, timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        return {"name": name, "status": "timeout", "seconds": time.perf_counter() - t0,
                "reason": f"stopped after {timeout_s:.0f} s", "rows": []}  # fmt: skip
    res: dict[str, Any] = {"name": name, "seconds": time.perf_counter() - t0, "rows": []}
    if rc == 0 and out.exists():
        rows = json.loads(out.read_text())
        profiles = [r.pop("profile") for r in rows if "profile" in r]
        res.update(status="ok", rows=rows)
        if profiles:
            res["profile"] = profiles[0]
    else:
        err = json.loads(out.read_text()) if out.exists() else {}
        res.update(status="failed", reason=err.get("error", f"exit code {rc}"))
    return res


# ------------------------------------------------------------------------------ the report


def _fmt_diff(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.3g}"


def _largest(diffs: dict[str, float]) -> str:
    """``"<value> (<name>)"`` of the largest difference, or "" when there is none."""
    if not diffs:
        return ""
    k = max(diffs, key=lambda n: diffs[n])
    return f"{_fmt_diff(diffs[k])} ({k})"


def group_diffs(diffs: dict[str, float]) -> dict[str, tuple[float, str, int]]:
    """Differences named ``<comparison>:<value>`` grouped by comparison: ``{comparison:
    (largest, the value where it is, how many values)}``."""
    out: dict[str, tuple[float, str, int]] = {}
    for name, v in sorted(diffs.items()):
        g, _, what = name.partition(":")
        best, where, n = out.get(g, (-math.inf, "", 0))
        out[g] = (v, what, n + 1) if v > best else (best, where, n + 1)
    return out


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Counts of test outcomes, the largest CPU-vs-GPU difference per comparison, and
    whether everything that ran passed."""
    cases = result.get("tests", {}).get("cases", [])
    counts = {k: sum(c["outcome"] == k for c in cases)
              for k in ("passed", "failed", "error", "skipped")}  # fmt: skip
    diffs: dict[str, float] = {}
    for c in cases:
        for k, v in c.get("diffs", {}).items():
            diffs[k] = max(v, diffs.get(k, -math.inf))
    for b in result.get("benchmarks", []):
        for r in b.get("rows", []):
            for k, v in r.items():
                if k.startswith("max abs diff"):
                    key = f"bench-{b['name']}:{k.removeprefix('max abs diff vs CPU ').strip('()')}"
                    diffs[key] = max(float(v), diffs.get(key, -math.inf))
    tests = result.get("tests")
    tests_ok = tests is None or (
        tests.get("status") == "ran" and tests.get("returncode") in (0, 5)
        and counts["failed"] == 0 and counts["error"] == 0
    )  # fmt: skip
    ok = tests_ok and all(
        b.get("status") in ("ok", "skipped") for b in result.get("benchmarks", [])
    )
    return {"counts": counts, "max_abs_diffs": diffs, "ok": ok}


def render_markdown(result: dict[str, Any]) -> str:
    """The report as Markdown: the machine, the tests with their CPU-vs-GPU differences, the
    benchmarks' tables (one per benchmark, the columns of ``benchmarks.run``)."""
    from benchmarks.run import to_markdown

    env = result.get("env", {})
    s = summarize(result)
    dev = env.get("device", "unknown device")
    lines = [f"### GPU check: {dev} ({env.get('date', '')})", ""]
    lines.append(
        f"Run {env.get('date', '')} on {dev} ({env.get('device_memory_mib', '?'):,} MiB), "
        f"driver {env.get('driver', '?')}, CUDA driver API {env.get('cuda_driver', '?')} / "
        f"runtime {env.get('cuda_runtime', '?')}, CuPy {env.get('cupy', '?')}, torch "
        f"{env.get('torch', '?')} (CUDA {env.get('torch_cuda', '?')}), Numba "
        f"{env.get('numba', '?')}, Python {env.get('python', '?')}, {env.get('cpu_cores', '?')} "
        "CPU cores (`make gpu-check`)."
        if "device" in env
        else f"Run {env.get('date', '')}: the device could not be read ({env.get('cupy_error')})."
    )
    if env.get("nvidia_smi"):
        lines.append(f"nvidia-smi: {env['nvidia_smi']}.")
    if env.get("missing"):
        lines.append(f"**Missing modules:** {', '.join(env['missing'])} (run `make gpu-wheels`).")
    if env.get("missing_optional"):
        lines.append(
            f"Not installed (tests and benchmarks needing them are skipped): "
            f"{', '.join(env['missing_optional'])}."
        )
    wh = result.get("wheels", {})
    if wh.get("status") == "installed":
        lines.append(f"Installed from .whl/: {', '.join(wh['wheels'])}.")
    elif wh.get("status") == "failed":
        lines.append(f"**Installing .whl/ failed:** {wh.get('error', '')[-300:]}")
    c = s["counts"]
    tests = result.get("tests", {})
    if "tests" not in result:
        lines += ["", f"**Parity tests**: not run. Overall: {'PASS' if s['ok'] else 'FAIL'}."]
    else:
        lines += ["", f"**Parity tests** (`pytest -m 'gpu or torch_cuda'`): {c['passed']} passed, "
                  f"{c['failed']} failed, {c['error']} errors, {c['skipped']} skipped"
                  + (f" — {tests['status']}" if tests.get("status") not in (None, "ran") else "")
                  + f". Overall: {'PASS' if s['ok'] else 'FAIL'}.", ""]  # fmt: skip
    if tests.get("cases"):
        lines += ["| test | outcome | seconds | max abs diff CPU vs GPU | note |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for t in tests["cases"]:
            d = _largest(t["diffs"])
            note = t["message"].replace("|", "/")[:160] if t["outcome"] != "passed" else ""
            lines.append(f"| {t['id']} | {t['outcome']} | {t['seconds']:.2f} | {d} | {note} |")
        lines.append("")
    groups = group_diffs(s["max_abs_diffs"])
    if groups:
        lines += ["Largest CPU-vs-GPU difference per comparison (all values in the JSON):", "",
                  "| comparison | max abs diff | where | values compared |", "|---|---|---|---|"]  # fmt: skip
        for g, (v, where, n) in groups.items():
            lines.append(f"| {g} | {_fmt_diff(v)} | {where} | {n} |")
        lines.append("")
    for b in result.get("benchmarks", []):
        if b.get("rows"):
            lines.append(to_markdown([{"suite": f"GPU {b['name']}", **r} for r in b["rows"]]))
        if b.get("profile"):
            lines += [f"Where the time goes ({b['rows'][0]['case'] if b.get('rows') else b['name']}, "
                      "cProfile, 25 costliest functions by own time):", "", "```",
                      b["profile"].strip(), "```", ""]  # fmt: skip
        if b.get("status") != "ok":
            lines += [f"GPU {b['name']}: {b.get('status')} — {b.get('reason', '')}", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``out`` (Markdown) and ``out`` with ``.json`` (the same data, machine-readable);
    the JSON first, so the figures survive a failure to render."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    js = out.with_suffix(".json")
    data = {**result, "summary": summarize(result)}
    js.write_text(json.dumps(data, indent=2, default=str, allow_nan=True))
    out.write_text(render_markdown(result))
    return out, js


# ------------------------------------------------------------------------------ wheels


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_requirements(path: Path = ROOT / "pyproject.toml") -> list[str]:
    """quantarena's core dependencies (names), less the shell-only ones, plus the test tools."""
    import tomllib

    from packaging.requirements import Requirement

    deps = tomllib.loads(Path(path).read_text())["project"]["dependencies"]
    names = [_norm(Requirement(d).name) for d in deps]
    return [n for n in names if n not in SHELL_ONLY] + [_norm(t) for t in TEST_DEPS]


def closure(names: Iterable[str], have: Iterable[str], allow: Iterable[str] = ()) -> dict[str, str]:
    """``{name: version}`` of ``names`` and what they require, transitively, as installed in
    this environment (markers evaluated for Linux x86_64, Python 3.12), less ``have`` and
    the shell-only packages not in ``allow``; a requirement not installed here is reported
    as ``"?"``."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    marker_env = {"sys_platform": "linux", "platform_system": "Linux",
                  "platform_machine": "x86_64", "python_version": "3.12",
                  "python_full_version": "3.12.3", "implementation_name": "cpython",
                  "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}  # fmt: skip
    skip = ({_norm(h) for h in have} | set(SHELL_ONLY)) - {_norm(a) for a in allow}
    out: dict[str, str] = {}
    todo = [_norm(n) for n in names]
    while todo:
        n = todo.pop()
        if n in out or n in skip:
            continue
        try:
            dist = distribution(n)
        except PackageNotFoundError:
            out[n] = "?"
            continue
        out[n] = dist.version
        for r in dist.requires or []:
            req = Requirement(r)
            if req.marker is not None and not req.marker.evaluate(marker_env):
                continue
            todo.append(_norm(req.name))
    return dict(sorted(out.items()))


def download_command(pins: dict[str, str], dest: Path, python: str = "3.12") -> list[str]:
    """``pip download`` of exactly these pinned wheels for CPython ``python`` manylinux
    x86_64, binary only, no dependency resolution (the list is already the closure)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp"]  # fmt: skip
    for p in PLATFORMS:
        cmd += ["--platform", p]
    cmd += ["-d", str(dest)]
    cmd += [n if v == "?" else f"{n}=={v}" for n, v in pins.items()]
    return cmd


def wheels_main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check wheels")
    ap.add_argument("--dest", type=Path, default=WHEEL_DIR, help="folder for the wheels")
    ap.add_argument("--have", default=None, help="comma-separated distributions the target "
                    "already has, or @FILE (pip freeze); default: the GPU image's list")  # fmt: skip
    ap.add_argument("--python-version", default="3.12")
    ap.add_argument("--with", dest="extra", default="", help="comma-separated shell-only "
                    f"packages to add with their dependencies (of {', '.join(SHELL_ONLY)}; "
                    "e.g. optuna for the GPU tuning benchmark; ray is too large to carry)")  # fmt: skip
    ap.add_argument("--dry-run", action="store_true", help="print the command, download nothing")
    a = ap.parse_args(argv)
    if a.have is None:
        have: list[str] = list(IMAGE_HAS)
    elif a.have.startswith("@"):
        text = Path(a.have[1:]).read_text().splitlines()
        have = [re.split(r"[=<>@ ;\[]", t.strip(), maxsplit=1)[0] for t in text if t.strip()]
    else:
        have = [h for h in a.have.split(",") if h]
    extra = [_norm(e) for e in a.extra.split(",") if e]
    bad = [e for e in extra if e not in SHELL_ONLY]
    if bad:
        ap.error(f"--with: {', '.join(bad)} is not one of {', '.join(SHELL_ONLY)}")
    pins = closure([*pyproject_requirements(), *extra], have, allow=extra)
    cmd = download_command(pins, a.dest, a.python_version)
    print("wheels for the GPU check: " + ", ".join(f"{n} {v}" for n, v in pins.items()))
    print(" ".join(cmd))
    if a.dry_run or not pins:
        return 0
    a.dest.mkdir(parents=True, exist_ok=True)
    rc = subprocess.run(cmd).returncode
    size = sum(p.stat().st_size for p in a.dest.glob("*.whl")) / 2**20
    print(f"{a.dest}: {len(list(a.dest.glob('*.whl')))} wheels, {size:.1f} MiB")
    if size > 40:
        print("warning: over 40 MiB of wheels — a device run carries at most 64 MiB in all")
    return rc


# ------------------------------------------------------------------------------ main


def bench_main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check bench")
    ap.add_argument("name", choices=BENCHES)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--weeks", type=int, default=None)
    ap.add_argument("--backend", default=None, help="tournament: gpu (default) or cpu")
    ap.add_argument("--profile", action="store_true", help="tournament: under cProfile")
    a = ap.parse_args(argv)
    kw: dict[str, Any] = {"quick": a.quick}
    if a.weeks is not None:
        kw["weeks"] = a.weeks
    if a.backend is not None:
        kw["backend"] = a.backend
    if a.profile:
        kw["profile"] = True
    try:
        rows = _bench_fn(a.name)(**kw)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        a.json.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    a.json.write_text(json.dumps(rows, default=float))
    return 0


def check_main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check",
        description="GPU parity tests and GPU benchmarks into one report (exits 0 at once "
        "where there is no GPU)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report path (.md; the "
                    ".json beside it)")  # fmt: skip
    ap.add_argument("--wheels", type=Path, default=WHEEL_DIR, help="wheels to install first")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="wall-clock budget for the whole check (steps get what is left)",
    )
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--only", default=",".join(BENCHES), help="benchmarks to run (comma list)")
    ap.add_argument("--quick", action="store_true", help="tiny benchmark sizes (a dry run)")
    a = ap.parse_args(argv)
    try:
        reason = gpu_reason()
    except ImportError as exc:
        print(f"gpu-check: {sys.executable} cannot import quantarena's core ({exc}) — run "
              "`make setup`, or name a Python that has numpy, pandas and numba: "
              "make gpu-check GPU_PYTHON=...")  # fmt: skip
        return 1
    if reason:
        print(f"gpu-check: no GPU here ({reason}); nothing run")
        return 0
    t_end = time.perf_counter() + a.budget_s

    def left() -> float:
        return t_end - time.perf_counter()

    result: dict[str, Any] = {"wheels": install_wheels(ROOT / a.wheels)}
    result["env"] = environment()
    write_report(result, a.out)
    print(f"gpu-check: {result['env'].get('device')}; missing: {result['env']['missing']}; "
          f"optional missing: {result['env']['missing_optional']}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="qa-gpu-check-") as tmp:
        work = Path(tmp)
        if not a.skip_tests:
            result["tests"] = run_tests(gpu_test_files(), min(left() * 0.5, 300.0), work)
            write_report(result, a.out)
        result["benchmarks"] = []
        only = [b for b in a.only.split(",") if b]
        quick = ["--quick"] if a.quick else []
        for name in BENCHES:
            if name not in only:
                continue
            if name == "tournament":
                res = run_bench(name, min(left(), 150.0), work,
                                ["--weeks", "8", "--profile", *quick])  # fmt: skip
                result["benchmarks"].append(res)
                result["benchmarks"].append(  # the same run on this machine's CPU cores
                    run_bench(
                        name,
                        min(left() * 0.3, 120.0),
                        work,
                        ["--weeks", "8", "--backend", "cpu", *quick],
                    )  # fmt: skip
                )
                est = res.get("rows", [{}])[0].get("52-round estimate (s)") if res["rows"] else None
                if est is not None and not a.quick and est < 0.6 * left():
                    result["benchmarks"].append(
                        run_bench(name, left(), work, ["--weeks", "52", *quick])
                    )
            else:
                result["benchmarks"].append(run_bench(name, min(left(), 200.0), work, quick))
            write_report(result, a.out)
    md, js = write_report(result, a.out)
    s = summarize(result)
    c = s["counts"]
    print(f"gpu-check: {c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
          f"{c['skipped']} skipped; report {md} and {js}; {'PASS' if s['ok'] else 'FAIL'}")  # fmt: skip
    return 0 if s["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["wheels"]:
        return wheels_main(argv[1:])
    if argv[:1] == ["bench"]:
        return bench_main(argv[1:])
    return check_main(argv)


if __name__ == "__main__":
    sys.exit(main())
