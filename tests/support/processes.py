"""``sagebridge run`` as real OS processes, for claims about replicas, crashes and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.dev.devstack import free_port
from tests.support.waiting import until

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServiceProcess:
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        env = {**os.environ, **self.env, "SAGEBRIDGE_HTTP_PORT": str(self.port)}
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "service", "run"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    async def ready(self) -> bool:
        assert self.popen is not None
        assert self.popen.poll() is None, f"service exited: {self.log_path.read_text()[-2000:]}"
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def assigned(self) -> bool:
        """The consumer group gave this process its partitions (ready or not otherwise)."""
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
        except httpx.HTTPError:
            return False
        return bool(response.json()["checks"]["kafka_assigned"])

    async def wait_ready(self, timeout_s: float = 30) -> None:
        await until(self.ready, timeout_s, f"service pid {self.pid} to be ready")

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def terminate(self, timeout_s: float = 20) -> int:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout_s)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()
