"""The tenants as the console shows them: which are configured and paused, pausing and resuming
one as ``sagebridge tenant`` does, their breakers as the replicas report them, and the backlog
the service's group has yet to read."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from service.config import Settings
from service.console.reading import REDIS_TIMEOUT_S, redis_for
from service.kafka.security import kafka_client_options
from service.offsets.log_ends import UNKNOWN_END, LogEnds
from service.state.breaker_reports import BreakerReports, TenantBreaker, by_tenant
from service.state.pauses import PauseStore
from service.tenants import TenantDirectory, TenantKey


class TenantActions:
    """Reads and actions on the tenants and their shared input."""

    def __init__(self, settings: Settings, tenants: TenantDirectory) -> None:
        self._settings = settings
        self._tenants = tenants

    @property
    def known(self) -> list[TenantKey]:
        """The configured tenants, in order."""
        return sorted(self._tenants.tenants)

    async def paused(self) -> dict[TenantKey, str]:
        async with redis_for(self._settings, "tenants") as redis:
            return await PauseStore(redis, self._settings.redis_prefix).paused()

    async def breakers(self) -> tuple[int, dict[TenantKey, TenantBreaker]]:
        """How many replicas report, and each tenant whose breaker is open on any of them."""
        async with redis_for(self._settings, "breakers") as redis:
            reports = await BreakerReports(redis, self._settings.redis_prefix).reports()
        return len(reports), by_tenant(reports)

    async def pause(self, tenant: TenantKey, *, pause: bool) -> bool:
        """Pause (or resume) ``tenant`` as ``sagebridge tenant`` does; whether it changed."""
        async with redis_for(self._settings, "tenants") as redis:
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
