"""The Redis client: redis-py's asyncio client, with commands packed by hiredis.

The ledger sends one script call per poll with thousands of arguments (a key and a fingerprint
per record). redis-py's asyncio connection packs commands in Python, re-joining a growing
buffer for every argument, several times slower than ``hiredis.pack_command`` for such a call
(figure in bench/RESULTS.md) — which redis-py's synchronous client already uses when hiredis is
installed, but its asyncio client does not. Both produce the same bytes for the str, bytes, int
and float arguments we send (UTF-8, the client's default encoding).
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import DataError


class _HiredisPacking:
    """Mixed in before the pool's connection class (TCP, TLS or Unix socket, per the URL)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        # As redis-py's own HiredisRespSerializer, less its per-argument copy of bytearrays
        # and memoryviews: none of our commands carries one, and hiredis would refuse one
        # (a DataError, as redis-py raises for any argument it cannot encode).
        command = args[0]
        if isinstance(command, str):
            args = (*command.encode().split(), *args[1:])
        elif b" " in command:
            args = (*command.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise DataError(str(exc)) from exc


MAX_CONNECTIONS = 10_000
"""The pool's cap: Redis's own default ``maxclients``. redis-py's default of 100 failed the
101st command at once ("Too many connections") whenever a hundred were waiting on a slow Redis,
as a hundred busy companies' serial workers do — and the serial lane took that for Redis being
down. What bounds a replica's connections is its own concurrency: a ledger step and a lease
renewal per busy company, the batch lane's steps within the in-flight limit, a few checks."""


def connect(url: str, **options: Any) -> Redis:
    """``Redis.from_url(url, **options)``, packing commands with hiredis, its pool capped at
    :data:`MAX_CONNECTIONS` unless ``options`` say otherwise."""
    options.setdefault("max_connections", MAX_CONNECTIONS)
    client = Redis.from_url(url, **options)
    pool = client.connection_pool
    base: type[AbstractConnection] = pool.connection_class
    pool.connection_class = type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
    return client
