"""The crash-loop breaker's marks in Redis, and the guard each poll passes through before its
records are taken in. The decisions are in :mod:`service.crashloop`; this module reads and writes.

Keys, per input partition (built with :func:`service.rediskeys.key`), both expiring a day after
their last write:

* ``<prefix>:takein:<topic>:<partition>``, a hash: the mark — ``owner`` (``host:pid:random``),
  ``serial`` (which poll), ``first``, ``last``, ``alone``, ``carried``, ``digest``;
* ``<prefix>:deaths:<topic>:<partition>``, a hash: ``<offset>:<digest>`` -> deaths counted.

They live in Redis, under the service's prefix, so whichever replica gets the partition next
sees them. In the normal path a poll costs one script call, awaited before its records are taken
in: it writes the poll's marks and brings back another process's mark or death counts, if there
are any. A poll's mark is replaced by the next poll's, or removed after a second without polls,
when partitions are revoked, and at the end of a SIGTERM drain — a clean stop is no death.

Only after another process's mark is found are records taken in alone. Their marks are written
and replaced with *blocking* Redis calls, on purpose: the event loop runs nothing else between the
mark and the record's synchronous take-in, so a death under that mark can only be that record's.

Redis trouble never stops consumption: a failed or slow (over 0.5 s) call is logged, and records
are taken in without marks for the next 5 s (fail open). What the breaker then misses is a death
or two; it never holds a record back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from aiokafka import ConsumerRecord, TopicPartition
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.crashloop import (
    Condemn,
    Death,
    DeathCounts,
    Isolate,
    Mark,
    Suspicion,
    concerns,
    condemned_message,
    judge,
    treatment,
)
from service.locks import process_token
from service.rediskeys import key

log = logging.getLogger(__name__)

EXPIRY_MS = 24 * 3600 * 1000
"""Marks and death counts outlive any restart back-off; a record condemned more than a day after
its last death starts counting again."""
IDLE_RELEASE_S = 1.0
REDIS_TIMEOUT_S = 0.5
FAIL_OPEN_S = 5.0

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
               'last', ARGV[2 * i + 3], 'alone', '0', 'carried', '0')
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
# ('' for none) and count. Returns the death counts, flat.
_TAKE_OVER = """
if ARGV[6] ~= '' then
  redis.call('HINCRBY', KEYS[2], ARGV[6], ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'serial', ARGV[2], 'first', ARGV[4],
           'last', ARGV[5], 'alone', '0', 'carried', '0')
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
    """What :meth:`MarkStore.begin` brought back for a partition."""

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

    def keys(self, partition: TopicPartition) -> Keys:
        topic, number = partition.topic, str(partition.partition)
        return Keys(
            key(self._prefix, "takein", topic, number), key(self._prefix, "deaths", topic, number)
        )

    async def begin(
        self, serial: str, polls: Sequence[tuple[Keys, int, int]]
    ) -> list[Found | None]:
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

    async def take_over(
        self, keys: Keys, serial: str, first: int, last: int, death: Death | None
    ) -> DeathCounts:
        """Count ``death`` and mark ``first..last`` as ours; the partition's death counts."""
        counted = ("", 0) if death is None else (f"{death.offset}:{death.digest}", death.count)
        reply = await self._take_over(
            [keys.mark, keys.deaths], [self.owner, serial, EXPIRY_MS, first, last, *counted]
        )
        return _death_counts(reply)

    def mark_alone(self, keys: Keys, serial: str, offset: int, carried: int, digest: int) -> None:
        """Blocking: one record is about to be taken in alone."""
        rest: list[str | int] = ["alone", 1, "carried", carried, "digest", digest]
        self._write_blocking(keys, serial, offset, offset, rest)

    def restore(self, keys: Keys, serial: str, first: int, last: int) -> None:
        """Blocking: the record taken in alone is done; the poll's mark again."""
        self._write_blocking(keys, serial, first, last, ["alone", 0, "carried", 0])

    def _write_blocking(
        self, keys: Keys, serial: str, first: int, last: int, rest: list[str | int]
    ) -> None:
        fields = ["owner", self.owner, "serial", serial, "first", first, "last", last, *rest]
        pipe = self._blocking.pipeline(transaction=False)
        pipe.hset(keys.mark, items=fields)
        pipe.pexpire(keys.mark, EXPIRY_MS)
        pipe.execute()

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
        carried=int(fields.get(b"carried", 0)),
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


@dataclass(slots=True)
class Condemned:
    """A record not taken in: the caller answers it ERROR with ``message``."""

    record: ConsumerRecord
    message: str


