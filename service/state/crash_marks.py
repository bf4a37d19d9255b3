"""The crash-loop breaker's marks and death counts in Redis (:mod:`service.kafka.crash_guard`
decides when to write them, :mod:`service.intake.crash_loop` what they mean).

Keys, per input partition (built with :func:`service.state.keys.key`), both expiring a day after
their last write:

* ``<prefix>:takein:<topic>:<partition>``, a hash: the mark — ``owner`` (``host:pid:random``),
  ``serial`` (which poll), ``first``, ``last``, ``alone``, ``digest``;
* ``<prefix>:deaths:<topic>:<partition>``, a hash: ``<offset>:<digest>`` -> deaths counted.

They live in Redis, under the service's prefix, so whichever replica gets the partition next
sees them. Poll marks are written with the shared asyncio client; alone marks with a blocking
client of their own (see :mod:`service.kafka.crash_guard` for why), with short timeouts.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.asyncio import Redis

from service.intake.crash_loop import Death, DeathCounts, Mark
from service.state.keys import key
from service.state.locks import process_token
from service.state.unavailable import redis_failures, speaks_state

EXPIRY_MS = 24 * 3600 * 1000
"""Marks and death counts outlive any restart back-off; a record that kills the process again
more than a day after its last death starts from zero."""
REDIS_TIMEOUT_S = 0.5

# Before a poll is taken in. KEYS: per partition of the poll, its mark then its death counts.
# ARGV[1] owner, ARGV[2] serial, ARGV[3] expiry (ms); then first and last offset per partition.
# Another process's mark is returned, not overwritten, for the caller to judge and take over.
# Returns per partition false (nothing to judge) or {that mark, the death counts}, each flat.
_BEGIN = """
local found = {}
for i = 1, #KEYS / 2 do
  local mark, deaths = KEYS[2 * i - 1], KEYS[2 * i]
  local owner = redis.call('HGET', mark, 'owner')
  local left = {}
  if owner and owner ~= ARGV[1] then
    left = redis.call('HGETALL', mark)
  else
    redis.call('HSET', mark, 'owner', ARGV[1], 'serial', ARGV[2], 'first', ARGV[2 * i + 2],
               'last', ARGV[2 * i + 3], 'alone', '0')
    redis.call('PEXPIRE', mark, ARGV[3])
  end
  local counts = {}
  if redis.call('EXISTS', deaths) == 1 then
    counts = redis.call('HGETALL', deaths)
  end
  if #left == 0 and #counts == 0 then
    found[i] = false
  else
    found[i] = {left, counts}
  end
end
return found
"""

# Another process's mark, judged: count the death it reports, then mark the poll as ours.
# KEYS: mark, death counts. ARGV: owner, serial, expiry (ms), first, last, the death's field
# ('' for none). Returns the death counts, flat.
_TAKE_OVER = """
if ARGV[6] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[6], 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'serial', ARGV[2], 'first', ARGV[4],
           'last', ARGV[5], 'alone', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HGETALL', KEYS[2])
"""

# KEYS: marks. ARGV[1] owner; ARGV[1 + i] the serial last written to KEYS[i]. Deletes each mark
# still as this owner last wrote it: a newer poll's mark, or another process's, stays.
_RELEASE = """
local released = 0
for i, mark in ipairs(KEYS) do
  local held = redis.call('HMGET', mark, 'owner', 'serial')
  if held[1] == ARGV[1] and held[2] == ARGV[i + 1] then
    redis.call('DEL', mark)
    released = released + 1
  end
end
return released
"""


@dataclass(frozen=True, slots=True)
class Keys:
    mark: str
    deaths: str


@dataclass(frozen=True, slots=True)
class Found:
    """What :meth:`MarkStore.mark` brought back for a partition."""

    left: Mark | None
    """Another process's mark (not overwritten yet)."""
    deaths: DeathCounts


class MarkStore:
    """The marks and death counts of every partition, in Redis."""

    def __init__(self, client: Redis, blocking: redis.Redis, prefix: str) -> None:
        self._blocking = blocking
        self._prefix = prefix
        self.owner = process_token()
        self._begin = client.register_script(_BEGIN)
        self._take_over = client.register_script(_TAKE_OVER)
        self._release = client.register_script(_RELEASE)

    def keys(self, topic: str, partition: int) -> Keys:
        number = str(partition)
        return Keys(
            key(self._prefix, "takein", topic, number), key(self._prefix, "deaths", topic, number)
        )

    @speaks_state
    async def mark(self, serial: str, polls: Sequence[tuple[Keys, int, int]]) -> list[Found | None]:
        """Mark each partition's ``first..last`` as being taken in (one round trip)."""
        keys: list[str] = []
        args: list[Any] = [self.owner, serial, EXPIRY_MS]
        for partition, first, last in polls:
            keys += (partition.mark, partition.deaths)
            args += (first, last)
        replies = await self._begin(keys, args)
        return [
            None if reply is None else Found(_mark(reply[0]), _death_counts(reply[1]))
            for reply in replies
        ]

    @speaks_state
    async def take_over(
        self, keys: Keys, serial: str, first: int, last: int, death: Death | None
    ) -> DeathCounts:
        """Count ``death`` and mark ``first..last`` as ours; the partition's death counts."""
        counted = "" if death is None else f"{death.offset}:{death.digest}"
        reply = await self._take_over(
            [keys.mark, keys.deaths], [self.owner, serial, EXPIRY_MS, first, last, counted]
        )
        return _death_counts(reply)

    def mark_alone(self, keys: Keys, serial: str, offset: int, digest: int) -> None:
        """Blocking: one record is about to be taken in alone."""
        self._write_blocking(keys, serial, offset, offset, ["alone", 1, "digest", digest])

    def restore(self, keys: Keys, serial: str, first: int, last: int) -> None:
        """Blocking: the record taken in alone is done; the poll's mark again."""
        self._write_blocking(keys, serial, first, last, ["alone", 0])

    def _write_blocking(
        self, keys: Keys, serial: str, first: int, last: int, rest: list[str | int]
    ) -> None:
        fields = ["owner", self.owner, "serial", serial, "first", first, "last", last, *rest]
        with redis_failures():
            pipe = self._blocking.pipeline(transaction=False)
            pipe.hset(keys.mark, items=fields)
            pipe.pexpire(keys.mark, EXPIRY_MS)
            pipe.execute()

    @speaks_state
    async def release(self, marks: Sequence[tuple[Keys, str]]) -> None:
        """Remove each mark still holding the serial this process last wrote to it."""
        await self._release(
            [keys.mark for keys, _ in marks], [self.owner, *(serial for _, serial in marks)]
        )

    def close(self) -> None:
        self._blocking.close()


def blocking_client(url: str) -> redis.Redis:
    """The client for alone marks: blocking, with short timeouts (a slow Redis fails open)."""
    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )


def _mark(flat: list[bytes]) -> Mark | None:
    if not flat:
        return None
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return Mark(
        int(fields[b"first"]),
        int(fields[b"last"]),
        alone=fields.get(b"alone") == b"1",
        digest=int(fields.get(b"digest", 0)),
    )


def _death_counts(flat: list[bytes]) -> DeathCounts:
    counts: dict[int, dict[int, int]] = {}
    for name, value in zip(flat[::2], flat[1::2], strict=True):
        offset, _, digest = name.partition(b":")
        counts.setdefault(int(offset), {})[int(digest)] = int(value)
    return counts


def digest(value: bytes | None) -> int:
    """Tells two records at one offset apart (CRC-32 of the value)."""
    return zlib.crc32(value or b"")
