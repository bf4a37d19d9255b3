"""Events in, replies out: what the benchmark sends and how it times each reply.

Every event gets a unique Kafka key (contacts: their identity; invoices: their number), and both
sagebridge and the ceiling loop key each reply like its input, so a reply is matched to its
event by key alone, without parsing. Latency is ``time.perf_counter()`` when the reply was
fetched by the collector minus the same clock just before the event was handed to the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from bench.stack import COMPANY_B, COMPANY_C, CUSTOMER_B, CUSTOMER_C
from service.dev import events
from service.dev.devstack import HoleGuard

Message = tuple[bytes, bytes]
"""(key, value), already encoded: encoding is not part of what is measured."""

EVENT_PARTITIONS = 6


def contact(n: int) -> dict[str, Any]:
    """A valid AR Customer Contact record with the fields a CRM usually fills in."""
    return events.contact(
        n,
        EmailAddress=f"contact{n}@example.com",
        City="Springfield",
        State="IL",
        TelephoneNo1=f"555-{n % 10000:04d}",
    )


def contacts(count: int, burst: int = 0) -> list[Message]:
    """Contact upserts keyed by their identity (division, customer, contact code).

    A later ``burst`` sends the same contacts again under new event ids and keys: every event
    takes the whole path (not answered from the ledger), while the sandbox keeps one row per
    contact."""
    feed = []
    tag = f"#{burst}" if burst else ""
    for n in range(count):
        data = contact(n)
        key = f"{data['ARDivisionNo']}|{data['CustomerNo']}|{data['ContactCode']}{tag}"
        body = events.event(f"contact-{n}{tag}", data)
        feed.append((key.encode(), orjson.dumps(body)))
    return feed


def invoices(count: int, tenants: int = 1) -> list[Message]:
    """AR invoices, dealt in turn to the first ``tenants`` (1 to 3) tenants."""
    feed = []
    others = [
        {},
        {"tenant": events.tenant(CUSTOMER_B, COMPANY_B)},
        {"tenant": events.tenant(CUSTOMER_C, COMPANY_C)},
    ]
    for n in range(count):
        data = {"InvoiceNo": f"INV{n:06d}", "CustomerNo": f"C{n % 500:05d}", "Amount": n}
        body = events.event(f"invoice-{n}", data, type="ar_invoice.create", **others[n % tenants])
        feed.append((f"INV{n:06d}".encode(), orjson.dumps(body)))
    return feed


def journals(count: int) -> list[Message]:
    """Large journal entries (about 240 KB each, :func:`service.dev.events.journal`)."""
    return [
        (
            f"JE{n:05d}".encode(),
            orjson.dumps(events.event(f"journal-{n}", events.journal(n), type="journal.create")),
        )
        for n in range(count)
    ]


def new_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, acks=1, max_batch_size=256 * 1024
    )


@dataclass
class Sent:
    """When each key was handed to the producer, and how long producing took."""

    at: dict[bytes, float] = field(default_factory=dict)
    first: float = 0.0
    done: float = 0.0

    @property
    def seconds(self) -> float:
        return self.done - self.first

    def join(self, later: Sent) -> None:
        """Take in a later burst's sends: first send of the first, last acknowledgement of the
        last."""
        if not self.at:
            self.first = later.first
        self.at.update(later.at)
        self.done = later.done


async def produce_burst(producer: AIOKafkaProducer, topic: str, feed: Sequence[Message]) -> Sent:
    """Everything, as fast as the producer takes it; ``done`` when Kafka acknowledged all."""
    sent = Sent(first=time.perf_counter())
    futures = []
    at = sent.at
    for key, value in feed:
        at[key] = time.perf_counter()
        futures.append(await producer.send(topic, value, key=key))
    await asyncio.gather(*futures)
    sent.done = time.perf_counter()
    return sent


async def produce_paced(
    producer: AIOKafkaProducer, topic: str, feed: Sequence[Message], rate: float
) -> Sent:
    """``rate`` events per second, on an absolute schedule (no drift), in 5 ms ticks."""
    sent = Sent(first=time.perf_counter())
    futures = []
    at = sent.at
    index = 0
    while index < len(feed):
        due = min(len(feed), int((time.perf_counter() - sent.first) * rate) + 1)
        while index < due:
            key, value = feed[index]
            at[key] = time.perf_counter()
            futures.append(await producer.send(topic, value, key=key))
            index += 1
        await asyncio.sleep(0.005)
    await asyncio.gather(*futures)
    sent.done = time.perf_counter()
    return sent


@dataclass
class Replies:
    """Reads the reply topic from the beginning; the first arrival time of each key."""

    bootstrap: str
    topic: str
    arrived: dict[bytes, float] = field(default_factory=dict)
    errors: int = 0
    duplicates: int = 0
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _holes: HoleGuard[ConsumerRecord[bytes, bytes]] = field(default_factory=HoleGuard)
    """Tansu can skip a record for a live reader; the guard reads such holes again."""

    async def start(self) -> Replies:
        self._consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        arrived = self.arrived
        while True:
            batches = await self._consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.perf_counter()
            for partition, fetched in batches.items():
                records, hole = self._holes.accept(partition, fetched)
                if hole is not None:
                    self._consumer.seek(partition, hole)
                for record in records:
                    key = record.key
                    if key in arrived:
                        self.duplicates += 1
                        continue
                    arrived[key] = now
                    if record.value is not None and b'"ERROR"' in record.value:
                        self.errors += 1
            if batches:
                self._changed.set()

    @property
    def holes(self) -> int:
        return self._holes.holes

    async def wait_for(self, count: int, timeout_s: float) -> bool:
        """At least ``count`` distinct replies; ``False`` if the deadline came first."""
        deadline = time.monotonic() + timeout_s
        while len(self.arrived) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
            if self._task is not None and self._task.done():
                self._task.result()  # the collector died: raise its error
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # its error is not ours; our cancellation is
        if self._consumer is not None:
            await self._consumer.stop()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (``q`` in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latencies_ms(sent: Sent, replies: Replies) -> list[float]:
    return [(replies.arrived[k] - t) * 1000 for k, t in sent.at.items() if k in replies.arrived]
