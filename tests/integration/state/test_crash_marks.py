"""The crash-loop guard against real Redis, with processes played by guards that stop where a
killed process would: in the middle of a poll, leaving their marks behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from redis.asyncio import Redis

from service.dev.devstack import start_redis
from service.kafka.crash_guard import CrashLoopGuard, TakeIn
from service.state.client import connect
from service.state.crash_marks import MarkStore, blocking_client, digest
from tests.support.waiting import until

TOPIC = "crm.events"
POISON = b'{"poison": true}'
LIMIT = 3


def record(offset: int, value: bytes = b"{}", partition: int = 0) -> ConsumerRecord:
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, None, value, None, 0, len(value), ())


class Process:
    """One guard, as a process would own it, and what it registered with its offset tracker."""

    def __init__(self, url: str, prefix: str, limit: int = LIMIT) -> None:
        self.client = connect(url, socket_timeout=2.0)
        self.registered: list[tuple[TopicPartition, int]] = []
        self.guard = CrashLoopGuard(
            MarkStore(self.client, blocking_client(url), prefix),
            limit,
            register=lambda p, o: self.registered.append((p, o)),
        )

    def take_in(self, take_in: TakeIn, dies_on: bytes | None = POISON) -> list[int] | None:
        """The offsets taken in, or ``None`` if the process died on the way (a record whose
        value is ``dies_on``): it stops iterating, as a killed process would."""
        taken = []
        for r in take_in.records:
            if r.value == dies_on:
                return None
            taken.append(r.offset)
        return taken

    async def stop(self) -> None:
        """The end of a process: its connections go; its marks stay (``release`` is not called)."""
        self.guard.close()
        await self.client.aclose()


@pytest.fixture
def processes(redis_url: str, redis_prefix: str) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(limit: int = LIMIT) -> Process:
        started.append(Process(redis_url, redis_prefix, limit))
        return started[-1]

    yield start
    for process in started:
        process.guard.close()


@pytest.mark.parametrize("limit", [2, 3, 5])
async def test_a_record_that_kills_every_take_in_is_condemned_after_limit_deaths_of_its_own(
    processes: Callable[..., Process], limit: int
) -> None:
    """The first death, in a poll, only names the poll; the next ``limit`` are the poison's own."""
    poll = tuple(record(n, POISON if n == 4 else b"{}") for n in range(10))
    deaths = 0
    while True:
        process = processes(limit)
        take_in = await process.guard.mark_poll(poll)
        taken = process.take_in(take_in)
        if taken is None:
            deaths += 1
            assert deaths <= limit + 1, "the breaker never tripped"
            await process.stop()
            continue
        break
    assert deaths == limit + 1
    assert [c.record.offset for c in take_in.condemned] == [4]
    assert f"stopped the service {limit} times" in take_in.condemned[0].message
    assert taken == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert process.registered == [(TopicPartition(TOPIC, 0), 4)]


async def test_deaths_after_the_take_in_never_condemn_a_record(
    processes: Callable[[], Process], redis: Redis, redis_prefix: str
) -> None:
    """Processes that die after taking a poll in (in the lanes, say) leave a poll mark each time:
    the next owner takes those records in alone, and counts nothing against any of them."""
    poll = tuple(record(n) for n in range(10))
    for _ in range(LIMIT + 2):
        process = processes()
        take_in = await process.guard.mark_poll(poll)
        assert process.take_in(take_in) == list(range(10))
        assert take_in.condemned == []
        await process.stop()
    assert await redis.exists(f"{redis_prefix}:deaths:{TOPIC}:0") == 0


async def test_a_good_record_killed_twice_from_outside_while_taken_in_alone_is_not_condemned(
    processes: Callable[[], Process], redis: Redis, redis_prefix: str
) -> None:
    """Kills from outside (an OOM under load, a node lost) that have nothing to do with the
    records: one during a poll, then two while its successors take in record 0 alone, as each
    of them does first. Only those two are record 0's own deaths, short of the limit of 3."""
    poll = tuple(record(n, b'{"n": %d}' % n) for n in range(10))
    killed_in_poll = processes()
    assert (
        killed_in_poll.take_in(await killed_in_poll.guard.mark_poll(poll), dies_on=poll[7].value)
        is None
    )
    await killed_in_poll.stop()
    for _ in range(2):
        killed_alone = processes()
        assert (
            killed_alone.take_in(await killed_alone.guard.mark_poll(poll), dies_on=poll[0].value)
            is None
        )
        await killed_alone.stop()

    survivor = processes()
    take_in = await survivor.guard.mark_poll(poll)
    assert survivor.take_in(take_in, dies_on=None) == list(range(10))
    assert take_in.condemned == []
    assert survivor.registered == []
    assert await redis.hgetall(f"{redis_prefix}:deaths:{TOPIC}:0") == {
        f"0:{digest(poll[0].value)}".encode(): b"2"
    }


