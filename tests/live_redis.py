"""A private redis-server for the live tests (port 6396, append-only file fsynced always)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

PORT = 6396


class RedisServer:
    """``redis-server --port 6396`` persisting to ``workdir`` (AOF, ``appendfsync always``)."""

    def __init__(self, workdir: Path, port: int = PORT, password: str | None = None) -> None:
        self.dir = Path(workdir)
        self.port = port
        self.password = password  # requirepass: clients must give it
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--protected-mode", "no",
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        r = redis.Redis(port=self.port, password=self.password)
        for _ in range(200):
            try:
                if r.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, only what the AOF holds survives."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        self.kill()
