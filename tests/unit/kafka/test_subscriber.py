"""What one fetch may bring in: records fetched but not yet polled are outside the in-flight
count, so the fetch sizes are the bound on them."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from service.config import load_settings
from service.kafka.consumer import GroupConsumer
from service.kafka.subscriber import declare, make_broker

pytestmark = pytest.mark.usefixtures("clean_env")

MiB = 1024 * 1024


class _Rebalancing:
    async def on_revoked(self, revoked: set[TopicPartition]) -> None: ...

    async def on_assigned(self, assigned: set[TopicPartition]) -> None: ...


async def _on_poll(records: tuple[ConsumerRecord[Any, Any], ...]) -> None: ...


def _consumer_options(**env: str) -> dict[str, Any]:
    settings = load_settings()
    settings = settings.model_copy(update=env)
    subscriber = declare(make_broker(settings), settings, GroupConsumer(), _Rebalancing(), _on_poll)
    options: dict[str, Any] = subscriber._connection_args  # what AIOKafkaConsumer is given
    return options


def test_one_fetch_brings_at_most_a_mebibyte_whatever_the_partitions() -> None:
    options = _consumer_options()
    assert options["fetch_max_bytes"] <= MiB
    assert options["max_partition_fetch_bytes"] <= MiB


def test_a_smaller_byte_limit_halves_the_fetch_too() -> None:
    options = _consumer_options(max_in_flight_bytes=MiB)
    assert options["fetch_max_bytes"] == MiB // 2
    assert options["max_partition_fetch_bytes"] == MiB // 2