@dataclass(slots=True)
class TakeIn:
    """One poll, as the caller takes it in: iterate ``records`` (the poll itself, normally),
    then answer ``condemned``, which fills as the iteration passes them."""

    records: Iterable[ConsumerRecord]
    condemned: list[Condemned] = field(default_factory=list)


@dataclass(slots=True)
class _Care:
    """A partition of this poll whose records are not all taken in together."""

    partition: TopicPartition
    keys: Keys
    first: int
    last: int
    suspicion: Suspicion | None
    deaths: DeathCounts


class CrashLoopGuard:
    """Marks each poll before it is taken in, and takes in alone (or not at all) the records
    another process's mark points at. ``register`` is the offset tracker's ``consumed``: a
    condemned record is registered in its place in the partition's order, then answered by the
    caller."""

    def __init__(
        self, store: MarkStore, limit: int, register: Callable[[TopicPartition, int], None]
    ) -> None:
        self._store = store
        self._limit = limit
        self._register = register
        self._keys: dict[TopicPartition, Keys] = {}
        self._marked: dict[TopicPartition, str] = {}
        """Partitions whose mark this process wrote last, with that poll's serial."""
        self._suspected: dict[TopicPartition, Suspicion] = {}
        """Suspicions whose records this process has not reached yet."""
        self._serial = 0
        self._open_until = 0.0
        self._idle: asyncio.TimerHandle | None = None
        self._releasing: set[asyncio.Task[None]] = set()

    async def begin(self, records: Sequence[ConsumerRecord]) -> TakeIn:
        """Mark the poll's partitions; say how to take its records in."""
        if not records or time.monotonic() < self._open_until:
            return TakeIn(records)
        spans = _spans(records)
        self._serial += 1
        serial = str(self._serial)
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                found = await self._store.begin(
                    serial, [(self._keys_of(p), first, last) for p, (first, last) in spans.items()]
                )
        except (RedisError, TimeoutError) as exc:
            self._fail_open(exc)
            return TakeIn(records)
        for partition in spans:
            self._marked[partition] = serial
        self._release_when_idle()
        if not self._suspected and not any(found):
            return TakeIn(records)
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                careful = await self._careful(spans, found, serial)
        except (RedisError, TimeoutError) as exc:
            self._fail_open(exc)
            return TakeIn(records)
        if not careful:
            return TakeIn(records)
        take_in = TakeIn(())
        take_in.records = self._one_at_a_time(records, careful, serial, take_in.condemned)
        return take_in

    async def _careful(
        self, spans: dict[TopicPartition, tuple[int, int]], found: list[Found | None], serial: str
    ) -> dict[TopicPartition, _Care]:
        """Judge the marks other processes left, and which partitions need care this poll."""
        careful: dict[TopicPartition, _Care] = {}
        for (partition, (first, last)), entry in zip(spans.items(), found, strict=True):
            deaths = entry.deaths if entry is not None else {}
            if entry is not None and entry.left is not None:
                verdict = judge(entry.left, replay_from=first)
                death = verdict if isinstance(verdict, Death) else None
                if isinstance(verdict, Suspicion):
                    self._suspected[partition] = verdict
                deaths = await self._store.take_over(
                    self._keys_of(partition), serial, first, last, death
                )
                _log_verdict(partition, verdict, deaths, self._limit)
            suspicion = self._suspected.get(partition)
            if suspicion is not None and suspicion.last <= last:
                del self._suspected[partition]  # this poll reaches its end
            if concerns(first, last, suspicion, deaths):
                careful[partition] = _Care(
                    partition, self._keys_of(partition), first, last, suspicion, deaths
                )
        return careful

    def _one_at_a_time(
        self,
        records: Sequence[ConsumerRecord],
        careful: dict[TopicPartition, _Care],
        serial: str,
        condemned: list[Condemned],
    ) -> Iterator[ConsumerRecord]:
        """The poll's records, with an alone mark around each suspect one: written before it is
        handed out, replaced when the caller asks for the next record — that is, right after
        the caller's synchronous take-in of it, with nothing else run in between."""
        alone: _Care | None = None  # the partition whose alone mark is up
        for record in records:
            care = careful.get(TopicPartition(record.topic, record.partition))
            step = (
                None
                if care is None
                else treatment(
                    record.offset,
                    functools.partial(digest, record.value),
                    care.suspicion,
                    care.deaths,
                    self._limit,
                )
            )
            if alone is not None and not (isinstance(step, Isolate) and care is alone):
                self._blocking(self._store.restore, alone.keys, serial, alone.first, alone.last)
                alone = None
            if care is None or step is None:
                yield record
            elif isinstance(step, Condemn):
                self._register(care.partition, record.offset)
                message = condemned_message(
                    step.deaths, record.topic, record.partition, record.offset
                )
                condemned.append(Condemned(record, message))
                log.error(
                    "record dead-lettered unread: it stopped the service too often",
                    extra=_where(care.partition, record.offset) | {"deaths": step.deaths},
                )
            else:
                alone = care
                self._blocking(
                    self._store.mark_alone,
                    care.keys,
                    serial,
                    record.offset,
                    step.carried,
                    digest(record.value),
                )
                yield record
        if alone is not None:
            self._blocking(self._store.restore, alone.keys, serial, alone.first, alone.last)

    def _blocking(self, write: Callable[..., None], *args: Any) -> None:
        if time.monotonic() < self._open_until:
            return
        try:
            write(*args)
        except RedisError as exc:
            self._fail_open(exc)

    async def release(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Remove this process's marks (of ``partitions``, or all): their records are taken in,
        and the process is not dying — it is idle, giving partitions up, or draining."""
        if partitions is not None:
            partitions = set(partitions)
            for partition in partitions:
                self._suspected.pop(partition, None)
        chosen = [(p, s) for p, s in self._marked.items() if partitions is None or p in partitions]
        if not chosen:
            return
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                await self._store.release([(self._keys_of(p), s) for p, s in chosen])
        except (RedisError, TimeoutError) as exc:
            log.warning(
                "crash-loop marks not removed; the next owner takes those records in one at a time",
                extra={"error": type(exc).__name__},
            )
            return
        for partition, serial in chosen:
            if self._marked.get(partition) == serial:
                del self._marked[partition]

    def close(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._store.close()

    def _release_when_idle(self) -> None:
        """A poll's mark stays until the next poll's replaces it, or until a second passes
        without one: then the records are long taken in, and a death would not be theirs."""
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(IDLE_RELEASE_S, self._on_idle)

    def _on_idle(self) -> None:
        self._idle = None
        task = asyncio.create_task(self.release())
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    def _keys_of(self, partition: TopicPartition) -> Keys:
        keys = self._keys.get(partition)
        if keys is None:
            keys = self._keys[partition] = self._store.keys(partition)
        return keys

    def _fail_open(self, exc: Exception) -> None:
        if time.monotonic() >= self._open_until:
            log.warning(
                "crash-loop marks unavailable: records are taken in without them for a while",
                extra={"error": type(exc).__name__, "seconds": FAIL_OPEN_S},
            )
        self._open_until = time.monotonic() + FAIL_OPEN_S


def _spans(records: Sequence[ConsumerRecord]) -> dict[TopicPartition, tuple[int, int]]:
    """First and last offset of each partition in a poll. Offsets rise within a partition;
    its records normally come as one run (FastStream chains aiokafka's per-partition lists),
    so the work is per run, not per record."""
    spans: dict[TopicPartition, tuple[int, int]] = {}
    topic, number, first, last = None, -1, 0, 0
    for record in records:
        if record.partition != number or record.topic != topic:
            if topic is not None:
                _widen(spans, TopicPartition(topic, number), first, last)
            topic, number, first = record.topic, record.partition, record.offset
        last = record.offset
    if topic is not None:
        _widen(spans, TopicPartition(topic, number), first, last)
    return spans


def _widen(
    spans: dict[TopicPartition, tuple[int, int]], partition: TopicPartition, first: int, last: int
) -> None:
    known = spans.get(partition)
    spans[partition] = (first, last) if known is None else (known[0], last)


def _where(partition: TopicPartition, offset: int) -> dict[str, Any]:
    return {"topic": partition.topic, "partition": partition.partition, "offset": offset}


def _log_verdict(
    partition: TopicPartition, verdict: Death | Suspicion | None, deaths: DeathCounts, limit: int
) -> None:
    if isinstance(verdict, Death):
        counted = deaths.get(verdict.offset, {}).get(verdict.digest, verdict.count)
        log.error(
            "the previous process died taking in this record alone",
            extra=_where(partition, verdict.offset) | {"deaths": counted, "limit": limit},
        )
    elif isinstance(verdict, Suspicion):
        log.warning(
            "the previous process stopped while taking in these records; taking them in one at "
            "a time",
            extra=_where(partition, verdict.first) | {"last": verdict.last},
        )
