"""One clear line, not a traceback, when a tool cannot reach Kafka or Redis.

Operators run these commands by hand, often in a pod right after something went wrong; a
connection failure must read as which service at which address, and end the command non-zero.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from service.config import Settings
from service.errors import StateUnavailable, ToolError
from service.tools.dead_letter_reader import MissingTopic


@asynccontextmanager
async def unreachable(command: str, settings: Settings) -> AsyncIterator[None]:
    """Turns Kafka and Redis failures inside the block into a :class:`ToolError`. aiokafka's
    own log lines (a traceback-like "Unable connect" per attempt) are kept out of the
    operator's terminal: the error it ends with is the line printed."""
    logging.getLogger("aiokafka").addHandler(_SILENT)
    try:
        yield
    except MissingTopic as exc:
        raise ToolError(f"{command}: {exc}") from None
    except KafkaError as exc:
        raise ToolError(
            f"{command}: cannot reach Kafka at {settings.kafka_bootstrap}: {_line(exc)}"
        ) from None
    except (RedisError, StateUnavailable) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, RedisError) else exc
        raise ToolError(f"{command}: cannot reach Redis: {_line(cause)}") from None


_SILENT = logging.NullHandler()


def _line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
