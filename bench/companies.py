"""Scale in companies: one replica serving 1, 10 or 100 Sage companies at once.

A reseller or a contractor with many companies runs them all through one deployment: a tenants
file with a token each, one lock, queue and worker per company, one breaker and a few metrics
series each. These cases measure how that grows:

- ``companies-<n>-serial``: AR invoices one per call, dealt in turn to ``n`` companies, against
  a sandbox answering in :data:`LATENCY_MS`; the ideal is ``n`` x 1/latency;
- ``companies-<n>-batch``: contacts spread over the same companies (master data, arrays);
- ``companies-100-serial-3r``: the hundred companies' invoices on three replicas. The invoices
  are keyed by invoice number, as a CRM keys its records, so every replica gets some of every
  company's invoices and the replicas take turns on each company's lock.

After the last reply each case looks at the service while every company is idle: its Redis
connections (its own sockets to Redis, from ``/proc``), its metrics series per company (from
``/metrics``), and the Redis commands it sends per second (``MONITOR``, counting only commands
from its own connections, so the other users of a shared Redis do not count).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from redis.asyncio import Redis

from service.dev import events
from service.dev.replicas import write_tenants_file

COMPANIES = "companies"
COUNTS = (1, 10, 100)
LATENCY_MS = 50
IDLE_SETTLE_S = 1.0
"""After the last reply, before the idle window: the last holds release their locks."""
REDIS_PORT_DEFAULT = 6379


def serial_key(count: int) -> str:
    return f"{COMPANIES}-{count}-serial"


def batch_key(count: int) -> str:
    return f"{COMPANIES}-{count}-batch"


REPLICAS = 3
MOST = COUNTS[-1]


def replicas_key(count: int = MOST) -> str:
    return f"{serial_key(count)}-{REPLICAS}r"


KEYS = (
    *(key for count in COUNTS for key in (serial_key(count), batch_key(count))),
    replicas_key(),
)


@dataclass(frozen=True)
class Company:
    """One company of the tenants file, with its own token (passed in an environment variable)."""

    customer: str
    company: str
    token: str

    @property
    def token_env(self) -> str:
        return f"BENCH_TOKEN_{self.company}"


def companies(count: int) -> tuple[Company, ...]:
    return tuple(
        Company(f"{7000 + n}", f"CO{n:03d}", f"bench-token-co{n:03d}-{n * 7919 % 10007:05d}")
        for n in range(count)
    )


def tenants_file(directory: Path, chosen: Sequence[Company]) -> Path:
    path = directory / f"tenants-{len(chosen)}.yaml"
    entries = [
        {"customer": c.customer, "company": c.company, "token_env": c.token_env} for c in chosen
    ]
    return write_tenants_file(path, *entries)


def service_env(directory: Path, chosen: Sequence[Company]) -> dict[str, str]:
    """The service's settings for these companies: the tenants file and a token each."""
    env = {"SAGEBRIDGE_TENANTS_FILE": str(tenants_file(directory, chosen))}
    env.update({c.token_env: c.token for c in chosen})
    return env


def invoices(per_company: int, chosen: Sequence[Company]) -> list[tuple[bytes, bytes]]:
    """``per_company`` AR invoices for each company, dealt in turn (one after another)."""
    feed = []
    for n in range(per_company * len(chosen)):
        company = chosen[n % len(chosen)]
        data = {"InvoiceNo": f"INV{n:07d}", "CustomerNo": f"C{n % 500:05d}", "Amount": n}
        body = events.event(
            f"invoice-{n}",
            data,
            type="ar_invoice.create",
            tenant=events.tenant(company.customer, company.company),
        )
        feed.append((f"INV{n:07d}".encode(), orjson.dumps(body)))
    return feed


def contacts(count: int, chosen: Sequence[Company]) -> list[tuple[bytes, bytes]]:
    """``count`` contact upserts dealt in turn over the companies."""
    from bench.feed import contact

    feed = []
    for n in range(count):
        company = chosen[n % len(chosen)]
        data = contact(n)
        key = f"{company.company}|{data['CustomerNo']}|{data['ContactCode']}"
        body = events.event(
            f"contact-{n}", data, tenant=events.tenant(company.customer, company.company)
        )
        feed.append((key.encode(), orjson.dumps(body)))
    return feed


@dataclass
class Idle:
    """The service with every company idle."""

    redis_connections: int
    series_per_company: float
    """Metrics series labelled with one company (the most any company has)."""
    redis_commands_per_s: float
    commands: dict[str, int]
    """The commands seen in the idle window, by name."""
    busy_companies: float
    """Companies still holding a serial worker (a task) once idle: 0 when idle costs none."""
    ready_rss_mb: float
    """The service's peak RSS once ready, before any event: what the configured companies
    cost while idle."""


async def observe_idle(
    pid: int, health_port: int, redis_url: str, window_s: float, ready_rss_mb: float
) -> Idle:
    """Connections, series, workers and Redis traffic of the service ``pid`` once its
    companies are idle, the traffic over ``window_s`` seconds."""
    await asyncio.sleep(IDLE_SETTLE_S)  # a measurement window, not synchronisation
    ports = redis_client_ports(pid, _redis_port(redis_url))
    metrics = await scrape(health_port)
    seen = await monitor(redis_url, ports, window_s)
    return Idle(
        len(ports),
        series_per_company(metrics),
        sum(seen.values()) / window_s,
        dict(seen),
        busy_companies=gauge(metrics, "sagebridge_serial_busy_companies"),
        ready_rss_mb=ready_rss_mb,
    )


def _redis_port(url: str) -> int:
    found = re.search(r":(\d+)(/|$)", url.rsplit("@", maxsplit=1)[-1])
    return int(found.group(1)) if found else REDIS_PORT_DEFAULT


def redis_client_ports(pid: int, redis_port: int) -> set[int]:
    """The local ports of ``pid``'s TCP connections to ``redis_port`` (Linux ``/proc``)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = fd.readlink().name if fd.is_symlink() else ""
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            to_redis = int(remote.rsplit(":", 1)[1], 16) == redis_port
            if state == "01" and to_redis and inode in inodes:  # 01: established
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


async def scrape(health_port: int) -> str:
    """The service's /metrics text."""
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"http://127.0.0.1:{health_port}/metrics")).text


def gauge(metrics: str, name: str) -> float:
    """An unlabelled sample's value in a /metrics text (NaN when absent)."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else math.nan


def series_per_company(metrics: str) -> float:
    per: Counter[str] = Counter()
    for line in metrics.splitlines():
        if line.startswith("#"):
            continue
        found = re.search(r'company="([^"]*)"', line)
        if found:
            per[found.group(1)] += 1
    return max(per.values(), default=0)


async def monitor(redis_url: str, ports: set[int], window_s: float) -> Counter[str]:
    """Commands Redis ran for clients on ``ports`` during ``window_s`` seconds, by name."""
    seen: Counter[str] = Counter()
    redis = Redis.from_url(redis_url)
    try:
        async with redis.monitor() as watching:

            async def count() -> None:
                while True:
                    command = await watching.next_command()
                    if int(command.get("client_port") or 0) in ports:
                        seen[str(command["command"]).split(" ", 1)[0].upper()] += 1

            task = asyncio.create_task(count())
            deadline = time.monotonic() + window_s
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await redis.aclose()
    return seen
