"""``python -m bench.tansu_skip [ROUNDS] [PRODUCERS]``: does a live reader see every record?

aiokafka alone against the embedded Tansu broker. Several producers write one single-partition
topic at once, each sending one small record every few milliseconds (as the serial lane's
replicas answer invoices), while one consumer reads it live from the beginning. At the end a
second consumer reads the topic again from offset 0, to show whether the records the live reader
missed are in the log (docs/deploy.md, "Local infrastructure for tests", has what it found).
sagebridge's tests and benchmark read replies through :class:`service.dev.devstack.HoleGuard`
because of this.
"""

from __future__ import annotations

import asyncio
import random
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.dev.devstack import start_tansu
from service.dev.topics import create_topics

RECORDS_PER_PRODUCER = 700


async def _read(bootstrap: str, topic: str, count: int, give_up: asyncio.Event) -> dict[bytes, int]:
    """Key -> offset of every record read, until ``count`` keys or ``give_up``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        fetch_max_wait_ms=20,
    )
    seen: dict[bytes, int] = {}
    await consumer.start()
    try:
        while len(seen) < count and not give_up.is_set():
            for records in (await consumer.getmany(timeout_ms=50)).values():
                for record in records:
                    if record.key is not None:
                        seen[record.key] = record.offset
    finally:
        await consumer.stop()
    return seen


async def _produce(bootstrap: str, topic: str, name: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = []
        for n in range(RECORDS_PER_PRODUCER):
            key = f"{name}-{n}".encode()
            sends.append(await producer.send(topic, b"v" * 120, key=key))
            await asyncio.sleep(random.uniform(0.001, 0.008))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _round(bootstrap: str, number: int, producers: int) -> int:
    topic = f"skip-{number}-{random.getrandbits(32):08x}"
    await create_topics(bootstrap, [topic])
    total = producers * RECORDS_PER_PRODUCER
    loop = asyncio.get_running_loop()
    live_gives_up, again_gives_up = asyncio.Event(), asyncio.Event()
    live_reader = asyncio.create_task(_read(bootstrap, topic, total, live_gives_up))
    await asyncio.gather(*(_produce(bootstrap, topic, f"p{k}") for k in range(producers)))
    loop.call_later(10, live_gives_up.set)
    live = await live_reader
    missed = total - len(live)
    line = f"round {number}: {producers} producer(s), {total} records: live reader missed {missed}"
    if missed:
        loop.call_later(10, again_gives_up.set)
        again = await _read(bootstrap, topic, total, again_gives_up)
        gone = sorted(set(again) - set(live))
        line += f"; read again from 0: {len(again)} records, the missed ones at offsets "
        line += ", ".join(str(again[key]) for key in gone)
    print(line, flush=True)
    return missed


async def main(rounds: int, producers: int) -> int:
    broker = start_tansu()
    try:
        bootstrap = f"127.0.0.1:{broker.port}"
        missed = [await _round(bootstrap, n, producers) for n in range(rounds)]
    finally:
        broker.stop()
    print(
        f"{sum(missed)} record(s) missed by the live reader in {sum(1 for m in missed if m)} "
        f"of {rounds} rounds"
    )
    return 1 if any(missed) else 0


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    sys.exit(asyncio.run(main(*(args + [20, 3][len(args) :]))))
