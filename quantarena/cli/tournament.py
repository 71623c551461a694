"""``quantarena submit``: run a tournament config — or a live config
(:mod:`quantarena.cli.live_jobs`) — as a Ray job on a cluster.

``register(app)`` adds the command to the root app. Only typer and rich load at import;
Ray and the config load inside the command.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from quantarena.cli.errors import err_console, user_errors

__all__ = ["register", "submit_command"]


def submit_command(
    config: Path = typer.Argument(..., help="Tournament config (YAML) inside this repository."),
    address: str = typer.Option(
        "http://127.0.0.1:8265",
        "--address",
        "-a",
        envvar="RAY_API_SERVER_ADDRESS",
        help="Ray Jobs API address: the dashboard URL of the cluster's head node.",
    ),
    wait: bool = typer.Option(
        False, "--wait", "-w", help="Follow the job's logs; exit 0 only if it SUCCEEDED."
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="With --wait: give up following after this many seconds."
    ),
    mlflow_uri: str | None = typer.Option(
        None,
        "--mlflow-uri",
        help="Tracking URI the job logs to (an MLflow server, or an "
        "absolute sqlite://// path on the cluster); overrides the config.",
    ),
    output_dir: str | None = typer.Option(
        None, "--output-dir", help="Absolute folder on the cluster for plots and tables."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the tournament from its last checkpoint."
    ),
    allow_absolute_paths: bool = typer.Option(
        False,
        "--allow-absolute-paths",
        help="Let the config read data at absolute paths on the cluster (default: only "
        "inside the job's working dir).",
    ),
    idle_stop: float | None = typer.Option(
        None, "--idle-stop", help="Live configs: stop when no bar came for this many seconds."
    ),
) -> None:
    """Validate CONFIG here, then submit it to a Ray cluster as a job.

    The job runs `python -m quantarena tournament run CONFIG` in a copy of this repository
    (without .venv, .git, runs/, stores). With token auth on the cluster, the token is read
    from RAY_AUTH_TOKEN, the file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token (it is
    never printed). On a cluster at 127.0.0.1 the job's results stay here: a relative
    SQLite tracking URI and output dir become absolute paths in this folder.

    A live config (agents, feed, no data section) runs `quantarena live run CONFIG` instead;
    its Redis URL comes from QUANTARENA_REDIS in this shell (never from the config).
    """
    from quantarena.cli.live_jobs import is_live_config
    from quantarena.cluster import jobs

    live = is_live_config(config)
    if live and (mlflow_uri or output_dir or resume):
        with user_errors():
            raise ValueError(
                f"{config}: a live config takes no --mlflow-uri, --output-dir or --resume "
                "(its mlflow: and out: keys say where it logs; it always resumes from Redis)"
            )

    if not live and not mlflow_uri and not output_dir:
        with user_errors():
            mlflow_uri, output_dir = jobs.keep_results_here(config, address)

    out = Console(highlight=False, soft_wrap=True)

    def log(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def announce(job_id: str) -> None:
        out.print(f"submitted job [bold]{job_id}[/]")
        out.print(f"dashboard: {jobs.dashboard_url(address, job_id)}", markup=False)

    extra = ""
    if mlflow_uri:
        extra += f" --mlflow-uri {shlex.quote(mlflow_uri)}"
    if output_dir:
        extra += f" --output-dir {shlex.quote(output_dir)}"
    if resume:
        extra += " --resume"
    with user_errors():
        try:
            if live:
                from quantarena.cli.live_jobs import submit_live

                job_id = submit_live(
                    config, address=address, wait=wait, log=log, timeout_s=timeout,
                    on_submit=announce, allow_absolute=allow_absolute_paths,
                    idle_stop=idle_stop,
                )  # fmt: skip
            else:
                job_id = _submit_tournament(jobs, config, address, wait, log, timeout,
                                            announce, extra, mlflow_uri, allow_absolute_paths)  # fmt: skip
        except (jobs.JobFailedError, TimeoutError) as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
            raise typer.Exit(1) from None
    if wait:
        out.print(f"job {job_id} [bold green]SUCCEEDED[/]")


def _submit_tournament(
    jobs: Any, config: Path, address: str, wait: bool, log: Any, timeout: float | None,
    announce: Any, extra: str, mlflow_uri: str | None, allow_absolute: bool,
) -> str:  # fmt: skip
    """``jobs.submit`` of a tournament config with the command's options."""
    return jobs.submit(
        config,
        address=address,
        wait=wait,
        log=log,
        timeout_s=timeout,
        on_submit=announce,
        entrypoint=jobs.TOURNAMENT_ENTRYPOINT + extra if extra else None,
        mlflow_uri_override=mlflow_uri,
        allow_absolute=allow_absolute,
    )


def register(app: typer.Typer) -> None:
    """Add ``submit`` to the root ``quantarena`` app."""
    app.command(
        "submit",
        help="Run a tournament config as a job on a Ray cluster (--wait follows its logs).",
    )(submit_command)
