"""Master data: the batch lane, with the ledger kept around it.

Upserts are idempotent, so master data may be sent twice without harm, but an event answered
twice, or re-sent after it was delivered, costs a call and can undo a later change. The ledger
protocol here keeps that from happening:

1. Every record of a poll is registered in the ledger in one round trip
   (:meth:`~service.state.ledger.Ledger.begin_many`). A record the ledger knows is answered
   from it (:mod:`service.lanes.verdicts`); an unknown one goes to the batch lane with its
   intent written.
2. A record whose earlier attempt was cut off (a crash between call and answer), or one Redis
   may have forgotten after losing its data, is first looked up in Sage
   (:mod:`service.connector.lookup`): answered if Sage has it, sent otherwise.
3. A delivered record is recorded in the ledger before its reply is published, so a
   redelivery after a crash is answered from there; a refused one's intent is withdrawn, so
   fixed data may come again under the same ``event_id``.
4. A second copy of an event (same tenant and ``event_id``) that arrives while the first is
   still on its way is not begun until the first is concluded
   (:mod:`service.lanes.copies`); it is then answered from the ledger like a redelivery.

If Redis is unreachable, master data is sent without the check (it is idempotent) and its
delivery goes unrecorded; both are logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic

from service.answers.outcomes import Outcome
from service.errors import StateUnavailable
from service.intake.admit import Admitted
from service.intake.routes import Route
from service.lanes import CallSpan, Delivery, Sink, T, untraced
from service.lanes.batch import BatchLane, BatchPolicy, Post
from service.lanes.breaker import Breakers
from service.lanes.copies import LaterCopies
from service.lanes.gathered import Gathered
from service.lanes.verdicts import answered_by_ledger
from service.ops.traces import RecordTrace
from service.state.ledger import EntryState, Ledger, LedgerEntry, fingerprint
from service.tenants import Tenant, TenantKey

log = logging.getLogger(__name__)

Lookup = Callable[[Tenant, Route, dict[str, Any]], Awaitable[bool]]
"""Whether Sage already holds this record (:func:`service.connector.lookup.already_in_sage`)."""


@dataclass(slots=True)
class Recorded(Generic[T]):
    """A caller's ticket, with what the ledger needs once its record is answered."""

    ticket: T
    tenant: TenantKey
    event_id: str
    digest: str


