"""The real parts a benchmark case runs against, as OS processes that are always cleaned up.

One :class:`Stack` per benchmark run: a Tansu broker, a Redis (the machine's, or a throw-away
one), and whatever sandboxes, ``sagebridge run`` replicas and ceiling loops the cases start.
Every process started through it is stopped by :meth:`Stack.close` (also on errors and
Ctrl-C), and each case stops its own processes as soon as it is done with them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from service.dev.contracts import contracts_with_arrays
from service.dev.devstack import redis_reachable, start_redis, start_tansu
from service.dev.processes import REPO, Process, spawn
from service.dev.replicas import ServiceProcess, service_env, start_service, write_tenants_file
from service.dev.sandbox.process import SandboxProcess, start_sandbox_process
from service.dev.topics import Topics
from service.dev.waiting import until
from service.errors import DevStackError

TOKEN = "bench-token-6c1e"
TOKEN_B = "bench-token-b-91d4"
TOKEN_C = "bench-token-c-4a07"
CUSTOMER, COMPANY = "1001", "ACME"
CUSTOMER_B, COMPANY_B = "2002", "BETA"
CUSTOMER_C, COMPANY_C = "3003", "GAMMA"
STOP_S = 20.0
"""How long a case's process gets after SIGTERM (a replica drains) before it is killed."""


@dataclass
class Stack:
    """Broker + Redis for the whole run; sandboxes, replicas and ceilings per case."""

    log_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="sagebridge-bench-"))
    )
    broker: Process | None = None
    own_redis: Process | None = None
    redis_url: str = ""
    children: list[Process] = field(default_factory=list)

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        given = os.environ.get("SAGEBRIDGE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
        if redis_reachable(given):
            self.redis_url = given
        else:
            self.own_redis = start_redis(self.log_dir)
            self.redis_url = f"redis://127.0.0.1:{self.own_redis.port}/0"
        self.broker = start_tansu(self.log_dir)

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return f"127.0.0.1:{self.broker.port}"

    def close(self) -> None:
        """Stop everything still running, newest first; never raises."""
        for child in reversed(self.children):
            try:
                child.stop(timeout_s=10.0)
            except Exception as exc:
                print(f"bench: could not stop {child.name}: {exc}", file=sys.stderr)
        self.children.clear()
        for process in (self.broker, self.own_redis):
            if process is not None:
                try:
                    process.stop()
                except Exception as exc:
                    print(f"bench: could not stop {process.name}: {exc}", file=sys.stderr)
        self.broker = self.own_redis = None

    # -- children ---------------------------------------------------------------------------

    def _log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"

    def stop(self, *children: Process) -> None:
        for child in children:
            child.stop(timeout_s=STOP_S)
            if child in self.children:
                self.children.remove(child)

    def start_sandbox(self, latency_ms: int = 0, tokens: Sequence[str] = ()) -> SandboxProcess:
        """A sandbox knowing the bench's three tokens and ``tokens``."""
        known = (TOKEN, TOKEN_B, TOKEN_C, *tokens)
        sandbox = start_sandbox_process(self.log_dir, known, latency_ms)
        self.children.append(sandbox)
        warm_up(sandbox)
        return sandbox

    def tenants_file(self) -> Path:
        path = self.log_dir / "tenants.yaml"
        if not path.exists():
            beta = {"customer": CUSTOMER_B, "company": COMPANY_B, "token_env": "BENCH_TOKEN_B"}
            gamma = {"customer": CUSTOMER_C, "company": COMPANY_C, "token_env": "BENCH_TOKEN_C"}
            write_tenants_file(path, beta, gamma)
        return path

    def service_env(
        self, topics: Topics, sandbox: SandboxProcess, redis_prefix: str, **overrides: str
    ) -> dict[str, str]:
        settings = service_env(
            bootstrap=self.bootstrap,
            topics=topics,
            redis_url=self.redis_url,
            redis_prefix=redis_prefix,
            connector_url=sandbox.url,
            token=TOKEN,
            customer=CUSTOMER,
            company=COMPANY,
        )
        return {
            **settings,
            "SAGEBRIDGE_TENANTS_FILE": str(self.tenants_file()),
            "BENCH_TOKEN_B": TOKEN_B,
            "BENCH_TOKEN_C": TOKEN_C,
            **overrides,
        }

    def contracts_dir(self, batch_max: int) -> Path:
        """The shipped contracts with AR invoices sent in arrays of up to ``batch_max``."""
        return contracts_with_arrays(self.log_dir / f"contracts-array{batch_max}", batch_max)

    def start_service(self, env: dict[str, str]) -> ServiceProcess:
        service = start_service(env, self._log_path("service"))
        self.children.append(service)
        return service

    def start_ceiling(self, topics: Topics) -> tuple[Process, Path]:
        ready = self.log_dir / f"ceiling-ready-{uuid.uuid4().hex[:6]}"
        argv = [sys.executable, "-m", "bench.ceiling", "--bootstrap", self.bootstrap]
        argv += ["--topic", topics.events, "--reply-topic", topics.replies]
        argv += ["--group", topics.group, "--ready-file", str(ready)]
        ceiling = spawn("ceiling", argv, self._log_path("ceiling"), cwd=REPO)
        self.children.append(ceiling)
        return ceiling, ready


async def wait_file(child: Process, path: Path, timeout_s: float = 60.0) -> None:
    """Until ``child`` has written ``path`` (how the ceiling loop says it has its partitions)."""

    async def written() -> bool:
        if not child.alive():
            raise DevStackError(f"{child.name} exited while starting:\n{child.log_tail()}")
        return await asyncio.to_thread(path.exists)

    await until(written, timeout_s, f"{child.name} to be ready")


def warm_up(sandbox: SandboxProcess) -> None:
    """One look-up before the case: a fresh sandbox's first request costs it about 40 ms of its
    own start-up (the service's first call against a warmed one takes 2-3 ms), which would
    otherwise count against the service in every case that starts a sandbox. A look-up is a
    read: no business call in the sandbox's counters."""
    response = httpx.get(
        f"{sandbox.url}/accountsReceivable",
        params={"InvoiceNo": "warm-up"},
        headers={"Auth-Token": TOKEN, "customer": CUSTOMER, "company": COMPANY},
        timeout=30.0,
    )
    response.raise_for_status()
