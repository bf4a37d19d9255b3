"""The real parts a benchmark case runs against, as OS processes that are always cleaned up.

One :class:`Stack` per benchmark run: a Tansu broker, a Redis (the machine's, or a throw-away
one), and whatever sandboxes, ``sagebridge run`` replicas and ceiling loops the cases start.
Every process started through it is stopped by :meth:`Stack.close` (also on errors and
Ctrl-C), and each case stops its own processes as soon as it is done with them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from service.dev.devstack import (
    DevStackError,
    Process,
    Topics,
    free_port,
    redis_reachable,
    start_redis,
    start_tansu,
    wait_for_port,
)

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-6c1e"
TOKEN_B = "bench-token-b-91d4"
CUSTOMER, COMPANY = "1001", "ACME"
CUSTOMER_B, COMPANY_B = "2002", "BETA"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (``VmHWM``) in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Child:
    """A process the benchmark started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (the service drains), then SIGKILL if it takes longer than ``timeout_s``."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Sandbox:
    child: Child

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.child.port}"

    async def stats(self) -> dict[str, int]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{self.url}/_sandbox/stats")
            response.raise_for_status()
            body: dict[str, int] = response.json()
            return body


@dataclass
class Stack:
    """Broker + Redis for the whole run; sandboxes, replicas and ceilings per case."""

    log_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="sagebridge-bench-"))
    )
    broker: Process | None = None
    own_redis: Process | None = None
    redis_url: str = ""
    children: list[Child] = field(default_factory=list)

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

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, port: int = 0
    ) -> Child:
        log_path = self.log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=REPO,
                env={**os.environ, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        child = Child(name, popen, log_path, port)
        self.children.append(child)
        return child

    def stop(self, *children: Child) -> None:
        for child in children:
            child.stop()
            if child in self.children:
                self.children.remove(child)

    def start_sandbox(self, latency_ms: int = 0) -> Sandbox:
        port = free_port()
        argv = [sys.executable, "-m", "service", "sandbox", "--port", str(port)]
        argv += ["--token", TOKEN, "--token", TOKEN_B, "--latency-ms", str(latency_ms)]
        child = self.spawn("sandbox", argv, port=port)
        try:
            wait_for_port(port, 30.0, child.popen, "sandbox")
        except DevStackError:
            self.stop(child)
            raise
        return Sandbox(child)

    def tenants_file(self) -> Path:
        path = self.log_dir / "tenants.yaml"
        if not path.exists():
            path.write_text(
                f"tenants:\n  - {{customer: '{CUSTOMER_B}', company: {COMPANY_B}, "
                "token_env: BENCH_TOKEN_B}\n",
                encoding="utf-8",
            )
        return path

    def service_env(
        self, topics: Topics, sandbox: Sandbox, redis_prefix: str, **overrides: str
    ) -> dict[str, str]:
        return {
            "SAGEBRIDGE_KAFKA_BOOTSTRAP": self.bootstrap,
            "SAGEBRIDGE_INPUT_TOPICS": topics.events,
            "SAGEBRIDGE_GROUP_ID": topics.group,
            "SAGEBRIDGE_REPLY_TOPIC": topics.replies,
            "SAGEBRIDGE_DLT_TOPIC": topics.dlt,
            "SAGEBRIDGE_REDIS_URL": self.redis_url,
            "SAGEBRIDGE_REDIS_PREFIX": redis_prefix,
            "SAGEBRIDGE_CONNECTOR_URL": sandbox.url,
            "SAGEBRIDGE_AUTH_TOKEN": TOKEN,
            "SAGEBRIDGE_CUSTOMER": CUSTOMER,
            "SAGEBRIDGE_COMPANY": COMPANY,
            "SAGEBRIDGE_TENANTS_FILE": str(self.tenants_file()),
            "BENCH_TOKEN_B": TOKEN_B,
            "SAGEBRIDGE_KAFKA_SESSION_TIMEOUT_MS": "3000",
            **overrides,
        }

    def start_service(self, env: dict[str, str]) -> Child:
        port = free_port()
        argv = [sys.executable, "-m", "service", "run"]
        return self.spawn("service", argv, {**env, "SAGEBRIDGE_HTTP_PORT": str(port)}, port)

    def start_ceiling(self, topics: Topics) -> tuple[Child, Path]:
        ready = self.log_dir / f"ceiling-ready-{uuid.uuid4().hex[:6]}"
        argv = [sys.executable, "-m", "bench.ceiling", "--bootstrap", self.bootstrap]
        argv += ["--topic", topics.events, "--reply-topic", topics.replies]
        argv += ["--group", topics.group, "--ready-file", str(ready)]
        return self.spawn("ceiling", argv), ready


async def wait_ready(service: Child, timeout_s: float = 60.0) -> None:
    """Until ``GET /readyz`` answers 200 (joined the group, Redis reachable)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            if not service.alive():
                raise DevStackError(f"{service.name} exited while starting:\n{service.log_tail()}")
            try:
                response = await client.get(f"http://127.0.0.1:{service.port}/readyz")
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise DevStackError(f"{service.name} not ready after {timeout_s:.0f}s")
            await asyncio.sleep(0.1)


async def wait_file(child: Child, path: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(path.exists):
        if not child.alive():
            raise DevStackError(f"{child.name} exited while starting:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            raise DevStackError(f"{child.name} not ready after {timeout_s:.0f}s")
        await asyncio.sleep(0.05)
