"""The GPU check (``make gpu-check``, ``benchmarks/gpu_check.py``) on a machine without a GPU:
its one-line exit, the skip reasons, the report from made-up results, and the wheel list."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import types
from importlib.metadata import version
from pathlib import Path

import pytest

from benchmarks import gpu_check as G

ROOT = Path(__file__).resolve().parent.parent


def _fake_cupy(tmp: Path, body: str) -> Path:
    """A folder holding a stand-in ``cupy`` package with ``body`` as its ``__init__``."""
    pkg = tmp / "fake" / "cupy"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    return tmp / "fake"


BROKEN_DRIVER = """
    class CUDARuntimeError(RuntimeError):
        pass
    class runtime:
        @staticmethod
        def getDeviceCount():
            raise CUDARuntimeError(
                "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA "
                "runtime version")
    cuda = type("cuda", (), {"runtime": runtime})
"""
NO_DEVICE = """
    class runtime:
        @staticmethod
        def getDeviceCount():
            return 0
    cuda = type("cuda", (), {"runtime": runtime})
"""
NOT_IMPORTABLE = """
    raise ImportError("libcudart.so.13: cannot open shared object file: No such file")
"""


def _reason(fake: Path | None, extra: str = "") -> str:
    code = (
        "import sys\n" + extra + "from quantarena.engine.backend import cuda_unavailable_reason\n"
        "print(cuda_unavailable_reason())"
    )
    env_path = f"{fake}:{ROOT}" if fake else str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_skip_reasons_say_what_is_missing(tmp_path: Path) -> None:
    assert _reason(None, "sys.modules['cupy'] = None\n") == "CuPy is not installed"
    r = _reason(_fake_cupy(tmp_path / "a", NOT_IMPORTABLE))
    assert r.startswith("CuPy is installed but does not import (ImportError: libcudart.so.13")
    r = _reason(_fake_cupy(tmp_path / "b", BROKEN_DRIVER))
    assert r == (
        "CuPy is installed but the CUDA driver/runtime fails (CUDARuntimeError: "
        "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime "
        "version)"
    )
    assert _reason(_fake_cupy(tmp_path / "c", NO_DEVICE)) == (
        "CuPy is installed but sees no CUDA device"
    )


@pytest.mark.slow
def test_gpu_tests_are_skipped_with_the_driver_error(tmp_path: Path) -> None:
    fake = _fake_cupy(tmp_path, BROKEN_DRIVER)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/test_engine_gpu.py", "-k", "large_population"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={"PYTHONPATH": f"{fake}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:]
    assert "1 skipped" in out.stdout
    assert (
        "GPU test skipped: CuPy is installed but the CUDA driver/runtime fails "
        "(CUDARuntimeError: cudaErrorInsufficientDriver" in out.stdout
    )


def test_torch_without_cuda_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from conftest import torch_cuda_skip_reason

    monkeypatch.setattr(torch.version, "cuda", None)
    assert torch_cuda_skip_reason() == (
        f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"
    )
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_cuda_skip_reason() == f"torch {torch.__version__} (CUDA 13.0) sees no CUDA device"


def test_without_a_gpu_make_gpu_check_prints_one_line_and_exits_0(tmp_path: Path) -> None:
    from quantarena.engine.backend import cuda_available, cuda_unavailable_reason

    if cuda_available():
        pytest.skip("a GPU is present: the check would run")
    report = tmp_path / "r.md"
    out = subprocess.run(
        ["make", "-s", "gpu-check", f"GPU_PYTHON={sys.executable}", f"GPU_OUT={report}"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"gpu-check: no GPU here ({cuda_unavailable_reason()}); nothing run"
    ]
    assert out.stderr == ""
    assert not report.exists() and not report.with_suffix(".json").exists()


def test_the_check_exits_0_without_cupy_even_where_the_gpu_is_not_probed_twice() -> None:
    code = (
        "import sys; sys.modules['cupy'] = None\n"
        "from benchmarks.gpu_check import main\n"
        "sys.exit(main(['--out', '/nonexistent/dir/r.md']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "gpu-check: no GPU here (CuPy is not installed); nothing run\n"


# ------------------------------------------------------------------ the report

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4">
<testcase classname="tests.test_engine_gpu" name="test_gpu_parity_one_asset_with_stops[open]"
  file="tests/test_engine_gpu.py" time="1.50">
  <properties>
    <property name="max_abs_diff:engine-1asset-open:equity" value="0.0" />
    <property name="max_abs_diff:engine-1asset-open:equity" value="2.2e-16" />
    <property name="max_abs_diff:engine-1asset-open:trades.pnl" value="1e-17" />
    <property name="other" value="x" />
  </properties>
</testcase>
<testcase classname="tests.test_ml_agent" name="test_cuda_predictions_equal_the_cpu_ones[gru]"
  time="3.00">
  <properties><property name="max_abs_diff:ml-gru:edge" value="0.004" /></properties>
  <failure message="AssertionError: 0.004">long traceback</failure>
</testcase>
<testcase classname="tests.test_tournament_ray" name="tests.test_tournament_ray" time="0">
  <skipped type="pytest.skip" message="could not import 'ray': No module named 'ray'">x</skipped>
</testcase>
<testcase classname="tests.test_tournament_gpu" name="test_in_process" time="0.1">
  <error message="failed on setup with &quot;ValueError: boom&quot;">trace</error>
</testcase>
</testsuite></testsuites>
"""


