"""Running the demo: the parts, the service in this process, the feed in, the answers out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from service.config import Settings
from service.dev.demo.crm_feed import name_change_line, salesforce_feed
from service.dev.demo.feed import FeedEvent, sample_feed
from service.dev.demo.stack import Stack, settings_for, start_stack
from service.dev.demo.summary import summary_lines
from service.dev.demo.tally import Progress, Tally, collect
from service.dev.events import produce
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.sandbox.client import stored_records
from service.dev.topics import create_topics
from service.errors import DevStackError

REPLY_DEADLINE_S = 120.0
MIN_EVENTS_WITH_CRM = 20
"""Fewer events are all from the sample feed; more include the Salesforce change events."""
INPUT_PARTITIONS = 6


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Warnings only: FastStream's and aiokafka's INFO lines would bury the progress line."""
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


async def _pipeline(settings: Settings, stack: Stack, feed: list[FeedEvent], err: TextIO) -> int:
    """Topics, the service, the feed in, the answers out; the summary on stdout."""
    from aiokafka import AIOKafkaConsumer

    from service.app import create_app
    from service.tenants import TenantDirectory

    bootstrap = settings.kafka_bootstrap
    await create_topics(bootstrap, settings.input_topics, INPUT_PARTITIONS)
    await create_topics(bootstrap, [settings.reply_topic, settings.dlt_topic])
    consumer = AIOKafkaConsumer(
        settings.reply_topic,
        settings.dlt_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    tally = Tally.expecting(feed)
    try:
        app, _ = create_app(settings, TenantDirectory.from_settings(settings))
        await app.start()
        try:
            err.write(f"demo: sending {len(feed)} events to {settings.input_topics[0]}\n")
            progress = Progress(tally.total, err)
            started = progress.started
            records = [(e.key, e.value, list(e.headers)) for e in feed]
            await produce(bootstrap, settings.input_topics[0], records)
            complete = await collect(
                consumer, settings.dlt_topic, tally, progress, REPLY_DEADLINE_S
            )
            wall_s = time.monotonic() - started
            progress.finish()
        finally:
            await app.stop()
    finally:
        await consumer.stop()
    stats = await sandbox_stats(stack.sandbox)
    print("\n".join(summary_lines(feed, tally, stats, wall_s)))
    if any(e.note for e in feed):
        print(name_change_line(await stored_records(stack.sandbox, "/customerContacts")))
    if not complete:
        _report_missing(tally, err)
        return 1
    return 0


def _report_missing(tally: Tally, err: TextIO) -> None:
    missing = tally.missing()
    err.write(
        f"demo: gave up after {REPLY_DEADLINE_S:.0f}s: {tally.total - tally.answered} events "
        f"without a reply (e.g. {', '.join(missing[:5]) or 'unparseable ones'}), "
        f"{len(tally.dead_letters)} dead letters for {len(tally.errors())} errors\n"
    )


def run_demo(events: int = 3000) -> int:
    """Run the demo; 0 when every event was answered (and every ERROR dead-lettered)."""
    err = sys.stderr
    if events < 1:
        err.write("sagebridge demo: --events must be at least 1\n")
        return 2
    crm = salesforce_feed() if events >= MIN_EVENTS_WITH_CRM else []
    feed = sample_feed(events - len(crm)) + crm
    with _quiet_logs(), contextlib.ExitStack() as exits:
        try:
            stack = start_stack(exits, err)
        except DevStackError as exc:
            err.write(f"sagebridge demo: {exc}\n")
            return 1
        settings = settings_for(stack, exits)
        return asyncio.run(_pipeline(settings, stack, feed, err))
