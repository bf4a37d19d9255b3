"""Redis failures in the state layer's own words.

Everything above ``state/`` hears of a Redis failure as
:class:`~service.errors.StateUnavailable`, never as redis-py's own exception, as httpx maps its
transport's errors at the boundary: so the lanes do not import redis, and can be tested against
in-memory stand-ins that raise the same error. The message names the failure's type only; a
redis-py message may carry a host and port, and is kept as the cause for the log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisError

from service.errors import StateUnavailable

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def redis_failures() -> Iterator[None]:
    """Raise :class:`StateUnavailable` for any Redis failure inside the block."""
    try:
        yield
    except RedisError as exc:
        raise StateUnavailable(type(exc).__name__) from exc


def speaks_state(method: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """:func:`redis_failures` around a coroutine method."""

    @wraps(method)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        with redis_failures():
            return await method(*args, **kwargs)

    return wrapped
