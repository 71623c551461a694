"""The package layering (``[tool.importlinter]`` in pyproject.toml) holds, covers every
package, and is live: without its listed exceptions it breaks."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

import quantarena  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on ``config``, analysing this checkout's ``quantarena``."""
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache", "--no-logo", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def toml_text(cfg: dict) -> str:
    """A ``[tool.importlinter]`` TOML document from ``cfg`` (strings, bools, string lists)."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {value(v)}" for k, v in cfg.items() if k != "contracts"]
    for c in cfg["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{k} = {value(v)}" for k, v in c.items()]
    return "\n".join(lines) + "\n"


def contract(cid: str) -> dict:
    return next(c for c in CONFIG["contracts"] if c["id"] == cid)


def test_the_contracts_are_kept() -> None:
    proc = lint_imports(ROOT / "pyproject.toml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout


def test_every_package_is_in_a_layer() -> None:
    """A new top-level package or module must be placed in the layering (else it escapes it)."""
    names = set()
    for layer in contract("layers")["layers"]:
        for part in layer.replace("|", ":").split(":"):
            names.add(part.strip().strip("()"))
    here = {m.name for m in pkgutil.iter_modules(quantarena.__path__)}
    assert here - names == set(), f"place these in [tool.importlinter] layers: {here - names}"
    order = [layer.split(":")[0].strip().strip("()") for layer in contract("layers")["layers"]]
    core = ["tournaments", "training", "backtest", "strategies", "engine", "data"]
    assert order[-len(core) - 1 : -1] == core  # above the small helpers at the bottom


def test_the_core_forbids_ray_mlflow_redis() -> None:
    c = contract("pure-core")
    assert set(c["forbidden_modules"]) == {"ray", "mlflow", "redis"}
    core = {f"quantarena.{p}" for p in ("data", "engine", "strategies", "training", "tournaments")}
    assert set(c["source_modules"]) == core


def test_the_contract_is_live(tmp_path: Path) -> None:
    """Moving a package below one it imports breaks the layering: lint-imports really checks
    the imports (a contract that cannot fail would prove nothing)."""
    cfg = {**CONFIG, "contracts": [dict(contract("layers"))]}
    layers = list(cfg["contracts"][0]["layers"])
    i, j = layers.index("engine"), layers.index("data")
    layers[i], layers[j] = layers[j], layers[i]  # data above engine, which imports it
    cfg["contracts"][0]["layers"] = layers
    cfg["contracts"][0].pop("ignore_imports", None)
    path = tmp_path / "swapped.toml"
    path.write_text(toml_text(cfg))
    proc = lint_imports(path)
    assert proc.returncode == 1 and "BROKEN" in proc.stdout, proc.stdout + proc.stderr
    assert "quantarena.engine is not allowed to import quantarena.data" in proc.stdout
