"""How a starting replica learns the epoch it works under (:mod:`service.kafka.epoch_watch`),
against real Redis, with Kafka's answers given by a stand-in group consumer: which answer
leads to a first epoch, to a loss and its quarantine, or to the epoch already there, and
what is committed to Kafka on the way (the system tests run the same path through a real
broker: tests/system/test_epoch_establishment.py, test_outage_and_shutdown.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from redis.asyncio import Redis

from service.kafka.epoch_watch import EpochWatch
from service.state.epoch import Epoch

TOPIC = "events"
PARTITIONS = [TopicPartition(TOPIC, n) for n in range(2)]


class GroupAsKafkaAnswers:
    """The group consumer's questions to Kafka, answered for a group whose committed offsets
    are ``committed``; Kafka leaves them unanswered when ``silent``."""

    def __init__(self, committed: dict[TopicPartition, int] | None = None, silent: bool = False):
        self.committed = dict(committed or {})
        self.silent = silent
        self.asked = 0
        self.traces: list[set[TopicPartition]] = []
        self.owned = set(PARTITIONS)
        self.while_asked: Callable[[], None] = lambda: None
        """What happens in the group while Kafka is asked (a rebalance, say)."""

    def partitions_of(self, topic: str) -> list[TopicPartition]:
        return [tp for tp in PARTITIONS if tp.topic == topic]

    async def any_committed(self, partitions: Collection[TopicPartition], within_s: float) -> bool:
        self.asked += 1
        self.while_asked()
        if self.silent:
            raise TimeoutError
        return any(tp in self.committed for tp in partitions)

    async def commit_beginnings(
        self, partitions: Collection[TopicPartition], within_s: float
    ) -> None:
        if not set(partitions) <= self.owned:
            raise IllegalStateError("a commit on a partition not assigned")  # as aiokafka does
        self.traces.append(set(partitions))
        self.committed.update(dict.fromkeys(partitions, 0))


class LogEndsAt:
    """Where each partition's log ends, as Kafka answers it (or, once, does not)."""

    def __init__(self, silent_once: bool = False) -> None:
        self._silent = silent_once

    async def of(
        self, partitions: Collection[TopicPartition], within_s: float
    ) -> dict[TopicPartition, int]:
        if self._silent:
            self._silent = False
            raise TimeoutError
        return dict.fromkeys(partitions, 10)


@pytest.fixture
def epoch(redis: Redis, redis_prefix: str) -> Epoch:
    return Epoch(redis, redis_prefix, quarantine_s=30)


def watch(
    epoch: Epoch, kafka: GroupAsKafkaAnswers, log_ends: LogEndsAt | None = None
) -> EpochWatch:
    return EpochWatch(epoch, kafka, log_ends or LogEndsAt(), [TOPIC])  # type: ignore[arg-type]


async def quarantined(redis: Redis, epoch: Epoch) -> bool:
    return bool(await redis.exists(epoch.quarantine_key))


async def test_a_fresh_deployment_leaves_its_trace_then_starts_the_first_epoch(
    redis: Redis, epoch: Epoch
) -> None:
    kafka = GroupAsKafkaAnswers()
    await watch(epoch, kafka).assigned(set(PARTITIONS))
    assert kafka.traces == [set(PARTITIONS)]
    assert epoch.known and await epoch.current() == epoch.known
    assert not await quarantined(redis, epoch)


@pytest.mark.parametrize(
    "answers",
    [{"committed": {PARTITIONS[1]: 7}}, {"silent": True}],
    ids=["committed-before", "kafka-silent"],
)
async def test_no_epoch_without_proof_of_a_fresh_deployment_is_a_loss(
    redis: Redis, epoch: Epoch, answers: dict[str, Any]
) -> None:
    kafka = GroupAsKafkaAnswers(**answers)
    await watch(epoch, kafka).assigned({PARTITIONS[0]})
    assert kafka.traces == []
    assert await quarantined(redis, epoch)


async def test_a_replica_joining_a_running_deployment_commits_nothing(
    redis: Redis, epoch: Epoch, redis_prefix: str
) -> None:
    earlier = Epoch(redis, redis_prefix, quarantine_s=30)
    await earlier.establish()
    kafka = GroupAsKafkaAnswers({tp: 40 for tp in PARTITIONS})
    await watch(epoch, kafka).assigned(set(PARTITIONS))
    assert kafka.traces == [], "a trace would take the group back to the start of the logs"
    assert kafka.committed == {tp: 40 for tp in PARTITIONS}
    assert epoch.known == earlier.known
    assert not await quarantined(redis, epoch)


async def test_an_assignment_and_the_periodic_check_together_establish_once(
    redis: Redis, epoch: Epoch
) -> None:
    # A replica's partitions are taken on while its once-a-second Redis check runs: one of
    # them must not take the other's fresh trace for a commit made before it started.
    kafka = GroupAsKafkaAnswers()
    watched = watch(epoch, kafka)
    await asyncio.gather(watched.assigned(set(PARTITIONS)), watched.check())
    assert kafka.asked == 1
    assert kafka.traces == [set(PARTITIONS)]
    assert not await quarantined(redis, epoch)


async def test_a_first_epoch_is_left_to_partitions_the_replica_still_owns(
    redis: Redis, epoch: Epoch
) -> None:
    # Kafka did not say where the logs end when the partitions came, and one of them went
    # before the periodic check established the first epoch.
    kafka = GroupAsKafkaAnswers()
    watched = watch(epoch, kafka, LogEndsAt(silent_once=True))
    with pytest.raises(TimeoutError):
        await watched.assigned(set(PARTITIONS))
    watched.revoked({PARTITIONS[0]})
    kafka.owned = {PARTITIONS[1]}
    await watched.check()
    assert kafka.traces == [{PARTITIONS[1]}]
    assert not await quarantined(redis, epoch)


async def test_partitions_revoked_while_kafka_is_asked_leave_no_empty_trace(
    redis: Redis, epoch: Epoch
) -> None:
    # A fresh epoch with no trace behind it would let a Redis emptied before the first commit
    # pass for a fresh deployment: the epoch waits for the next assignment instead.
    kafka = GroupAsKafkaAnswers()
    watched = watch(epoch, kafka)
    kafka.while_asked = lambda: watched.revoked(set(PARTITIONS))
    await watched.assigned(set(PARTITIONS))
    assert kafka.traces == [] and not epoch.established

    kafka.while_asked = lambda: None
    await watched.assigned({PARTITIONS[1]})
    assert kafka.traces == [{PARTITIONS[1]}] and epoch.established
    assert not await quarantined(redis, epoch)
