"""Each partition's end offset, read from the log: right even where ListOffsets is not (Tansu
answers the last batch's base offset + 1)."""

from __future__ import annotations

from aiokafka import TopicPartition

from service.dev.events import produce
from service.dev.topics import Topics
from service.offsets.log_ends import LogEnds


async def test_the_end_of_a_partition_whose_last_batch_holds_several_records(
    kafka_bootstrap: str, topics: Topics
) -> None:
    await produce(kafka_bootstrap, topics.events, [(b"k", b"v")] * 5)  # one batch, same key
    ends = LogEnds({"bootstrap_servers": kafka_bootstrap})
    partitions = [TopicPartition(topics.events, n) for n in range(3)]
    try:
        found = await ends.of(partitions, within_s=10)
    finally:
        await ends.aclose()
    assert sorted(found.values()) == [0, 0, 5]
