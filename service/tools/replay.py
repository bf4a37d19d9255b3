"""``sagebridge dlt replay``: send dead letters back to the topic they came from.

Once the data (or the configuration) is fixed upstream, an operator replays: each dead letter's
original key and value go back to ``x-original-topic`` (or ``--to``), byte for byte, with an
``x-replayed-from`` header naming the dead letter. Progress is a committed offset of the group
``<SAGEBRIDGE_GROUP_ID>-dlt-replay``, so running it twice does not replay twice; a dead letter is
committed only after its replay was acknowledged by Kafka.
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from service.config import Settings
from service.kafka.security import kafka_client_options

IDLE_POLL_MS = 1000


async def replay_dead_letters(
    settings: Settings, *, limit: int | None = None, to_topic: str | None = None
) -> int:
    consumer = AIOKafkaConsumer(
        settings.dlt_topic,
        **kafka_client_options(settings),
        group_id=f"{settings.group_id}-dlt-replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 5),
    )
    producer = AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
    )
    await consumer.start()
    await producer.start()
    replayed = skipped = 0
    try:
        while limit is None or replayed < limit:
            batches = await consumer.getmany(
                timeout_ms=IDLE_POLL_MS, max_records=None if limit is None else limit - replayed
            )
            if not batches:
                break  # caught up
            sends = []
            positions: dict[TopicPartition, int] = {}
            for partition, records in batches.items():
                for record in records:
                    headers = dict(record.headers or ())
                    target = to_topic or headers.get("x-original-topic", b"").decode()
                    positions[partition] = record.offset + 1
                    if not target:
                        skipped += 1
                        print(
                            f"skipped dead letter at offset {record.offset}: "
                            "no x-original-topic header",
                            file=sys.stderr,
                        )
                        continue
                    origin = f"{settings.dlt_topic}@{record.partition}:{record.offset}"
                    sends.append(
                        await producer.send(
                            target,
                            record.value,
                            key=record.key,
                            headers=[("x-replayed-from", origin.encode())],
                        )
                    )
                    replayed += 1
            await asyncio.gather(*sends)
            await consumer.commit(positions)
    finally:
        await producer.stop()
        await consumer.stop()
    print(f"replayed {replayed} dead letter(s)" + (f", skipped {skipped}" if skipped else ""))
    return 0
