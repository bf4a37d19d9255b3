"""Private topics for one run: names nobody else uses on a shared broker, created before use.

Tests, benchmark cases and the demo share one broker; each run gets its own events, replies and
dead-letter topics and consumer group, so runs never see each other's messages or offsets.
Topics are created explicitly (with the partition count the run needs) rather than by a
broker's auto-creation, whose defaults differ between Tansu and Kafka.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    """Create ``names``, each with ``partitions`` partitions (replication factor 1)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


@dataclass(frozen=True)
class Topics:
    """A private set of topics and a consumer group."""

    events: str
    replies: str
    dlt: str
    group: str

    @classmethod
    def fresh(cls, label: str = "") -> Topics:
        tag = f"{label}-{uuid.uuid4().hex[:8]}" if label else uuid.uuid4().hex[:10]
        return cls(f"events-{tag}", f"replies-{tag}", f"dlt-{tag}", f"group-{tag}")

    async def create(self, bootstrap: str, event_partitions: int) -> None:
        """The events topic with ``event_partitions``; replies and dead letters with one."""
        await create_topics(bootstrap, [self.events], event_partitions)
        await create_topics(bootstrap, [self.replies, self.dlt])
