"""One-record forms of the ledger's steps, for tests that look at one entry at a time (the
service always passes lists: a poll's records, an array's results)."""

from __future__ import annotations

from service.state.ledger import Ledger, LedgerEntry, ResultToWrite
from service.state.locks import Guard
from service.tenants import TenantKey


async def begin_one(
    ledger: Ledger, tenant: TenantKey, event_id: str, digest: str, *, claim: str = ""
) -> LedgerEntry:
    [entry] = await ledger.begin_many([(tenant, event_id, digest)], claim=claim)
    return entry


async def delivered_one(
    ledger: Ledger, tenant: TenantKey, event_id: str, digest: str, attempts: int
) -> None:
    await ledger.delivered_many([(tenant, event_id, digest, attempts)])


async def write_one(ledger: Ledger, result: ResultToWrite, guard: Guard) -> bool:
    [written] = await ledger.write_results([result], guard)
    return written
