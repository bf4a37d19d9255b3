"""How the console reads: a topic from its start to its end without joining a group (as
``dlt list`` reads), and a short-lived Redis connection whose failure is the commands' one line
(:func:`service.tools.reach.unreachable`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from service.config import Settings
from service.state.client import connect as connect_redis
from service.tools.dead_letter_reader import DeadLetterReader, MissingTopic
from service.tools.dead_letters import DeadLetter
from service.tools.reach import unreachable

REDIS_TIMEOUT_S = 5.0


async def read_topic(settings: Settings, topic: str) -> AsyncIterator[DeadLetter]:
    """Every record of ``topic`` up to its end, read as ``dlt list`` reads (no group); none
    when the topic does not exist yet."""
    reading = settings.model_copy(update={"dlt_topic": topic})
    try:
        async with DeadLetterReader(reading) as reader:
            async for batch in reader.batches():
                for record in batch:
                    yield record
    except MissingTopic:
        return


@asynccontextmanager
async def redis_for(settings: Settings, what: str) -> AsyncIterator[Redis]:
    """A Redis connection for one read or action on ``what``, closed after it."""
    redis = connect_redis(
        settings.redis_url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    try:
        async with unreachable(what, settings):
            yield redis
    finally:
        await redis.aclose()