def test_junit_cases_and_their_cpu_gpu_differences(tmp_path: Path) -> None:
    p = tmp_path / "j.xml"
    p.write_text(JUNIT)
    cases = G.parse_junit(p)
    assert [c["outcome"] for c in cases] == ["passed", "failed", "skipped", "error"]
    assert cases[0]["id"] == "test_engine_gpu.py::test_gpu_parity_one_asset_with_stops[open]"
    assert cases[0]["diffs"] == {
        "engine-1asset-open:equity": 2.2e-16,
        "engine-1asset-open:trades.pnl": 1e-17,
    }
    assert cases[0]["seconds"] == 1.5
    assert cases[1]["id"] == "test_ml_agent.py::test_cuda_predictions_equal_the_cpu_ones[gru]"
    assert cases[1]["message"] == "AssertionError: 0.004"
    assert cases[2]["message"] == "could not import 'ray': No module named 'ray'"
    assert cases[3]["message"] == 'failed on setup with "ValueError: boom"'


def _fake_result(tmp_path: Path, junit: str = JUNIT) -> dict:
    p = tmp_path / "j.xml"
    p.write_text(junit)
    return {
        "wheels": {"status": "installed", "wheels": ["pydantic-2.14.4-py3-none-any.whl"]},
        "env": {
            "date": "2026-12-03 10:00 UTC", "device": "NVIDIA H200", "device_memory_mib": 143771,
            "driver": "580.159.03", "cuda_driver": "13.0", "cuda_runtime": "13.0",
            "cupy": "14.2.0", "torch": "2.11.0+cu130", "torch_cuda": "13.0", "numba": "0.62",
            "python": "3.12.3", "cpu_cores": 16, "missing": [],
            "missing_optional": ["ray", "mlflow", "optuna"],
        },
        "tests": {"status": "ran", "returncode": 1, "seconds": 10.0, "cases": G.parse_junit(p)},
        "benchmarks": [
            {"name": "kernel", "status": "ok", "rows": [
                {"case": "CPU, all 16 cores", "seconds": 2.0, "M updates/s": 100.0},
                {"case": "GPU, float64 (1,000 params)", "seconds": 0.01, "M updates/s": 2e4,
                 "max abs diff vs CPU (metrics)": 3e-15, "speedup vs CPU": 200.0},
            ]},
            {"name": "tournament", "status": "timeout", "reason": "stopped after 150 s",
             "rows": []},
            {"name": "tuning", "status": "skipped",
             "reason": "optuna is not installed (the batched-tuning benchmark needs it)",
             "rows": []},
        ],
    }  # fmt: skip