async def test_a_released_mark_is_gone_and_the_next_owner_takes_in_as_usual(
    processes: Callable[[], Process], redis: Redis, redis_prefix: str
) -> None:
    polls = [tuple(record(n, partition=p) for n in range(5)) for p in (0, 1)]
    first = processes()
    for poll in polls:
        first.take_in(await first.guard.mark_poll(poll))
    assert (
        await redis.exists(f"{redis_prefix}:takein:{TOPIC}:0", f"{redis_prefix}:takein:{TOPIC}:1")
        == 2
    )
    await first.guard.release([TopicPartition(TOPIC, 0)])  # a rebalance takes partition 0
    assert await redis.exists(f"{redis_prefix}:takein:{TOPIC}:0") == 0
    await first.guard.release()  # SIGTERM: the drain releases the rest
    assert await redis.keys(f"{redis_prefix}:*") == []

    successor = processes()
    take_in = await successor.guard.mark_poll(polls[0])
    assert take_in.records is polls[0], "no mark was left: the poll is taken in as it is"


async def test_a_poll_mark_is_removed_after_a_second_without_polls(
    processes: Callable[[], Process], redis: Redis, redis_prefix: str
) -> None:
    process = processes()
    process.take_in(await process.guard.mark_poll((record(0),)))
    assert await redis.exists(f"{redis_prefix}:takein:{TOPIC}:0") == 1

    async def released() -> bool:
        return await redis.exists(f"{redis_prefix}:takein:{TOPIC}:0") == 0

    await until(released, 5, "the idle poll mark to be removed")


async def test_each_poll_costs_one_script_call(redis_prefix: str) -> None:
    private = start_redis()
    url = f"redis://127.0.0.1:{private.port}/0"
    process = Process(url, redis_prefix)
    observer = Redis.from_url(url)

    async def counts() -> tuple[int, int]:
        stats = await observer.info("all")
        return stats["total_commands_processed"], stats["cmdstat_evalsha"]["calls"]

    try:
        polls = [
            tuple(record(100 * k + n, partition=p) for p in range(3) for n in range(50))
            for k in range(11)
        ]
        process.take_in(await process.guard.mark_poll(polls[0]))  # the script gets loaded
        commands, scripts = await counts()
        for poll in polls[1:]:
            take_in = await process.guard.mark_poll(poll)
            assert take_in.records is poll
        commands_after, scripts_after = await counts()
        assert scripts_after - scripts == 10
        # Nothing else was sent: the rest is the script's own HGET, HSET, PEXPIRE and EXISTS
        # for each of the 3 partitions, and the INFO that read the first counts.
        assert commands_after - commands == 10 * (1 + 3 * 4) + 1
    finally:
        await process.stop()
        await observer.aclose()
        private.stop()


@contextmanager
def stalled(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_an_unreachable_or_stalled_redis_never_holds_a_poll_back(
    redis_prefix: str, nowhere: str
) -> None:
    poll = tuple(record(n) for n in range(10))
    nobody = Process(f"redis://{nowhere}/0", redis_prefix)
    private = start_redis()
    hung = Process(f"redis://127.0.0.1:{private.port}/0", redis_prefix)
    try:
        take_in = await nobody.guard.mark_poll(poll)
        assert take_in.records is poll

        hung.take_in(await hung.guard.mark_poll(poll))  # the script is loaded, then Redis stalls
        with stalled(private.popen.pid):
            started = time.monotonic()
            take_in = await hung.guard.mark_poll(poll)
            assert take_in.records is poll
            assert time.monotonic() - started < 1.5
            started = time.monotonic()
            take_in = await hung.guard.mark_poll(poll)  # skipped at once while the failure is fresh
            assert take_in.records is poll
            assert time.monotonic() - started < 0.1
    finally:
        await nobody.stop()
        await hung.stop()
        private.stop()
