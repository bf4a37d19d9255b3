"""The audit topic: each console action written (the topic created on first use) before the
page says it is done, and read back for the tenants page and an event's history."""

from __future__ import annotations

from contextlib import suppress

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from service.config import Settings
from service.console.audit import Action, decode
from service.console.reading import read_topic
from service.kafka.security import kafka_client_options
from service.tools.reach import unreachable


class AuditTrail:
    """Writes and reads of the console's audit topic."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self._topic = topic

    async def record(self, done: Action) -> None:
        """Write ``done`` to the audit topic (created on first use); :class:`ToolError` when
        Kafka does not acknowledge it."""
        async with unreachable("audit", self._settings):
            await self._ensure_topic()
            producer = AIOKafkaProducer(**kafka_client_options(self._settings), acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(self._topic, done.encode(), key=done.key())
            finally:
                await producer.stop()

    async def actions(self) -> list[Action]:
        """Every action on the audit topic, oldest first."""
        found = []
        async with unreachable("audit", self._settings):
            async for record in read_topic(self._settings, self._topic):
                done = decode(record.value)
                if done is not None:
                    found.append(done)
        return found

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(**kafka_client_options(self._settings))
        await admin.start()
        try:
            if self._topic not in await admin.list_topics():
                with suppress(TopicAlreadyExistsError):  # another console was first
                    await admin.create_topics([NewTopic(self._topic, 1, 1)])
        finally:
            await admin.close()
