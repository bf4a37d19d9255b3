"""``sagebridge dlt replay``: send dead letters back to the topic they came from.

Once the data (or the configuration, or the ledger) is fixed, an operator replays: each matching
dead letter's original key and value go back to ``x-original-topic`` (or ``--to``), byte for
byte, with an ``x-replayed-from`` header naming the dead letter.

Each dead letter is replayed at most once, whatever the filters: the letters replayed are
recorded by their place on the dead-letter topic, on a compacted topic that survives a Redis
that lost its data (:mod:`service.tools.replayed_topic`), and claimed in Redis first so two runs
at once cannot both send one (:mod:`service.state.replayed`). A second run with the same
filters replays nothing, and replaying one stage leaves the letters of other stages as they
were. A letter is recorded before it is sent and forgotten again if Kafka does not take it: a
run killed in between leaves it unsent (at most once). The topic is read without a consumer group
(:mod:`service.tools.dead_letter_reader`). ``--dry-run`` lists what would be replayed and
records nothing.

Versions before this one kept their progress as the committed offset of the consumer group
``<SAGEBRIDGE_GROUP_ID>-dlt-replay``: letters below it were replayed by them and count as
replayed here too, so an upgrade sends nothing twice. That group is only read, never moved.
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from service.config import Settings
from service.errors import ToolError
from service.kafka.security import kafka_client_options
from service.state.client import connect as connect_redis
from service.state.replayed import ReplayedLetters
from service.tools.dead_letter_reader import DeadLetterReader
from service.tools.dead_letters import DeadLetter, LetterFilter, iso
from service.tools.reach import unreachable
from service.tools.replayed_topic import ReplayedTopic

PROGRESS_EVERY = 1000
"""Letters read between two progress lines."""


@dataclass
class _Tally:
    read: int = 0
    replayed: int = 0
    skipped: int = 0
    reported: int = 0

    def progress(self, out: TextIO, verb: str) -> None:
        if self.read // PROGRESS_EVERY > self.reported // PROGRESS_EVERY:
            out.write(f"read {self.read} dead letter(s), {verb} {self.replayed}\n")
            out.flush()
        self.reported = self.read


async def replay_dead_letters(
    settings: Settings,
    *,
    letters: LetterFilter | None = None,
    limit: int | None = None,
    to_topic: str | None = None,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> int:
    """Replay (or, ``dry_run``, list) the matching letters not replayed yet, at most ``limit``;
    0, or :class:`ToolError` when Kafka or Redis cannot be reached or a send fails."""
    chosen = letters or LetterFilter()
    out = out or sys.stdout
    redis = connect_redis(settings.redis_url, socket_timeout=5.0, socket_connect_timeout=2.0)
    kept = ReplayedTopic(settings)
    tally = _Tally()
    verb = "would replay" if dry_run else "replayed"
    try:
        async with unreachable("dlt replay", settings):
            await redis.ping()  # before reading a long topic, not after
            producer = None
            if not dry_run:
                producer = AIOKafkaProducer(
                    **kafka_client_options(settings),
                    acks="all",
                    enable_idempotence=settings.kafka_idempotence,
                )
            try:
                if producer is not None:
                    await producer.start()
                    await kept.ensure()
                record = _Replayed(
                    ReplayedLetters(redis, settings.redis_prefix), kept, await kept.load()
                )
                async with DeadLetterReader(settings) as reader:
                    earlier = await _replayed_before(settings, reader.partitions)
                    async for batch in reader.batches():
                        tally.read += len(batch)
                        fresh = [b for b in batch if b.offset >= earlier.get(b.partition, 0)]
                        for group in _by_partition(fresh, chosen, to_topic, tally):
                            if limit is not None and tally.replayed >= limit:
                                break
                            room = None if limit is None else limit - tally.replayed
                            await _replay(group, record, producer, to_topic, room, tally, out)
                        tally.progress(out, verb)
                        if limit is not None and tally.replayed >= limit:
                            break
            finally:
                if producer is not None:
                    await producer.stop()
    finally:
        await redis.aclose()
    skipped = f", skipped {tally.skipped}" if tally.skipped else ""
    out.write(f"{verb} {tally.replayed} dead letter(s){skipped}\n")
    return 0


async def _replayed_before(settings: Settings, partitions: list[int]) -> dict[int, int]:
    """Per dead-letter partition, the offset below which earlier versions replayed everything
    (their group's committed offset); read without joining the group."""
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=f"{settings.group_id}-dlt-replay",
        enable_auto_commit=False,
        client_id="sagebridge-dlt-replay",
    )
    try:
        await consumer.start()
        found = {}
        for partition in partitions:
            offset = await consumer.committed(TopicPartition(settings.dlt_topic, partition))
            if offset:
                found[partition] = int(offset)
        return found
    finally:
        await consumer.stop()


