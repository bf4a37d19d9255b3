"""``sagebridge run`` replicas as OS processes, for claims about crashes, signals, several
replicas, and for the benchmark.

A replica is ready when its health server answers ``GET /readyz`` with 200 (it has joined the
consumer group and reaches Redis); a replica that exits while one waits for that ends the wait
with its log's tail, not a timeout.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from service.dev.processes import REPO, Process, free_port, launch
from service.dev.topics import Topics
from service.dev.waiting import until
from service.errors import DevStackError

DRAIN_S = 20.0
"""How long a replica gets to drain after SIGTERM before it is killed."""


def service_env(
    *,
    bootstrap: str,
    topics: Topics,
    redis_url: str,
    redis_prefix: str,
    connector_url: str,
    token: str,
    customer: str,
    company: str,
) -> dict[str, str]:
    """The settings of a replica on ``topics``, as environment variables. The short session
    timeout matters on Tansu, which delays a group join by half of it."""
    return {
        "SAGEBRIDGE_KAFKA_BOOTSTRAP": bootstrap,
        "SAGEBRIDGE_INPUT_TOPICS": topics.events,
        "SAGEBRIDGE_GROUP_ID": topics.group,
        "SAGEBRIDGE_REPLY_TOPIC": topics.replies,
        "SAGEBRIDGE_DLT_TOPIC": topics.dlt,
        "SAGEBRIDGE_REDIS_URL": redis_url,
        "SAGEBRIDGE_REDIS_PREFIX": redis_prefix,
        "SAGEBRIDGE_CONNECTOR_URL": connector_url,
        "SAGEBRIDGE_AUTH_TOKEN": token,
        "SAGEBRIDGE_CUSTOMER": customer,
        "SAGEBRIDGE_COMPANY": company,
        "SAGEBRIDGE_KAFKA_SESSION_TIMEOUT_MS": "3000",
    }


def write_tenants_file(path: Path, *tenants: Mapping[str, object]) -> Path:
    """A tenants file (``SAGEBRIDGE_TENANTS_FILE``) listing ``tenants``, each an entry such as
    ``{"customer": "2002", "company": "BETA", "token_env": "BETA_TOKEN"}``."""
    entries = [dict(tenant) for tenant in tenants]
    path.write_text(yaml.safe_dump({"tenants": entries}, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class ServiceProcess(Process):
    """One replica; :attr:`port` is its health server's."""

    async def _readyz(self) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return await client.get(f"http://127.0.0.1:{self.port}/readyz")
        except httpx.HTTPError:
            return None

    async def ready(self) -> bool:
        """``/readyz`` answers 200; :class:`DevStackError` if the process has exited."""
        if not self.alive():
            raise DevStackError(f"{self.name} pid {self.pid} exited:\n{self.log_tail()}")
        response = await self._readyz()
        return response is not None and response.status_code == 200

    async def assigned(self) -> bool:
        """The consumer group gave this replica its partitions (ready or not otherwise)."""
        response = await self._readyz()
        return response is not None and bool(response.json()["checks"]["kafka_assigned"])

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        await until(self.ready, timeout_s, f"{self.name} pid {self.pid} to be ready")

    def stop(self, timeout_s: float = DRAIN_S) -> None:
        super().stop(timeout_s)


def start_service(env: dict[str, str], log_path: Path, port: int | None = None) -> ServiceProcess:
    """``python -m service run`` with ``env`` added to this process's environment and its
    health server on ``port`` (a free one by default); returns at once, see
    :meth:`ServiceProcess.wait_ready`."""
    port = port or free_port()
    argv = [sys.executable, "-m", "service", "run"]
    popen = launch(argv, log_path, env={**env, "SAGEBRIDGE_HTTP_PORT": str(port)}, cwd=REPO)
    return ServiceProcess("service", popen, log_path, port)
