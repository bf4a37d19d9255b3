"""What a tenant's latest transactional call carried, so a later holder can look it up in Sage.

A lock granted ``occupied`` means an earlier holder's call may still be running at the Cloud
Connector (the calling marker is set), and the new holder waits the settle period. With one call
at a time per company, that call is the only one that can be running. If the records it carried
are found in Sage, it has ended, and the rest of the wait buys nothing.

So, before each call, the holder notes what the call carries: the endpoint, the records, and its
lease's fence. The calling marker holds the fence of the holder that set it, so a note is the
running call's only when both fences agree:

* the note is written before the call starts, so whatever call may be running is named by the
  latest note of its holder; a crash between the ledger's begin (which sets the marker) and the
  note leaves the holder's previous note, whose call ended before that begin;
* a note of another holder (an older release that writes none, a stalled holder writing late)
  carries another fence: the call is not findable, and the settle period is waited as before.

One key per tenant, ``<prefix>:carried:<customer>:<company>``, added beside the keys of the
release before (which neither reads nor writes it); it expires on its own (:data:`NOTE_TTL_S`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from service.state.keys import key
from service.state.unavailable import speaks_state
from service.tenants import TenantKey

NOTE_TTL_S = 24 * 3600
"""Long past any settle period; a note outlived by its marker only means a full settle period."""


@dataclass(frozen=True, slots=True)
class Carried:
    """The records of the call that may still be running for a tenant, and where they went."""

    endpoint: str
    records: tuple[Mapping[str, Any], ...]


class CarriedCalls:
    """The per-tenant note of the latest call's records (see the module docstring)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, tenant: TenantKey) -> str:
        return key(self._prefix, "carried", *tenant)

    def _marker(self, tenant: TenantKey) -> str:
        return key(self._prefix, "calling", *tenant)

    @speaks_state
    async def note(
        self, tenant: TenantKey, fence: int, endpoint: str, encoded: Sequence[bytes]
    ) -> None:
        """Before a call under the lease of ``fence``: it carries ``encoded`` (each record's
        JSON, as sent) to ``endpoint``."""
        value = b'{"fence":%d,"endpoint":%b,"records":[%b]}' % (
            fence,
            orjson.dumps(endpoint),
            b",".join(encoded),
        )
        await self._redis.set(self._key(tenant), value, px=NOTE_TTL_S * 1000)

    @speaks_state
    async def of_running_call(self, tenant: TenantKey) -> Carried | None:
        """What the call named by the tenant's calling marker carried, or ``None`` if no note
        is that call's (no marker, no note, or the fences differ)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._marker(tenant))
            pipe.get(self._key(tenant))
            marker, note = await pipe.execute()
        if marker is None or note is None:
            return None
        try:
            found = orjson.loads(note)
            fence, endpoint, records = found["fence"], found["endpoint"], found["records"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        if str(fence).encode() != marker or not isinstance(records, list) or not records:
            return None
        if not isinstance(endpoint, str) or not all(isinstance(r, dict) for r in records):
            return None
        return Carried(endpoint, tuple(records))
