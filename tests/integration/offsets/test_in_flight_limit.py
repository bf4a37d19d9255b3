"""At the in-flight limit nothing more is taken in until something is answered, so the batch
lane sends what it holds at once instead of waiting for full arrays or ``BATCH_WAIT_MS``."""

from __future__ import annotations

from service.dev.events import contact, event, produce
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from tests.support.kafka import Collector

LIMIT = 10


async def test_records_held_at_the_limit_are_sent_without_waiting_for_the_batch_wait(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox
) -> None:
    contacts = [(f"k{n}".encode(), event(f"c-{n}", contact(n))) for n in range(LIMIT)]
    # Arrays never fill (100 > LIMIT) and the wait outlasts the collector's patience: only
    # sending at the limit answers these records in time.
    async with running_service(max_in_flight=LIMIT, batch_max=100, batch_wait_ms=60_000):
        await produce(kafka_bootstrap, topics.events, contacts)
        replies = await collector.wait_for(topics.replies, LIMIT, timeout_s=30)
    assert [r.json()["response"] for r in replies] == ["SUCCESS"] * LIMIT
    assert (await sandbox_stats(sandbox))["batch_calls"] >= 1
