"""A Redis that may evict keys, against ``sagebridge run`` as a real process.

Under an evicting ``maxmemory-policy`` the ledger's entries (they carry TTLs) can vanish under
memory pressure, and a redelivered invoice would be sent again. Such a Redis is refused at
start-up in one line unless the operator allows it; where ``CONFIG`` is refused (managed
Redis), a growing ``evicted_keys`` is treated as a loss of Redis data: a fresh epoch and a
quarantine, as when Redis comes back empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from service.dev.devstack import start_redis
from service.dev.processes import Process
from service.dev.replicas import ServiceProcess
from tests.support.waiting import until

MANAGED = ("--rename-command", "CONFIG", "")
"""A Redis as managed services offer it: CONFIG refused."""


@pytest.fixture
def redis_with() -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(*options: str) -> Process:
        process = start_redis(options=options)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


async def readyz(service: ServiceProcess) -> dict:
    async with httpx.AsyncClient(timeout=2) as client:
        return (await client.get(f"http://127.0.0.1:{service.port}/readyz")).json()


def url(redis: Process) -> str:
    return f"redis://127.0.0.1:{redis.port}/0"


async def test_an_evicting_redis_refuses_start_up_in_one_line(replicas, redis_with) -> None:
    redis = redis_with("--maxmemory-policy", "allkeys-lru")
    service = replicas(SAGEBRIDGE_REDIS_URL=url(redis))

    async def exited() -> bool:
        return not service.alive()

    await until(exited, 30, "the service to refuse an evicting Redis")
    assert service.popen.returncode == 2
    log = service.log_path.read_text()
    line = (
        "sagebridge: cannot start: Redis maxmemory-policy is allkeys-lru: it may evict ledger "
        "entries and tenant locks, and a record could be sent twice"
    )
    assert log.count(line) == 1, log[-2000:]
    assert "Traceback" not in log


async def test_allowed_eviction_starts_and_says_so(replicas, redis_with) -> None:
    redis = redis_with("--maxmemory-policy", "allkeys-lru")
    service = replicas(SAGEBRIDGE_REDIS_URL=url(redis), SAGEBRIDGE_REDIS_ALLOW_EVICTION="true")
    await service.wait_ready(60)
    body = await readyz(service)
    assert body["redis_eviction"]["case"] == "evicting"
    assert body["redis_eviction"]["maxmemory_policy"] == "allkeys-lru"
    async with httpx.AsyncClient(timeout=2) as client:
        metrics = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text
    assert 'sagebridge_redis_eviction{sagebridge_redis_eviction="evicting"} 1.0' in metrics


async def test_evictions_seen_without_config_are_a_loss_of_redis_data(
    replicas, redis_with, redis_prefix: str
) -> None:
    # volatile-lru evicts only keys with a TTL: the filler below, never the epoch.
    redis = redis_with("--maxmemory", "8mb", "--maxmemory-policy", "volatile-lru", *MANAGED)
    service = replicas(SAGEBRIDGE_REDIS_URL=url(redis))
    await service.wait_ready(60)
    body = await readyz(service)
    assert body["redis_eviction"]["case"] == "unknown"
    assert body["redis_eviction"]["watched_by"] == "evicted_keys"
    client = Redis.from_url(url(redis))
    try:
        epoch_key, quarantine_key = f"{redis_prefix}:epoch", f"{redis_prefix}:quarantine"

        async def established() -> bool:
            return await client.get(epoch_key) is not None

        await until(established, 30, "the service to establish its epoch")
        before = await client.get(epoch_key)
        assert not await client.exists(quarantine_key)
        filler = b"x" * 100_000
        for n in range(120):  # 12 MB of volatile keys into an 8 MB Redis
            await client.set(f"filler:{n}", filler, ex=3600)
        assert int((await client.info("stats"))["evicted_keys"]) > 0

        async def declared() -> bool:
            return bool(await client.exists(quarantine_key))

        await until(declared, 15, "the evictions to be declared a loss of Redis data")
        assert await client.get(epoch_key) != before
    finally:
        await client.aclose()
    assert "Redis evicted keys: treated as a loss of Redis data" in service.log_path.read_text()
