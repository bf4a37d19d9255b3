"""The crash-loop guard: each poll passes it before its records are taken in. It writes the
poll's marks (:mod:`service.state.crash_marks`), judges the marks other processes left
(:mod:`service.intake.crash_loop`) and says how to take each record in.

In the normal path a poll costs one script call, awaited before its records are taken in: it
writes the poll's marks and brings back another process's mark or death counts, if there are
any. A poll's mark is replaced by the next poll's, or removed after a second without polls,
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from service.errors import StateUnavailable
from service.intake.crash_loop import (
    Condemn,
    Death,
    DeathCounts,
    Isolate,
    Suspicion,
    concerns,
    condemned_message,
    judge,
    treatment,
)
from service.state.crash_marks import REDIS_TIMEOUT_S, Found, Keys, MarkStore, digest

log = logging.getLogger(__name__)

IDLE_RELEASE_S = 1.0
FAIL_OPEN_S = 5.0


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

    async def mark_poll(self, records: Sequence[ConsumerRecord]) -> TakeIn:
        """Mark the poll's partitions; say how to take its records in."""
        if not records or time.monotonic() < self._open_until:
            return TakeIn(records)
        spans = _spans(records)
        self._serial += 1
        serial = str(self._serial)
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                found = await self._store.mark(
                    serial, [(self._keys_of(p), first, last) for p, (first, last) in spans.items()]
                )
        except (StateUnavailable, TimeoutError) as exc:
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
        except (StateUnavailable, TimeoutError) as exc:
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
        except StateUnavailable as exc:
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
        except (StateUnavailable, TimeoutError) as exc:
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
            keys = self._keys[partition] = self._store.keys(partition.topic, partition.partition)
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
        counted = deaths.get(verdict.offset, {}).get(verdict.digest, 1)
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