def _by_partition(
    batch: list[DeadLetter], chosen: LetterFilter, to_topic: str | None, tally: _Tally
) -> list[list[DeadLetter]]:
    """The matching letters of a fetched batch, one list per dead-letter partition; a letter
    with nowhere to go (no ``x-original-topic``, no ``--to``) is skipped with a line."""
    groups: dict[int, list[DeadLetter]] = defaultdict(list)
    for letter in batch:
        if not chosen.matches(letter):
            continue
        if not (to_topic or letter.original_topic):
            tally.skipped += 1
            print(
                f"skipped dead letter at offset {letter.offset}: no x-original-topic header",
                file=sys.stderr,
            )
            continue
        groups[letter.partition].append(letter)
    return list(groups.values())


@dataclass
class _Replayed:
    """Which letters were replayed: claims in Redis (one run at a time per letter), and the
    record in Kafka that outlives Redis (``in_kafka``: as read when the run began)."""

    claims: ReplayedLetters
    kept: ReplayedTopic
    in_kafka: dict[int, set[int]]

    async def replayed(self, topic: str, partition: int, offsets: list[int]) -> list[bool]:
        known = self.in_kafka.get(partition, set())
        claimed = await self.claims.replayed(topic, partition, offsets)
        return [offset in known or was for offset, was in zip(offsets, claimed, strict=True)]


async def _replay(
    group: list[DeadLetter],
    record: _Replayed,
    producer: AIOKafkaProducer | None,
    to_topic: str | None,
    room: int | None,
    tally: _Tally,
    out: TextIO,
) -> None:
    """One partition's share of a batch: skip what was replayed, claim the rest, send it."""
    topic, partition = group[0].topic, group[0].partition
    done = await record.replayed(topic, partition, [letter.offset for letter in group])
    todo = [letter for letter, was in zip(group, done, strict=True) if not was][:room]
    if producer is None:  # a dry run
        for letter in todo:
            out.write(_line(letter, to_topic) + "\n")
        tally.replayed += len(todo)
        return
    claimed = await record.claims.claim(topic, partition, [letter.offset for letter in todo])
    mine = [letter for letter, won in zip(todo, claimed, strict=True) if won]
    sends: list[Any] = []
    try:
        targets = [(letter.offset, to_topic or letter.original_topic) for letter in mine]
        await record.kept.record(producer, partition, targets)
    except BaseException:
        await record.claims.release(topic, partition, [letter.offset for letter in mine])
        raise
    try:
        for letter in mine:
            origin = f"{letter.topic}@{letter.partition}:{letter.offset}"
            sends.append(
                await producer.send(
                    to_topic or letter.original_topic,
                    letter.value,
                    key=letter.key,
                    headers=[("x-replayed-from", origin.encode())],
                )
            )
    except BaseException:
        await _forget(record, producer, topic, partition, [letter.offset for letter in mine])
        raise
    results = await asyncio.gather(*sends, return_exceptions=True)
    failed = [letter.offset for letter, r in zip(mine, results, strict=True) if _failed(r)]
    tally.replayed += len(mine) - len(failed)
    if failed:
        await _forget(record, producer, topic, partition, failed)
        raise ToolError(
            f"dlt replay: {len(failed)} dead letter(s) of {topic}@{partition} were not "
            f"acknowledged by Kafka (replayed {tally.replayed} before); run it again"
        )


async def _forget(
    record: _Replayed, producer: AIOKafkaProducer, topic: str, partition: int, offsets: list[int]
) -> None:
    """Letters recorded as replayed whose send failed: a later run may send them."""
    await record.kept.forget(producer, partition, offsets)
    await record.claims.release(topic, partition, offsets)


def _failed(result: object) -> bool:
    return isinstance(result, BaseException)


def _line(letter: DeadLetter, to_topic: str | None) -> str:
    target = to_topic or letter.original_topic
    return (
        f"{iso(letter.time)}  {letter.stage}  {letter.event_id or '-'}  "
        f"{letter.topic}@{letter.partition}:{letter.offset} -> {target}"
    )