def test_report_from_made_up_results(tmp_path: Path) -> None:
    result = _fake_result(tmp_path)
    md, js = G.write_report(result, tmp_path / "out" / "gpu-check.md")
    assert md == tmp_path / "out" / "gpu-check.md" and js == md.with_suffix(".json")
    text = md.read_text()
    assert text.startswith("### GPU check: NVIDIA H200 (2026-12-03 10:00 UTC)\n")
    assert "NVIDIA H200 (143,771 MiB), driver 580.159.03, CUDA driver API 13.0" in text
    assert "1 passed, 1 failed, 1 errors, 1 skipped. Overall: FAIL." in text
    assert "Not installed (tests and benchmarks needing them are skipped): ray, mlflow, optuna" in (
        text
    )
    assert (
        "| test_ml_agent.py::test_cuda_predictions_equal_the_cpu_ones[gru] | failed | 3.00 | "
        "0.004 (ml-gru:edge) | AssertionError: 0.004 |"
    ) in text
    assert (
        "| test_engine_gpu.py::test_gpu_parity_one_asset_with_stops[open] | passed | 1.50 | "
        "2.2e-16 (engine-1asset-open:equity) |  |"
    ) in text
    assert "| engine-1asset-open | 2.2e-16 | equity | 2 |" in text
    assert "| bench-kernel | 3e-15 | metrics | 1 |" in text
    assert "### GPU kernel" in text
    assert "| case | seconds | M updates/s | max abs diff vs CPU (metrics) | speedup vs CPU |" in (
        text
    )
    assert "GPU tournament: timeout — stopped after 150 s" in text
    assert "GPU tuning: skipped — optuna is not installed" in text
    data = json.loads(js.read_text())
    assert data["summary"]["counts"] == {"passed": 1, "failed": 1, "error": 1, "skipped": 1}
    assert data["summary"]["ok"] is False
    assert data["summary"]["max_abs_diffs"]["ml-gru:edge"] == 0.004
    assert data["env"]["device"] == "NVIDIA H200"


def test_report_passes_when_every_test_passed_or_was_skipped(tmp_path: Path) -> None:
    junit = JUNIT.replace('<failure message="AssertionError: 0.004">long traceback</failure>', "")
    junit = junit.replace('<error message="failed on setup with &quot;ValueError: boom&quot;">'
                          "trace</error>", "")  # fmt: skip
    result = _fake_result(tmp_path, junit)
    result["tests"]["returncode"] = 0
    result["benchmarks"] = [b for b in result["benchmarks"] if b["status"] != "timeout"]
    s = G.summarize(result)
    assert s["ok"] is True and s["counts"]["passed"] == 3
    assert "Overall: PASS." in G.render_markdown(result)
    result["tests"]["status"] = "timeout"  # cut short: not a pass
    assert G.summarize(result)["ok"] is False


def test_environment_reads_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = types.SimpleNamespace(
        getDeviceProperties=lambda i: {"name": b"NVIDIA H200", "totalGlobalMem": 143771 * 2**20},
        getDeviceCount=lambda: 1,
        driverGetVersion=lambda: 13000,
        runtimeGetVersion=lambda: 12090,
    )
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=rt), __version__="14.2.0")
    monkeypatch.setitem(sys.modules, "cupy", fake)
    env = G.environment()
    assert env["device"] == "NVIDIA H200" and env["device_memory_mib"] == 143771
    assert env["cuda_driver"] == "13.0" and env["cuda_runtime"] == "12.9"
    assert env["cupy"] == "14.2.0"
    assert "cupy" not in env["missing"] and "numpy" not in env["missing"]


def test_the_gpu_test_files_are_found() -> None:
    names = {p.name for p in G.gpu_test_files()}
    assert {"test_engine_gpu.py", "test_ml_agent.py", "test_tournament_gpu.py",
            "test_tournament_ray.py"} <= names  # fmt: skip
    assert "test_gpu_check.py" not in names and "test_engine_cases.py" not in names


