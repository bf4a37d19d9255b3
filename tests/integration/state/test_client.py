"""The Redis client packs commands with hiredis, and Redis reads them as redis-py's own packer
would have written them (real Redis)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from service.state.client import connect
from service.state.epoch import Epoch
from service.state.locks import TenantLocks
from service.tenants import TenantKey


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://127.0.0.1:1/0", Connection),
        ("rediss://127.0.0.1:1/0", SSLConnection),
        ("unix:///tmp/nothing.sock", UnixDomainSocketConnection),
    ],
)
def test_the_urls_transport_is_kept(url: str, transport: type[Connection]) -> None:
    client = connect(url)
    made = client.connection_pool.connection_class
    assert issubclass(made, transport)
    assert made.pack_command is not transport.pack_command


async def test_every_argument_kind_round_trips(redis_url: str, redis_prefix: str) -> None:
    client = connect(redis_url)
    echo = client.register_script("return ARGV")
    args: list[str | bytes | int | float] = [
        "plain",
        "é ü 東京",
        b"\x00\xff raw",
        7,
        -3,
        10**18,
        0.1,
    ]
    try:
        assert await echo(keys=[f"{redis_prefix}:k"], args=args) == [
            b"plain",
            "é ü 東京".encode(),
            b"\x00\xff raw",
            b"7",
            b"-3",
            b"1000000000000000000",
            b"0.1",
        ]
        many = [f"{redis_prefix}:ledger:{n}" for n in range(2000)]
        count = client.register_script("return #KEYS + #ARGV")
        assert await count(keys=many, args=list(range(2000))) == 4000
        await client.set(f"{redis_prefix}:ttl", "v", px=5000)
        assert 0 < await client.pttl(f"{redis_prefix}:ttl") <= 5000
    finally:
        await client.delete(f"{redis_prefix}:ttl")
        await client.aclose()


BUSY_S = (
    "local t0 = redis.call('TIME') while true do local t = redis.call('TIME') "
    "if (t[1] - t0[1]) * 1e6 + t[2] - t0[2] > tonumber(ARGV[1]) * 1e6 then return 1 end end"
)
"""A Lua script that keeps Redis busy for ARGV[1] seconds: every other client waits meanwhile."""


async def test_commands_of_many_companies_waiting_on_a_slow_redis_each_get_a_connection(
    redis_url: str, redis_prefix: str
) -> None:
    """A hundred and thirty companies acquire their locks while Redis is busy for a moment (a
    slow script, a failover): each command waits for its reply on a connection of its own.
    redis-py's default cap of 100 failed the rest at once ("Too many connections"), which the
    serial lane takes for Redis being down."""
    client = connect(redis_url)
    epoch = Epoch(client, redis_prefix, quarantine_s=1.0)
    await epoch.establish()
    locks = TenantLocks(client, redis_prefix, 5.0, epoch)
    tenants = [TenantKey("8000", f"MANY{n:03d}") for n in range(130)]
    busy = Redis.from_url(redis_url)
    try:
        # A busy replica's pool already holds its connections (each BLPOP keeps one 50 ms).
        await asyncio.gather(
            *(client.blpop([f"{redis_prefix}:nothing"], timeout=0.05) for _ in range(100))
        )
        conn = busy.connection_pool.make_connection()
        await conn.send_command("EVAL", BUSY_S, 0, 1.0)  # written before any acquire
        leases = await asyncio.gather(*(locks.acquire(tenant, 0) for tenant in tenants))
        assert await conn.read_response() == 1
        await conn.disconnect()
        assert all(lease is not None for lease in leases)
    finally:
        await client.delete(*[k async for k in client.scan_iter(match=f"{redis_prefix}*")])
        await client.aclose()
        await busy.aclose()
