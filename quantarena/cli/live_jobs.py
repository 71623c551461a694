"""A live config as a Ray job: ``quantarena submit configs/live.yaml`` (docs/operations.md).

``quantarena submit`` recognises a live config (:func:`is_live_config`: ``agents`` and no
``data`` section) and submits ``python -m quantarena live run CONFIG [--idle-stop S]`` with
the same Jobs API address, token auth and path confinement as a tournament:

* the config must lie inside the job's working dir (the repository), and so must its ``out``
  folder unless ``--allow-absolute-paths`` (checked here and again by the job:
  :data:`~quantarena.cluster.jobs.CONFINE_ENV`, :func:`confine_live`);
* the Redis URL's password never travels in the config or the command line: a submitted
  live config must not hold one (``redis:`` with a password is refused); the job reads
  ``QUANTARENA_REDIS`` from its runtime environment instead, copied from the submitting
  shell's environment when set there. Nothing prints the URL unmasked.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["LIVE_ENTRYPOINT", "REDIS_ENV", "confine_live", "is_live_config", "submit_live"]

#: the job's command; ``{config}`` is the config's path relative to the working dir
LIVE_ENTRYPOINT = "python -m quantarena live run {config}"
#: the Redis URL of a live run when its config has no ``redis:`` key
REDIS_ENV = "QUANTARENA_REDIS"


def is_live_config(path: str | Path) -> bool:
    """Whether the YAML at ``path`` is a live config (``agents`` and no ``data`` section);
    False when it cannot be read (the tournament loader then says why)."""
    import yaml

    try:
        d = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(d, dict) and "agents" in d and "data" not in d and "name" not in d


def confine_live(cfg: Any, source: str, root: Path, *, allow_absolute: bool = False) -> None:
    """Refuse (one line) a live config's ``out`` folder outside ``root``: a relative path
    that climbs out, or an absolute one unless ``allow_absolute``."""
    from quantarena.config import ConfigError

    p = Path(cfg.out)
    if p.is_absolute():
        if not allow_absolute:
            raise ConfigError(
                f"{source}: out: {p} is outside the job's working dir — pass "
                "--allow-absolute-paths to write events to a path on the cluster"
            )
        return
    base = root.resolve()
    try:
        (base / p).resolve().relative_to(base)
    except ValueError:
        raise ConfigError(
            f"{source}: out: {p} leads outside the job's working dir {base} — keep it inside"
        ) from None


def confine_in_job(config: Path, cfg: Any) -> None:
    """In a job submitted without ``--allow-absolute-paths`` (:data:`CONFINE_ENV` set): the
    live config and its ``out`` must lie inside the job's working dir (the current folder)."""
    from quantarena.cluster.jobs import CONFINE_ENV
    from quantarena.config import ConfigError

    if os.environ.get(CONFINE_ENV) != "1":
        return
    root = Path.cwd().resolve()
    try:
        config.resolve().relative_to(root)
    except ValueError:
        raise ConfigError(
            f"{config}: the config is outside the job's working dir {root} — submit it "
            "from inside the repository"
        ) from None
    confine_live(cfg, str(config), root)


def submit_live(
    config_path: str | Path,
    *,
    address: str,
    wait: bool = False,
    log: Callable[[str], None],
    timeout_s: float | None = None,
    on_submit: Callable[[str], None] | None = None,
    allow_absolute: bool = False,
    idle_stop: float | None = None,
    working_dir: str | Path | None = None,
) -> str:
    """Validate a live config here and submit ``quantarena live run`` of it as a Ray job;
    return the job id (errors: one line, see the module)."""
    from quantarena.cluster.jobs import (
        CONFINE_ENV,
        _config_in_working_dir,
        job_runtime_env,
        repo_root,
        submit_entrypoint,
    )
    from quantarena.config import ConfigError
    from quantarena.live.service import load_live_config
    from quantarena.redact import redact_text

    path = Path(config_path)
    cfg = load_live_config(path)
    raw = _raw(path)
    if "redis" in raw and redact_text(str(raw["redis"])) != str(raw["redis"]):
        raise ConfigError(
            f"{path}: redis: the URL holds a password, which would travel with the job — "
            f"remove it from the config and set {REDIS_ENV} in this shell instead"
        )
    wd = Path(working_dir) if working_dir is not None else repo_root()
    rel = _config_in_working_dir(path, wd)
    confine_live(cfg, str(path), wd, allow_absolute=allow_absolute)
    env_vars = {} if allow_absolute else {CONFINE_ENV: "1"}
    if "redis" not in raw and os.environ.get(REDIS_ENV):
        env_vars[REDIS_ENV] = os.environ[REDIS_ENV]
    command = LIVE_ENTRYPOINT.format(config=shlex.quote(rel))
    if idle_stop is not None:
        command += f" --idle-stop {float(idle_stop):g}"
    return submit_entrypoint(
        command,
        address=address,
        runtime_env=job_runtime_env(wd, env_vars=env_vars),
        wait=wait,
        log=log,
        timeout_s=timeout_s,
        metadata={"quantarena.name": f"live:{path.stem}", "quantarena.config": rel},
        on_submit=on_submit,
    )


def _raw(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
