"""The Redis client packs commands with hiredis, and Redis reads them as redis-py's own packer
would have written them (real Redis)."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from service.state.client import connect


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
