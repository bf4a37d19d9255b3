"""Redis and what the service keeps in it: the tenant locks, the ledger of delivered events and
the settle period after an unknown outcome. The Redis URL may carry a password, so it is
masked wherever settings are printed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from pydantic import BaseModel, Field

from service.redaction import Redactor


class StateSettings(BaseModel):
    redis_url: str = "redis://localhost:6379/0"
    """May hold a password: masked wherever settings are printed (see :func:`redis_passwords`)."""
    redis_prefix: str = "sagebridge"
    """Prefix of every Redis key, so several deployments (or tests) share one Redis safely."""
    redis_allow_eviction: bool = False
    """Start even though Redis's ``maxmemory-policy`` may evict keys (see
    :mod:`service.state.eviction`)."""
    lock_ttl_ms: int = Field(40_000, ge=100)
    """Tenant lock lease: how long a dead replica can block a tenant's serial lane. A call
    starts only while the lease outlasts ``http_timeout_s``, so it must exceed that."""
    lock_wait_ms: int = Field(30_000, ge=10)
    """Longest single wait for a tenant lock before logging and waiting again."""
    settle_after_unknown_s: float = Field(120.0, ge=0)
    """After a transactional call whose outcome is unknown, how long the tenant makes no
    further call: the Cloud Connector may still be processing it
    (docs/transactional-safety.md)."""
    idempotency_retention_s: int = Field(7 * 24 * 3600, ge=60)
    """How long the ledger remembers delivered events (answers redeliveries without a call)."""

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """The usual ``repr`` and ``str``, with the Redis URL's password masked."""
        for name, value in super().__repr_args__():
            yield name, masked_redis_url(value) if name == "redis_url" else value


def redis_passwords(url: str) -> list[str]:
    """The password a Redis URL carries (in its user part or a ``password`` parameter), as
    written and as redis-py decodes it; empty when it has none."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = {password, unquote(password)} if password else set()
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if name == "password" and value:
            found |= {value, unquote_plus(value)}
    return sorted(found)


def masked_redis_url(url: str) -> str:
    """``url`` fit to print: its password, if any, masked."""
    return Redactor(redis_passwords(url)).text(url)
