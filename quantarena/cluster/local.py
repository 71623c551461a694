"""A Ray head node on this machine that we start and stop ourselves (tests, a laptop).

``ray stop`` stops EVERY Ray process of the user, including other people's local Rays.
:class:`LocalHead` instead runs ``ray start --head --block`` in a session of its own and, on
:meth:`~LocalHead.stop`, ends only that session: SIGTERM to the ``ray start`` process (it
drains and stops its GCS, raylet, dashboard and workers), then SIGKILL, by pid, to whatever
of its own processes is left (same session id, or a descendant recorded before stopping —
job drivers run in sessions of their own).

Ports default to free ones chosen at start (never 6379, Redis's port); the temp dir defaults
to a fresh short folder (Ray's socket paths must stay under ~107 characters), so the head's
``ray_current_cluster`` file does not redirect other people's ``ray.init()``.

Token auth stays ON: pass ``token=`` and the head runs with ``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN_PATH`` pointing to a file in its temp dir holding that token::

    with LocalHead(num_cpus=1, token="s3cret") as head:
        print(head.dashboard_url)      # http://127.0.0.1:PORT — the Jobs API address
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["LocalHead", "free_port"]

_REDIS_PORT = 6379


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """``preferred`` if it can be bound now, else a free port picked by the OS (never 6379)."""
    candidates = [preferred] if preferred else []
    for port in candidates:
        if port != _REDIS_PORT and _can_bind(host, port):
            return port
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port != _REDIS_PORT:
            return port
    raise RuntimeError("no free TCP port found")


def _can_bind(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ray_executable() -> str:
    exe = Path(sys.executable).with_name("ray")
    if exe.exists():
        return str(exe)
    found = shutil.which("ray")
    if not found:
        raise RuntimeError("the `ray` command is not installed next to this Python or on PATH")
    return found


class LocalHead:
    """A ``ray start --head`` node owned by this process. See the module docstring.

    Args:
        num_cpus, num_gpus: resources the head declares (``num_gpus`` may be logical).
        port: the GCS port (default: 6380 if free, else any free port).
        dashboard_port: the dashboard / Jobs API port (default: 8265 if free, else any).
        token: enable token auth with this token (None: the head follows the environment).
        temp_dir: Ray's temp dir (default: a new short folder under /tmp, removed on stop).
        env: extra environment for the head (and so for its workers and jobs).
        start_timeout_s: how long :meth:`start` waits for the dashboard to answer.
    """

    def __init__(
        self,
        *,
        num_cpus: int = 1,
        num_gpus: float | None = None,
        port: int | None = None,
        dashboard_port: int | None = None,
        token: str | None = None,
        temp_dir: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 90.0,
    ) -> None:
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self._port_wish = port
        self._dash_wish = dashboard_port
        self.token = token
        self._own_temp = temp_dir is None
        self.temp_dir = Path(temp_dir) if temp_dir is not None else None
        self.extra_env = dict(env or {})
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.port = 0
        self.dashboard_port = 0
        self.log_path: Path | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def address(self) -> str:
        """The GCS address ``127.0.0.1:PORT`` (for ``ray.init(address=...)``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard and Jobs API URL ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def token_path(self) -> Path | None:
        """The token file the head reads (None without ``token``)."""
        return None if self.token is None or self.temp_dir is None else self.temp_dir / "auth_token"

    def environment(self) -> dict[str, str]:
        """The environment the head runs with (inherited, minus RAY_ADDRESS, plus auth)."""
        env = dict(os.environ)
        for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
            env.pop(key, None)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # jobs' `python` = this one
        if self.token is not None:
            env.pop("RAY_AUTH_TOKEN", None)
            env["RAY_AUTH_MODE"] = "token"
            env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalHead:
        """Start the head and wait until its dashboard answers; raises ``RuntimeError`` with
        the tail of Ray's output if it does not come up."""
        if self.proc is not None:
            return self
        if self.temp_dir is None:
            self.temp_dir = Path(tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp"))
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        if self.token is not None:
            assert self.token_path is not None
            self.token_path.write_text(self.token, encoding="utf-8")
            self.token_path.chmod(0o600)
        self.port = free_port(self._port_wish or 6380)
        self.dashboard_port = free_port(self._dash_wish or 8265)
        cmd = [
            _ray_executable(),
            "start",
            "--head",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--num-cpus={self.num_cpus}",
            f"--temp-dir={self.temp_dir}",
        ]
        if self.num_gpus is not None:
            cmd.append(f"--num-gpus={self.num_gpus}")
        self.log_path = self.temp_dir / "ray-start.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed by the child's exit
        self.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            cwd=self.temp_dir,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, num_cpus: int = 1, timeout_s: float = 90.0) -> None:
        """Join a worker node (``ray start --address``, its own session, same auth) to this
        head: a second node on this machine for multi-node tests. Stopped with the head."""

        if self.proc is None:
            raise RuntimeError("start the head first")
        before = self._alive_nodes()
        cmd = [
            _ray_executable(),
            "start",
            f"--address={self.address}",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={num_cpus}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
        ]
        assert self.temp_dir is not None
        log = open(self.temp_dir / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        self.workers.append(
            subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.temp_dir,
                start_new_session=True,
            )
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._alive_nodes() > before:
                return
            if self.workers[-1].poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"the worker node did not join within {timeout_s:.0f} s")

    def _alive_nodes(self) -> int:
        """Alive nodes, from the dashboard's node list."""
        import json
        import urllib.request

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        req = urllib.request.Request(f"{self.dashboard_url}/nodes?view=summary", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                data = json.loads(resp.read())
        except (OSError, ValueError):
            return 0
        rows = data.get("data", {}).get("summary", [])
        return sum(1 for r in rows if r.get("raylet", {}).get("state") == "ALIVE")

    def _wait_ready(self) -> None:
        import urllib.error
        import urllib.request

        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = f"{self.dashboard_url}/api/version"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ray start exited with code {self.proc.returncode}: {self._tail()}"
                )
            try:
                req = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200 and self._jobs_ready(headers):
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(
            f"the Ray head did not answer within {self.start_timeout_s:.0f} s: {self._tail()}"
        )

    def _jobs_ready(self, headers: Mapping[str, str]) -> bool:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(f"{self.dashboard_url}/api/jobs/", headers=dict(headers))
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _tail(self, n: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no output)"
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-n:])

    def _own_procs(self) -> dict[int, Any]:
        """Live processes that belong to this head and its workers (their sessions, and
        descendants), as ``psutil.Process`` objects: they remember their start time, so a
        pid reused by an unrelated process later is never signalled."""
        if self.proc is None:
            return {}
        import psutil

        leaders = [self.proc, *self.workers]
        sids = {p.pid for p in leaders}  # start_new_session=True: session id = leader's pid
        procs: dict[int, Any] = {}
        for leader in leaders:
            try:
                for p in psutil.Process(leader.pid).children(recursive=True):
                    procs[p.pid] = p
            except psutil.Error:
                pass
        for p in psutil.process_iter():
            try:
                if p.pid not in procs and os.getsid(p.pid) in sids:
                    procs[p.pid] = p
            except (OSError, psutil.Error):
                continue
        procs.pop(os.getpid(), None)
        for leader in leaders:
            procs.pop(leader.pid, None)
        return procs

    def stop(self, timeout_s: float = 40.0) -> None:
        """Stop this head only (see the module docstring); remove its temp dir if we made it."""
        if self.proc is None:
            return
        import psutil

        procs = self._own_procs()
        for w in self.workers:  # workers first: they leave the head cleanly
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(timeout=10)
        self.workers = []
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        procs.update(self._own_procs())
        alive = []
        for p in procs.values():
            try:
                if p.is_running():
                    p.kill()
                    alive.append(p)
            except psutil.Error:
                continue
        psutil.wait_procs(alive, timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        if self._own_temp and self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalHead:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