class MasterData(Generic[T]):
    def __init__(
        self,
        post: Post,
        policy: BatchPolicy,
        breakers: Breakers,
        ledger: Ledger,
        lookup: Lookup,
        sink: Sink[T],
        *,
        on_dropped: Callable[[Sequence[T]], None],
        may_doubt: Callable[[], bool],
        doubtful: Callable[[T], Awaitable[bool]],
        on_ledger_hit: Callable[[], None],
        on_call: Callable[[int], None],
        trace_of: Callable[[T], RecordTrace | None] = lambda ticket: None,
        call_span: CallSpan = untraced,
    ) -> None:
        """``may_doubt`` says whether Redis has lost data at all (checked once per poll);
        ``doubtful`` whether a record the ledger does not know may have been sent before.
        For metrics: ``on_ledger_hit`` is told of each record answered without a call,
        ``on_call`` gets the array size of every call. For traces: ``trace_of`` is a ticket's
        trace, ``call_span`` opens each call's span (:mod:`service.ops.traces`)."""
        self._ledger = ledger
        self._lookup = lookup
        self._sink = sink
        self._on_dropped = on_dropped
        self._may_doubt = may_doubt
        self._doubtful = doubtful
        self._on_ledger_hit = on_ledger_hit
        self._trace_of = trace_of
        self._finished: Gathered[tuple[Recorded[T], Outcome]]
        self._finished = Gathered(self._record_then_answer, self._background)
        """Calls that end in one turn are recorded in one ledger step."""
        self.lane: BatchLane[Recorded[T]] = BatchLane(
            post,
            self._finished.add,
            policy,
            breakers,
            on_dropped=self._dropped,
            on_call=on_call,
            call_span=call_span,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._copies: LaterCopies[tuple[TenantKey, str], tuple[T, Admitted]] = LaterCopies()

    async def submit(self, items: Sequence[tuple[T, Admitted]]) -> list[tuple[T, Outcome]]:
        """Register each record in the ledger and send what it has not seen delivered. Returns
        the outcomes the ledger already knows, for the caller to answer with the rest of its
        poll; the others reach the sink later (a later copy of an open event too)."""
        copies = self._copies
        items = [
            item
            for item in items
            if copies.open_or_wait((item[1].tenant.key, item[1].event.event_id), item)
        ]
        if not items:
            return []
        recorded = [
            Recorded(
                ticket,
                admitted.tenant.key,
                admitted.event.event_id,
                fingerprint(admitted.event.data),
            )
            for ticket, admitted in items
        ]
        entries = await self._begin(recorded)
        answered: list[tuple[T, Outcome]] = []
        in_doubt: list[tuple[Recorded[T], Admitted, LedgerEntry]] = []
        doubt = self._may_doubt()
        fresh: list[Delivery[Recorded[T]]] = []  # queued together, before anything else runs
        for record, (ticket, admitted), found in zip(recorded, items, entries, strict=True):
            entry = found
            if doubt and found.state is EntryState.NEW:
                self.lane.submit(fresh)  # what came before is queued before the wait
                fresh = []
                if await self._doubtful(ticket):
                    entry = LedgerEntry(EntryState.IN_DOUBT)  # Redis lost the ledger: look it up
            if entry.state is EntryState.NEW:
                fresh.append(Delivery.of(record, admitted, self._trace_of(record.ticket)))
            elif entry.state is EntryState.IN_DOUBT:
                in_doubt.append((record, admitted, entry))
            else:
                outcome = answered_by_ledger(entry, admitted.event.event_id)
                assert outcome is not None
                if outcome.ok:
                    self._on_ledger_hit()
                answered.append((ticket, outcome))
                self._concluded(record)
        self.lane.submit(fresh)
        if in_doubt:
            self._background(self._reconcile(in_doubt))
        return answered

    def withdraw(self, unwanted: Callable[[T], bool]) -> None:
        """Give up queued records whose ticket is ``unwanted`` (see :meth:`BatchLane.withdraw`),
        and later copies waiting for an earlier one."""
        waiting = self._copies.withdraw(lambda item: unwanted(item[0]))
        if waiting:
            self._on_dropped([ticket for ticket, _ in waiting])
        self.lane.withdraw(lambda record: unwanted(record.ticket))

    def hurry(self) -> None:
        """Send the buffered records now, without waiting for full arrays or ``batch_wait``:
        the caller takes in nothing more until some of them are answered (fetching paused at
        the in-flight limit), so waiting could only stall. With many companies each buffer
        holds a small share of that limit and would otherwise wait out ``batch_wait`` each time."""
        self.lane.hurry()

    async def drain(self) -> None:
        """Wait until every record has an outcome: later copies are taken in again only once
        their earlier copy's result is written, after the lane went idle."""
        while True:
            await self.lane.drain()
            if not self._tasks:
                return
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.lane.close()

    async def _begin(self, recorded: list[Recorded[T]]) -> list[LedgerEntry]:
        try:
            return await self._ledger.begin_many(
                [(r.tenant, r.event_id, r.digest) for r in recorded]
            )
        except StateUnavailable as exc:
            log.warning(
                "ledger unreachable: master data sent without the duplicate check",
                extra={"error": type(exc).__name__},
            )
            return [LedgerEntry(EntryState.NEW)] * len(recorded)

    async def _reconcile(self, items: list[tuple[Recorded[T], Admitted, LedgerEntry]]) -> None:
        """Records whose earlier call may have been cut off: answered if Sage already has
        them, sent otherwise."""
        found = await asyncio.gather(
            *(self._lookup(a.tenant, a.route, a.event.data) for _, a, _ in items)
        )
        answered: list[tuple[T, Outcome]] = []
        for (record, admitted, entry), present in zip(items, found, strict=True):
            if present:
                self._on_ledger_hit()
                answered.append((record.ticket, Outcome.success(entry.attempts)))
                self._concluded(record)
            else:
                self.lane.submit([Delivery.of(record, admitted, self._trace_of(record.ticket))])
        log.info(
            "reconciled master data left in doubt",
            extra={"already_in_sage": len(answered), "sent_again": len(items) - len(answered)},
        )
        if answered:
            self._sink(answered)

    async def _record_then_answer(self, results: list[tuple[Recorded[T], Outcome]]) -> None:
        """Delivered records go into the ledger before their reply; refused ones leave it."""
        delivered = [(r.tenant, r.event_id, r.digest, o.attempts) for r, o in results if o.ok]
        refused = [(r.tenant, r.event_id) for r, o in results if not o.ok]
        try:
            if delivered:
                await self._ledger.delivered_many(delivered)
            if refused:
                await self._ledger.withdraw_many(refused)
        except StateUnavailable as exc:
            log.warning(
                "ledger unreachable: delivered master data not recorded",
                extra={"error": type(exc).__name__, "records": len(delivered)},
            )
        self._sink([(record.ticket, outcome) for record, outcome in results])
        conclude = self._copies.conclude
        for record, _ in results:  # as _concluded, without a call of its own per record
            waiting = conclude((record.tenant, record.event_id))
            if waiting:
                self._background(self._take_in_again(waiting))

    def _dropped(self, records: Sequence[Recorded[T]]) -> None:
        self._on_dropped([record.ticket for record in records])
        for record in records:
            self._concluded(record)

    def _concluded(self, record: Recorded[T]) -> None:
        """``record``'s copy of its event has its result in the ledger (or was given up):
        take in the copies that waited for it."""
        waiting = self._copies.conclude((record.tenant, record.event_id))
        if waiting:
            self._background(self._take_in_again(waiting))

    async def _take_in_again(self, items: list[tuple[T, Admitted]]) -> None:
        answered = await self.submit(items)
        if answered:
            self._sink(answered)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
