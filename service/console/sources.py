"""The console's one door to Kafka and Redis: every read and action goes through the modules the
operators' commands use (``service/tools``, ``service/state``), called from here only, so when
those commands change (the settle guard on ``ledger resolve``, say) this is the file to follow.

Failures arrive as :class:`~service.errors.ToolError` with the commands' own one-line words
(:func:`service.tools.reach.unreachable`); the pages show that line, never a traceback.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from redis.asyncio import Redis

from service.config import Settings
from service.console.audit import Action, decode
from service.errors import ToolError
from service.intake.envelope import Event, parse_event
from service.kafka.security import kafka_client_options
from service.offsets.log_ends import UNKNOWN_END, LogEnds
from service.state.client import connect as connect_redis
from service.state.in_doubt import Intent, intents
from service.state.pauses import PauseStore
from service.tenants import TenantDirectory, TenantKey
from service.tools import ledger as ledger_tool
from service.tools.dead_letter_reader import DeadLetterReader, MissingTopic
from service.tools.dead_letters import DeadLetter, LetterFilter
from service.tools.dlt_list import Listing
from service.tools.reach import unreachable
from service.tools.replay import replay_dead_letters

REDIS_TIMEOUT_S = 5.0
MAX_AUDITED_IDS = 1000
"""Most event_ids a replay's audit record names."""
_NOT_IN_LEDGER = "the ledger does not know it"
"""``ledger show``'s words for an event it has no entry for."""
_REPLAYED = re.compile(r"^replayed (\d+) dead letter\(s\)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Found:
    """A record of some topic that concerns an event (its input, reply, dead letter)."""

    topic: str
    partition: int
    offset: int
    time: datetime
    value: bytes | None


@dataclass(frozen=True, slots=True)
class History:
    event_id: str
    records: list[Found]
    replies: list[Found]
    letters: list[DeadLetter]
    ledger: list[str]
    """``ledger show``'s line for each tenant the event was seen under."""
    actions: list[Action]
    in_ledger: bool

    @property
    def known(self) -> bool:
        """Whether anything at all knows this event_id."""
        return bool(self.records or self.replies or self.letters or self.actions or self.in_ledger)


class Sources:
    """Reads and actions on the service's Kafka topics and Redis state, for one console."""

    def __init__(self, settings: Settings, tenants: TenantDirectory, audit_topic: str) -> None:
        self._settings = settings
        self._tenants = tenants
        self._audit_topic = audit_topic

    @property
    def tenants(self) -> list[TenantKey]:
        return sorted(self._tenants.tenants)

    @asynccontextmanager
    async def _redis(self, what: str) -> AsyncIterator[Redis]:
        redis = connect_redis(
            self._settings.redis_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        try:
            async with unreachable(what, self._settings):
                yield redis
        finally:
            await redis.aclose()

    async def _topic(self, topic: str) -> AsyncIterator[DeadLetter]:
        """Every record of ``topic`` up to its end, read as ``dlt list`` reads (no group)."""
        reading = self._settings.model_copy(update={"dlt_topic": topic})
        try:
            async with DeadLetterReader(reading) as reader:
                async for batch in reader.batches():
                    for record in batch:
                        yield record
        except MissingTopic:
            return

    # Dead letters ---------------------------------------------------------------------------

    async def letters(self, chosen: LetterFilter, limit: int) -> Listing:
        """Counts of the matching letters and the newest ``limit``, as ``dlt list`` has them."""
        listing = Listing(limit)
        async with unreachable("dead letters", self._settings):
            async for letter in self._topic(self._settings.dlt_topic):
                if chosen.matches(letter):
                    listing.add(letter)
        return listing

    async def letter(self, partition: int, offset: int) -> DeadLetter | None:
        async with unreachable("dead letter", self._settings):
            async for letter in self._topic(self._settings.dlt_topic):
                if (letter.partition, letter.offset) == (partition, offset):
                    return letter
        return None

    async def replay(self, chosen: LetterFilter) -> tuple[int, tuple[str, ...]]:
        """``dlt replay`` with these filters: how many letters this call replayed (a letter
        replayed before, from any tab or terminal, is not counted or sent again), and the
        event_ids the filters matched (the newest :data:`MAX_AUDITED_IDS`), for the audit."""
        matched = await self.letters(chosen, MAX_AUDITED_IDS)
        ids = tuple(sorted({letter.event_id for letter in matched.newest if letter.event_id}))
        out = io.StringIO()
        await replay_dead_letters(self._settings, letters=chosen, out=out)
        counted = _REPLAYED.findall(out.getvalue())
        return (int(counted[-1]) if counted else 0), ids

    # The ledger -----------------------------------------------------------------------------

    async def in_doubt(self) -> list[Intent]:
        async with self._redis("in doubt") as redis:
            return await intents(
                redis, self._settings.redis_prefix, self._settings.idempotency_retention_s
            )

    async def resolve(self, event_id: str, tenant: TenantKey, *, delivered: bool) -> str:
        """``ledger resolve``'s verdict and its words; :class:`ToolError` when refused.

        SETTLE GUARD (issue 22): ``ledger resolve --not-delivered`` is to be refused until
        SAGEBRIDGE_SETTLE_AFTER_UNKNOWN_S after the record's last attempt. That check belongs
        to :func:`service.tools.ledger.resolve`; once it has it, this call inherits it (pass
        ``force`` through here if the console is to offer an override). Nothing to add elsewhere.
        """
        out = io.StringIO()
        await ledger_tool.resolve(self._settings, event_id, tenant, delivered=delivered, out=out)
        return out.getvalue().strip()

    async def ledger_line(self, event_id: str, tenant: TenantKey) -> str:
        out = io.StringIO()
        await ledger_tool.show(self._settings, event_id, tenant, out=out)
        return out.getvalue().strip()

    # Tenants --------------------------------------------------------------------------------

    async def paused(self) -> dict[TenantKey, str]:
        async with self._redis("tenants") as redis:
            return await PauseStore(redis, self._settings.redis_prefix).paused()

    async def pause(self, tenant: TenantKey, *, pause: bool) -> bool:
        """Pause (or resume) ``tenant`` as ``sagebridge tenant`` does; whether it changed."""
        async with self._redis("tenants") as redis:
            store = PauseStore(redis, self._settings.redis_prefix)
            return await (store.pause(tenant) if pause else store.resume(tenant))

    async def backlog(self) -> int | None:
        """Records on the input topics the service's group has not committed yet (every
        tenant's together: they share the topics); ``None`` when Kafka cannot say. The group's
        offsets are read as ``dlt replay`` reads its own: without joining the group."""
        options = kafka_client_options(self._settings)
        consumer = AIOKafkaConsumer(
            **options,
            group_id=self._settings.group_id,
            enable_auto_commit=False,
            client_id="sagebridge-console",
        )
        ends = LogEnds(options)
        try:
            await consumer.start()
            partitions = [
                TopicPartition(topic, p)
                for topic in self._settings.input_topics
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            committed = {tp: await consumer.committed(tp) or 0 for tp in partitions}
            found = await ends.of(partitions, within_s=REDIS_TIMEOUT_S)
        except KafkaError:
            return None
        finally:
            await consumer.stop()
            await ends.aclose()
        if not partitions or any(end == UNKNOWN_END for end in found.values()):
            return None
        return sum(max(0, found[tp] - committed[tp]) for tp in partitions)

    async def letters_by_stage(self, since: timedelta) -> dict[str, Counter[str]]:
        """Per tenant, its dead letters by stage over the last ``since``."""
        counts: dict[str, Counter[str]] = {}
        chosen = LetterFilter(since=datetime.now(UTC) - since)
        async with unreachable("dead letters", self._settings):
            async for letter in self._topic(self._settings.dlt_topic):
                if chosen.matches(letter):
                    counts.setdefault(letter.tenant, Counter())[letter.stage] += 1
        return counts

    # Audit and history ----------------------------------------------------------------------

    async def record(self, done: Action) -> None:
        """Write ``done`` to the audit topic (created on first use); :class:`ToolError` when
        Kafka does not acknowledge it."""
        async with unreachable("audit", self._settings):
            await self._ensure_audit_topic()
            producer = AIOKafkaProducer(**kafka_client_options(self._settings), acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(self._audit_topic, done.encode(), key=done.key())
            finally:
                await producer.stop()

    async def _ensure_audit_topic(self) -> None:
        admin = AIOKafkaAdminClient(**kafka_client_options(self._settings))
        await admin.start()
        try:
            if self._audit_topic not in await admin.list_topics():
                with suppress(TopicAlreadyExistsError):  # another console was first
                    await admin.create_topics([NewTopic(self._audit_topic, 1, 1)])
        finally:
            await admin.close()

    async def actions(self) -> list[Action]:
        """Every action on the audit topic, oldest first."""
        found = []
        async with unreachable("audit", self._settings):
            async for record in self._topic(self._audit_topic):
                done = decode(record.value)
                if done is not None:
                    found.append(done)
        return found

    async def replies(self, event_id: str) -> list[Found]:
        """The replies on the default reply topic to ``event_id``."""
        async with unreachable("replies", self._settings):
            return [
                _found(record)
                async for record in self._topic(self._settings.reply_topic)
                if _reply_of(record.value) == event_id
            ]

    async def history(self, event_id: str) -> History:
        """Everything the topics, the ledger and the audit topic hold of ``event_id``."""
        records: list[Found] = []
        tenants: set[TenantKey] = set()
        max_bytes = self._settings.max_event_bytes
        async with unreachable("history", self._settings):
            for topic in self._settings.input_topics:
                async for record in self._topic(topic):
                    event = parse_event(record.value, max_bytes)
                    if isinstance(event, Event) and event.event_id == event_id:
                        records.append(_found(record))
                        tenants.add(self._tenant_of(event))
            replies = await self.replies(event_id)
            letters = [
                letter
                async for letter in self._topic(self._settings.dlt_topic)
                if letter.event_id == event_id
            ]
        actions = [a for a in await self.actions() if event_id in a.event_ids]
        tenants |= {
            TenantKey(*a.tenant.split("/", 1)) for a in actions if a.tenant and "/" in a.tenant
        }
        if not tenants and self._tenants.default is not None:
            tenants.add(self._tenants.default.key)
        ledger = [await self.ledger_line(event_id, tenant) for tenant in sorted(tenants)]
        in_ledger = any(_NOT_IN_LEDGER not in line for line in ledger)
        return History(event_id, records, replies, letters, ledger, actions, in_ledger)

    def _tenant_of(self, event: Event) -> TenantKey:
        if event.customer and event.company:
            return TenantKey(event.customer, event.company)
        default = self._tenants.default
        if default is None:
            raise ToolError("history: an event names no tenant and no default is configured")
        return default.key


def _found(record: DeadLetter) -> Found:
    return Found(record.topic, record.partition, record.offset, record.time, record.value)


def _reply_of(value: bytes | None) -> str | None:
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    found = body.get("event_id") if isinstance(body, dict) else None
    return found if isinstance(found, str) else None