def test_tuning_benchmark_is_skipped_with_the_reason_without_optuna(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.setattr(G.importlib.util, "find_spec", lambda n, *a: None)
    res = G.run_bench("tuning", 100.0, tmp_path)
    assert res == {
        "name": "tuning", "status": "skipped", "rows": [],
        "reason": "optuna is not installed (the batched-tuning benchmark needs it)",
    }  # fmt: skip


# ------------------------------------------------------------------ wheels


def test_wheel_list_comes_from_pyproject_less_the_shell_and_the_image() -> None:
    req = G.pyproject_requirements()
    assert {"pydantic", "pyyaml", "scipy", "numba", "hypothesis", "pytest"} <= set(req)
    assert not set(req) & {"ray", "mlflow", "optuna", "redis", "cmaes"}
    pins = G.closure(req, G.IMAGE_HAS)
    assert {"pydantic", "pydantic-core", "annotated-types"} <= set(pins)
    assert pins["pydantic"] == version("pydantic")  # what is tested here is what travels
    assert pins["pydantic-core"] == version("pydantic-core")
    assert not set(pins) & {"numpy", "pandas", "torch", "scipy", "ray", "mlflow", "optuna"}
    everything = G.closure(req, have=[])
    assert {"numpy", "pandas", "pyarrow", "scipy", "six", "python-dateutil"} <= set(everything)
    assert not set(everything) & {"ray", "mlflow", "optuna", "grpcio", "sqlalchemy"}
    # --with optuna (the GPU tuning benchmark): optuna and its own dependencies travel too
    tuning = G.closure([*req, "optuna"], G.IMAGE_HAS, allow=["optuna"])
    assert {"optuna", "sqlalchemy", "alembic"} <= set(tuning)
    assert tuning["optuna"] == version("optuna")
    assert not set(tuning) & {"ray", "mlflow", "numpy", "torch"}


def test_the_profile_of_a_benchmark_is_printed_below_its_table(tmp_path: Path) -> None:
    result = {"env": {"device": "NVIDIA H200", "date": "2026-12-04", "device_memory_mib": 143771}, "benchmarks": [{
        "name": "tournament", "status": "ok", "rows": [{"case": "in process, GPU: 8 agents",
        "seconds": 20.0}], "profile": "ncalls  tottime  percall\n 8  12.5  1.56 rounds.py:601",
    }]}  # fmt: skip
    text = G.render_markdown(result)
    assert "| in process, GPU: 8 agents | 20.00 |" in text
    assert "Where the time goes (in process, GPU: 8 agents, cProfile" in text
    assert "```\nncalls  tottime  percall\n 8  12.5  1.56 rounds.py:601\n```" in text


def test_download_command_targets_python_312_manylinux(tmp_path: Path) -> None:
    cmd = G.download_command({"pydantic": "2.14.4", "x-y": "?"}, tmp_path / "w")
    s = " ".join(cmd)
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps --only-binary=:all: --python-version 3.12 --implementation cp" in s
    assert "--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64" in s
    assert "--platform manylinux2014_x86_64" in s
    assert cmd[-4:] == ["-d", str(tmp_path / "w"), "pydantic==2.14.4", "x-y"]


def test_wheels_dry_run_downloads_nothing(tmp_path: Path, capsys) -> None:
    dest = tmp_path / "whl"
    assert G.main(["wheels", "--dest", str(dest), "--dry-run", "--have", "numpy,pandas"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("wheels for the GPU check: ") and "pydantic " in out[0]
    assert "scipy " in out[0]  # not in --have, so it travels
    assert "pip download" in out[1] and not dest.exists()


# ------------------------------------------------------------------ through the host stand-in
# tests/hostcupy: NumPy arrays posing as CuPy ones and the CUDA source compiled for the host.
# It drives the GPU path's plumbing (kernel argument packing, device arrays through the
# engine and the tests, the check's steps and report) here; it proves nothing about CUDA.

HOSTCUPY = ROOT / "tests" / "hostcupy"


def _with_host_cupy(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    import shutil

    if shutil.which("g++") is None and shutil.which("clang++") is None:
        pytest.skip("no C++ compiler for the host CuPy stand-in")
    env = {"PYTHONPATH": f"{HOSTCUPY}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env,
        timeout=timeout,
    )  # fmt: skip


@pytest.mark.slow
def test_engine_gpu_tests_run_through_the_host_stand_in() -> None:
    out = _with_host_cupy(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests/test_engine_gpu.py"]
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert "6 passed" in out.stdout


@pytest.mark.slow
def test_the_check_end_to_end_through_the_host_stand_in(tmp_path: Path) -> None:
    report = tmp_path / "gpu-check.md"
    out = _with_host_cupy(
        ["-m", "benchmarks.gpu_check", "--quick", "--skip-tests", "--only", "kernel,tuning",
         "--out", str(report), "--wheels", str(tmp_path / "no-wheels")]
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.splitlines()[-1].endswith("PASS")
    text = report.read_text()
    assert text.startswith("### GPU check: host stand-in (no GPU) (")
    assert "### GPU kernel" in text
    data = json.loads(report.with_suffix(".json").read_text())
    kernel = next(b for b in data["benchmarks"] if b["name"] == "kernel")
    assert kernel["status"] == "ok"
    assert [r["case"].split(",")[0] for r in kernel["rows"]][:2] == ["CPU", "GPU"]
    assert data["summary"]["max_abs_diffs"]["bench-kernel:metrics"] == 0.0


def _tiny_wheel(dest: Path) -> Path:
    """A one-module pure-Python wheel, made by hand (no network, no build backend)."""
    import base64
    import hashlib
    import zipfile

    files = {
        "qa_tiny_probe.py": "VALUE = 42\n",
        "qa_tiny_probe-1.0.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: qa-tiny-probe\nVersion: 1.0\n"
        ),
        "qa_tiny_probe-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append("qa_tiny_probe-1.0.dist-info/RECORD,,")
    files["qa_tiny_probe-1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
    dest.mkdir(parents=True)
    whl = dest / "qa_tiny_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return whl


def test_wheels_are_installed_offline_onto_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    assert G.install_wheels(tmp_path / "none", tmp_path / "site")["status"] == "none"
    _tiny_wheel(tmp_path / "whl")
    res = G.install_wheels(tmp_path / "whl", tmp_path / "site")
    assert res == {
        "status": "installed", "wheels": ["qa_tiny_probe-1.0-py3-none-any.whl"],
        "site": str(tmp_path / "site"),
    }  # fmt: skip
    assert sys.path[0] == str(tmp_path / "site")
    import os

    assert os.environ["PYTHONPATH"] == f"{tmp_path / 'site'}{os.pathsep}/somewhere"
    out = subprocess.run(
        [sys.executable, "-c", "import qa_tiny_probe; print(qa_tiny_probe.VALUE)"],
        capture_output=True, text=True, env={**os.environ}, timeout=60,
    )  # fmt: skip
    assert out.stdout.strip() == "42", out.stderr


@pytest.mark.slow
def test_what_the_gpu_tests_import_needs_no_ray_mlflow_or_optuna(tmp_path: Path) -> None:
    """The GPU image has no Ray, MLflow or Optuna: the in-process tournament, the engine, the
    agents and the check itself import, and a one-round tournament runs, without them."""
    code = textwrap.dedent(f"""
        import sys
        for m in ("ray", "mlflow", "optuna", "redis", "cmaes"):
            sys.modules[m] = None  # importing any of them now fails
        import benchmarks.gpu_check, quantarena.engine, quantarena.strategies.ml
        from quantarena.actors.driver import run_in_process
        from quantarena.config import TournamentConfig
        cfg = TournamentConfig.from_dict({{
            "name": "no-shell", "seed": 1,
            "data": {{"files": [{{"path": "{ROOT}/data/sample/btc-perp-20211231-20220201_1m.csv",
                                 "symbol": "BTCPERP"}}],
                     "interval": "1h", "start": "2022-01-10", "end": "2022-01-20"}},
            "schedule": {{"round": "3d", "lookback": "3d", "warmup": "1d", "max_rounds": 1}},
            "agents": [{{"name": "trend", "kind": "momentum",
                         "params": {{"fast": [4, 8], "slow": [24]}}}},
                       {{"name": "hodl", "kind": "buy_hold"}}],
            "gates": {{"min_history_days": None, "min_paper_days": None}},
            "tracking": {{"output_dir": "{tmp_path}/out"}},
        }})
        s = run_in_process(cfg, log_mlflow=False, backend="cpu")
        print(s["rounds"], sorted(r["agent"] for r in s["leaderboard"]))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "1 ['hodl', 'trend']"


@pytest.mark.slow
def test_tests_cut_short_still_report_what_ran(tmp_path: Path) -> None:
    t = tmp_path / "cases"
    t.mkdir()
    (t / "test_slow.py").write_text(
        "import time, pytest\n"
        "@pytest.mark.gpu\ndef test_quick(record_property):\n"
        "    record_property('max_abs_diff:x:y', 0.5)\n"
        "@pytest.mark.gpu\ndef test_slow():\n    time.sleep(120)\n"
    )
    # even where this process ignores SIGINT (children inherit that; a library may set it)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        res = G.run_tests([t / "test_slow.py"], timeout_s=8, work=tmp_path)
    finally:
        signal.signal(signal.SIGINT, old)
    assert res["status"] == "timeout" and res["seconds"] < 30
    quick = [c for c in res["cases"] if c["id"].endswith("::test_quick")]
    assert quick and quick[0]["outcome"] == "passed" and quick[0]["diffs"] == {"x:y": 0.5}
    assert G.summarize({"tests": res})["ok"] is False
