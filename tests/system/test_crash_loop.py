"""The crash-loop breaker with real processes: a record that really kills ``sagebridge run``
(SIGKILL from the test hook, inside intake), and a SIGTERM that must not count as a death."""

from __future__ import annotations

import signal
from typing import Any

from redis.asyncio import Redis

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import stored_records
from service.dev.testhooks import SIGKILL_ON
from service.dev.topics import Topics
from tests.support.kafka import Collector, Received
from tests.support.waiting import until

MARKER = "poison-3a7f1e"
SAME_PARTITION = b"one-customer"


def contacts(prefix: str, numbers: range, key: bytes | None = None) -> list[tuple[bytes, Any]]:
    return [
        (
            key or f"{prefix}-{n}".encode(),
            event(f"{prefix}-{n}", contact(n, ContactNotes=f"{prefix}-{n}")),
        )
        for n in numbers
    ]


async def test_a_record_that_kills_the_process_is_dead_lettered_after_three_deaths_of_its_own(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    poison = (SAME_PARTITION, event("poison-1", contact(999, ContactNotes=MARKER)))
    await produce(
        kafka_bootstrap,
        topics.events,
        [
            *contacts("before", range(30), SAME_PARTITION),
            poison,
            *contacts("after", range(30), SAME_PARTITION),
            *contacts("elsewhere", range(40)),
        ],
    )
    good = {f"before-{n}" for n in range(30)} | {f"after-{n}" for n in range(30)}
    good |= {f"elsewhere-{n}" for n in range(40)}

    def poison_letters() -> list[Received]:
        return [d for d in collector.messages[topics.dlt] if MARKER.encode() in (d.value or b"")]

    service = replicas(**{SIGKILL_ON: MARKER})

    async def died_or_dead_lettered() -> bool:
        return service.popen.poll() is not None or bool(poison_letters())

    deaths = 0
    while True:  # restart the service each time the poison kills it, as Kubernetes would
        await until(died_or_dead_lettered, 90, "the service to die or the poison to be refused")
        if poison_letters():
            break
        assert service.popen.returncode == -signal.SIGKILL
        deaths += 1
        assert deaths <= 4, "the poison was replayed after killing the service four times"
        service = replicas(**{SIGKILL_ON: MARKER})
    assert deaths == 4, "the first death only names a poll; the next three are the poison's own"

    replies = await collector.wait_for_events(topics.replies, good, timeout_s=60)
    verdicts = [r.json() for r in replies]
    assert {v["event_id"] for v in verdicts if v["response"] == "SUCCESS"} == good
    [refusal] = [v for v in verdicts if v["response"] == "ERROR"]
    assert refusal["stage"] == "parse" and refusal["event_id"] is None
    assert "stopped the service 3 times" in refusal["message"]
    assert "partition" in refusal["message"] and "offset 30" in refusal["message"]

    [letter] = collector.messages[topics.dlt]
    assert letter.headers["x-error-stage"] == b"parse"
    assert letter.headers["x-original-offset"] == b"30"
    assert letter.json() == poison[1], "the dead letter keeps the original bytes"

    stored = {
        r["record"]["ContactNotes"] for r in await stored_records(sandbox, "/customerContacts")
    }
    assert good <= stored and MARKER not in stored

    # Still consuming, in the same process: a later record of the same partition gets through.
    await produce(kafka_bootstrap, topics.events, contacts("later", range(1), SAME_PARTITION))
    await collector.wait_for_events(topics.replies, {"later-0"}, timeout_s=30)
    assert service.popen.poll() is None
    await service.wait_ready()
    assert (
        len([r for r in collector.messages[topics.replies] if r.json()["response"] == "ERROR"]) == 1
    )


async def test_a_sigterm_leaves_no_crash_mark_behind(
    replicas,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    redis: Redis,
    redis_prefix: str,
) -> None:
    # A small in-flight limit keeps polls small and coming while the backlog is delivered.
    service = replicas(SAGEBRIDGE_MAX_IN_FLIGHT="200")
    await service.wait_ready()
    total = 20_000
    await produce(kafka_bootstrap, topics.events, contacts("c", range(total)))

    async def marked() -> bool:
        return bool(await redis.keys(f"{redis_prefix}:takein:*"))

    await until(marked, 60, "a poll's crash-loop mark while the backlog is taken in")
    assert service.terminate(timeout_s=20) == 0
    assert len(collector.messages[topics.replies]) < total, "the SIGTERM came mid-stream"
    assert await redis.keys(f"{redis_prefix}:takein:*") == []
    assert await redis.keys(f"{redis_prefix}:deaths:*") == []

    # The successor finds no mark: it takes the rest in as usual, not one record at a time.
    successor = replicas(SAGEBRIDGE_MAX_IN_FLIGHT="200")
    await collector.wait_for_events(topics.replies, {f"c-{n}" for n in range(total)}, 180)
    assert b"one at a time" not in successor.log_path.read_bytes()
