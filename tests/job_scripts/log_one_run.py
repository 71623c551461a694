"""A tiny Ray-job entrypoint for tests/test_jobs.py: load a tournament config that travelled
in the job's working dir and log one MLflow run describing what the job saw.

usage: python tests/job_scripts/log_one_run.py CONFIG MLFLOW_URI
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())  # import quantarena from the job's working dir

from quantarena.config import TournamentConfig  # noqa: E402
from quantarena.tracking.mlflow_logger import TournamentLogger  # noqa: E402


def main() -> None:
    config_path, uri = sys.argv[1], sys.argv[2]
    cfg = TournamentConfig.from_yaml(config_path, check_paths=True)
    cwd = Path.cwd()
    job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")).get("metadata", {})
    with TournamentLogger(uri, f"{cfg.name}-job") as log:
        log.start(
            cfg,
            tags={
                "job.id": job.get("job_submission_id", ""),
                "job.config": job.get("quantarena.config", ""),
                "job.has_venv": (cwd / ".venv").exists(),
                "job.has_git": (cwd / ".git").exists(),
                "job.has_package": (cwd / "quantarena" / "config.py").exists(),
                "job.ray_address_set": bool(os.environ.get("RAY_ADDRESS")),
            },
        )
        for agent in cfg.agents:
            log.agent_run(agent.name, kind=agent.kind)
            log.log_round(agent.name, 0, {"grid_size": agent.grid_size})
    print(f"logged {len(cfg.agents)} agents of {cfg.name} to {uri}")


if __name__ == "__main__":
    main()
