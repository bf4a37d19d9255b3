"""Memory is bounded by the bytes of open records, not only their count, in a real process.

500 journals of about 240 KB each (117 MB of input) queue behind a paused company. Counting
records alone, all 500 are taken in (the record limit is 5,000), each holding its bytes and its
parsed record, and the process grows to about half a gigabyte: a chart's 512 MiB limit means an
OOM kill, a replay, and the same kill again. With ``MAX_IN_FLIGHT_BYTES`` (64 MiB by default)
fetching pauses well before that; after the company is resumed every journal is answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

from service.dev.events import event, journal, produce
from service.dev.replicas import ServiceProcess
from service.dev.topics import Topics
from tests.conftest import COMPANY, CUSTOMER
from tests.support.cli import sagebridge
from tests.support.kafka import Collector
from tests.support.waiting import until

JOURNALS = 500
LINES = 1700  # about 240 KB of JSON per journal
PEAK_RSS_BOUND_MB = 320
"""The peak resident memory allowed while 117 MB of journals queue: 64 MiB of open values,
each record also packed once, with the interpreter, libraries and fetch buffers beside them.
Before the byte limit the same run peaked at about 470 MB."""


def journals(first: int, count: int) -> Iterator[tuple[bytes, bytes]]:
    for n in range(first, first + count):
        body = event(f"je-{n}", journal(n, LINES), type="journal.create")
        yield f"je-{n}".encode(), orjson.dumps(body)


def peak_rss_mb(process: ServiceProcess) -> float:
    """The process's peak resident set size (VmHWM), in MB."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


async def metric(process: ServiceProcess, name: str) -> float:
    async with httpx.AsyncClient(timeout=2) as client:
        text = (await client.get(f"http://127.0.0.1:{process.port}/metrics")).text
    found = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(found[0].split()[1]) if found else float("nan")


async def test_queued_large_journals_stay_under_a_byte_bound(
    replicas, replica_env: dict[str, str], kafka_bootstrap: str, topics: Topics
) -> None:
    service = replicas()
    await service.wait_ready(60)
    await sagebridge(replica_env, "tenant", "pause", f"{CUSTOMER}/{COMPANY}")

    async def pause_seen() -> bool:
        return "sagebridge_tenant_paused" in await metric_text(service)

    await until(pause_seen, 10, "the pause to reach the service")
    collector = await Collector(kafka_bootstrap, [topics.replies]).start()
    try:
        for first in range(0, JOURNALS, 25):
            await produce(kafka_bootstrap, topics.events, journals(first, 25))

        async def taken_in_all_it_may() -> bool:
            paused = await metric(service, "sagebridge_fetch_paused") == 1
            return paused or await metric(service, "sagebridge_in_flight") == JOURNALS

        await until(taken_in_all_it_may, 120, "fetching to pause or every journal to be open")
        queued_peak = peak_rss_mb(service)
        open_bytes = await metric(service, "sagebridge_in_flight_bytes")

        await sagebridge(replica_env, "tenant", "resume", f"{CUSTOMER}/{COMPANY}")
        replies = await collector.wait_for(topics.replies, JOURNALS, timeout_s=300)
        final_peak = peak_rss_mb(service)
    finally:
        await collector.stop()

    assert queued_peak < PEAK_RSS_BOUND_MB, f"queued: peak RSS {queued_peak:.0f} MB"
    assert final_peak < PEAK_RSS_BOUND_MB, f"after delivery: peak RSS {final_peak:.0f} MB"
    assert open_bytes <= 64 * 1024 * 1024 * 1.5, open_bytes
    answered = {r.json()["event_id"]: r.json()["response"] for r in replies}
    assert answered == {f"je-{n}": "SUCCESS" for n in range(JOURNALS)}


async def metric_text(process: ServiceProcess) -> str:
    async with httpx.AsyncClient(timeout=2) as client:
        text = (await client.get(f"http://127.0.0.1:{process.port}/metrics")).text
    paused = f'sagebridge_tenant_paused{{company="{COMPANY}",customer="{CUSTOMER}"}} 1.0'
    return paused if paused in text else ""
