"""The ``ceiling`` case: the least a Python Kafka service can do per record.

Consume the events topic in a consumer group, publish one small reply per record (keyed like
the input) to the reply topic, wait for the acknowledgements, commit, repeat. No parsing,
validation, HTTP or Redis. Producer settings match sagebridge's (``acks=all``, 5 ms linger).

Run as its own process: ``python -m bench.ceiling --bootstrap B --topic T --reply-topic R
--group G --ready-file F``; it touches F once the group has assigned it partitions and stops
on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

REPLY = b'{"response":"SUCCESS"}'


async def serve(bootstrap: str, topic: str, reply_topic: str, group: str, ready: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=3000,
        heartbeat_interval_ms=600,
        max_poll_records=1000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    await consumer.start()
    signalled = False
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            if not signalled and consumer.assignment():
                await asyncio.to_thread(ready.touch)
                signalled = True
            if not batches:
                continue
            sends = []
            offsets: dict[TopicPartition, int] = {}
            for partition, records in batches.items():
                for record in records:
                    sends.append(await producer.send(reply_topic, REPLY, key=record.key))
                offsets[partition] = records[-1].offset + 1
            await asyncio.gather(*sends)
            await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--reply-topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.bootstrap, args.topic, args.reply_topic, args.group, args.ready_file))


if __name__ == "__main__":
    main()
