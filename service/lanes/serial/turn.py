"""One turn under a tenant's lock: a group of queued records of one endpoint — one record, or up
to a route's ``batch_max`` sent as one JSON array — taken through the same four steps, top to
bottom: prepare, ask the ledger, call, conclude.

* **Prepare.** A record that cannot be fingerprinted or encoded is answered with an ERROR of its
  own; nothing is sent for it.
* **Ask the ledger** (:meth:`Hold.begin`, one guarded step under the lease): a record already
  delivered is answered SUCCESS without a call; one left in doubt by an earlier attempt (or new
  to a ledger that lost data) is answered ``unknown_outcome`` and never resent; an ``event_id``
  reused with other data is refused. Only new records are sent.
* **Call** through the one :meth:`Turn._attempt`, retrying only what proves nothing was
  processed (:mod:`service.lanes.retry`); a call starts only while the lease outlasts the call's
  timeout plus a margin. A lone record goes as a JSON object.
* **Conclude.** A timeout, a dropped connection, 500/502/504 or an answer without an envelope
  puts every record of the call in doubt (``unknown_outcome``, answered at once, never resent),
  followed by the settle period, because the Connector may still be storing them. On a route with
  a ``lookup`` their answers wait: once the call has ended there, each is looked up in Sage
  (:mod:`~service.lanes.serial.in_doubt`), as is a record the ledger already holds in doubt
  when it is begun. A known result waits for its ledger write
  (:class:`~service.lanes.serial.hold.Pending`). A record not sent this time has its intent
  withdrawn and stays queued.

A refused array is judged by the route's ``atomic_arrays``. Atomic: nothing was stored, so the
array is split as the batch lane splits (:func:`~service.lanes.isolate.split_plan`) and each part
is sent and judged by its own answer. Not atomic: the Connector may have stored the records
before the bad one, and which ones cannot be known, so every record is ``unknown_outcome``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol

import orjson

from service.answers.outcomes import Outcome, Stage
from service.connector.results import CallResult, Delivered, Rejected, Unknown
from service.lanes import Delivery, T
from service.lanes.breaker import Breakers
from service.lanes.isolate import split_plan
from service.lanes.retry import Concluded, Retries, call_with_retries
from service.lanes.serial.hold import Hold, Pending
from service.lanes.serial.in_doubt import Doubted, InDoubt, Next
from service.lanes.serial.lookups import Lookups, no_lookups
from service.lanes.verdicts import answered_by_ledger
from service.state.ledger import EntryState, LedgerEntry, ResultToWrite, fingerprint
from service.tenants import Tenant

log = logging.getLogger("service.lanes.serial")

IN_DOUBT_MESSAGE = (
    "an earlier attempt reached the Cloud Connector without an answer; check Sage before "
    "replaying — not resent"
)
LEDGER_LOST_MESSAGE = (
    "Redis lost the ledger after this record may already have been sent; check Sage before "
    "replaying — not resent"
)


class FencedPost(Protocol):
    def __call__(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> Awaitable[CallResult]: ...


@dataclass(frozen=True, slots=True)
class ArrayRule:
    """A serial route's arrays (``contracts/routes.yaml``)."""

    batch_max: int = 1
    """Most records one call carries; 1 is one record per call, as a JSON object."""
    atomic: bool = False
    """A refused array stored nothing, so it may be split and its parts resent."""


@dataclass(frozen=True, slots=True)
class Served(Generic[T]):
    """What a turn came to: the records that leave the queue (answered or given up; the others
    keep their place), and whether the hold may go on to the next records."""

    done: list[Delivery[T]]
    goes_on: bool


@dataclass(slots=True, eq=False)
class _Ready(Generic[T]):
    """A record prepared for the ledger and the call."""

    delivery: Delivery[T]
    digest: str
    encoded: bytes


@dataclass(slots=True)
class _Verdicts(Generic[T]):
    """What the turn's calls came to, record by record."""

    judged: list[tuple[_Ready[T], Outcome]] = field(default_factory=list)
    """Delivered (SUCCESS) or refused for certain: written to the ledger, then answered."""
    unsent: list[_Ready[T]] = field(default_factory=list)
    """Not sent this time: the intent is withdrawn and the record stays queued."""
    in_doubt: list[tuple[_Ready[T], Outcome]] = field(default_factory=list)
    """Sent without a verdict: answered at once, the intent left in place."""
    may_run: bool = False
    """A call may still be running at the Connector: the settle period follows."""

    def seen(self) -> set[int]:
        return (
            {id(r) for r, _ in self.judged}
            | {id(r) for r, _ in self.in_doubt}
            | {id(r) for r in self.unsent}
        )


class Turn(Generic[T]):
    """Takes one group of records through a hold (see the module docstring)."""

    def __init__(
        self,
        post: FencedPost,
        breakers: Breakers,
        retries: Retries,
        *,
        call_margin_s: float,
        doubtful: Callable[[T], Awaitable[bool]],
        ledger_hit: Callable[[], None],
        lookups: Lookups | None = None,
    ) -> None:
        """``call_margin_s``: how much of the lease must remain for a call to start;
        ``doubtful``: whether a record the ledger does not know may have been sent before
        Redis lost its data; ``ledger_hit``: told of each record answered from the ledger;
        ``lookups``: whose records in doubt are looked up (:mod:`.lookups`)."""
        self._in_doubt = InDoubt(lookups or no_lookups(), retries.max_attempts)
        self._post = post
        self._breakers = breakers
        self._retries = retries
        self._call_margin_s = call_margin_s
        self._doubtful = doubtful
        self._ledger_hit = ledger_hit

    async def take(self, hold: Hold[T], group: Sequence[Delivery[T]], rule: ArrayRule) -> Served[T]:
        """One turn for ``group`` (queued records of one endpoint, in order)."""
        done: list[Delivery[T]] = []
        ready = _prepare(hold, group, done)
        if not ready:
            return Served(done, True)
        entries = await hold.begin([r.delivery for r in ready], [r.digest for r in ready])
        if entries is None:
            return Served(done, False)  # Redis trouble, lease lost: nothing was sent
        steps = [await self._new(hold, r, e) for r, e in zip(ready, entries, strict=True)]
        to_send = [r for r, step in zip(ready, steps, strict=True) if step is Next.SEND]
        done += [r.delivery for r, step in zip(ready, steps, strict=True) if step is Next.ANSWERED]
        if not to_send:
            return Served(done, True)
        hold.call_starting()
        verdicts: _Verdicts[T] = _Verdicts()
        try:
            await self._send(hold, to_send, rule, verdicts)
        except Exception as exc:  # a bug: any record not yet judged may or may not be in Sage
            log.exception("serial lane failed unexpectedly during a call")
            seen = verdicts.seen()
            verdicts.in_doubt += [
                (
                    r,
                    Outcome.internal_error(
                        exc, stage=Stage.UNKNOWN_OUTCOME, attempts=r.delivery.attempts
                    ),
                )
                for r in to_send
                if id(r) not in seen
            ]
            verdicts.may_run = True
        done += await self._conclude(hold, verdicts)
        return Served(done, not (verdicts.may_run or verdicts.unsent))

    async def _new(self, hold: Hold[T], ready: _Ready[T], entry: LedgerEntry) -> Next:
        """Whether the record is to be sent; if not, it is answered from what is known (and,
        if it is in doubt, from what Sage shows)."""
        delivery = ready.delivery
        known = answered_by_ledger(entry, delivery.event_id)
        if known is not None:
            if known.ok:
                self._ledger_hit()
            hold.books.answer(delivery, known)
        elif entry.state is EntryState.IN_DOUBT:  # begin orphaned the intent: its claim is ""
            doubt = _doubted(ready, unknown_outcome(IN_DOUBT_MESSAGE, entry.attempts))
            return await self._in_doubt.when_begun(hold, doubt, claim="")
        elif await self._doubtful(delivery.ticket):  # new to a ledger that lost data?
            doubt = _doubted(ready, unknown_outcome(LEDGER_LOST_MESSAGE, delivery.attempts))
            return await self._in_doubt.when_begun(hold, doubt, claim=delivery.claim)
        else:
            return Next.SEND
        return Next.ANSWERED

    async def _send(
        self, hold: Hold[T], records: list[_Ready[T]], rule: ArrayRule, verdicts: _Verdicts[T]
    ) -> None:
        """Call with the records, then with their parts while an atomic refusal splits them, in
        order; stops at the first call whose outcome is unknown or that cannot start."""
        parts: deque[list[_Ready[T]]] = deque([records])
        fresh = True  # the first call follows the begin that timed the intents
        while parts:
            part = parts.popleft()
            result = await self._call(hold, part, fresh=fresh)
            fresh = False
            if result is None:  # breaker open, lease short, a record withdrawn: not sent
                verdicts.unsent += [r for rest in (part, *parts) for r in rest]
                return
            if isinstance(result, Delivered):
                verdicts.judged += [(r, Outcome.success(r.delivery.attempts)) for r in part]
            elif isinstance(result, Rejected) and len(part) > 1 and not result.whole_call:
                if rule.atomic:
                    pieces = [part[s] for s in split_plan(len(part), result.record_index)]
                    parts.extendleft(reversed(pieces))
                    continue
                message = (
                    f"the Cloud Connector refused an array of {len(part)} records "
                    f"({result.message}) and may have stored some of them; check Sage "
                    "before replaying — not resent"
                )
                verdicts.in_doubt += [
                    (r, unknown_outcome(message, r.delivery.attempts)) for r in part
                ]
            elif isinstance(result, Unknown):
                reason = f"{result.reason}; the record may or may not be in Sage — not resent"
                verdicts.in_doubt += [
                    (r, unknown_outcome(reason, r.delivery.attempts)) for r in part
                ]
                verdicts.may_run = True
                verdicts.unsent += [r for rest in parts for r in rest]
                return
            else:  # refused for certain (one record, or the whole call), or retries ran out
                message = result.message if isinstance(result, Rejected) else result.reason
                verdicts.judged += [
                    (r, Outcome.failure(Stage.CONNECTOR, message, attempts=r.delivery.attempts))
                    for r in part
                ]

    async def _call(self, hold: Hold[T], part: list[_Ready[T]], *, fresh: bool) -> Concluded | None:
        """One call (a lone record as a JSON object), retrying only what was certainly not
        processed. Every attempt but the first after the begin (``fresh``) records its start
        in the ledger first (:meth:`Hold.note_attempt`). ``None`` if no call could start: the
        breaker opened, the lease no longer outlasts a call, a record of the part was
        withdrawn, the attempt could not be recorded, or the lane is stopping."""
        lease = hold.lease
        first = part[0].delivery
        if len(part) == 1:
            payload = part[0].encoded
        else:
            payload = b"[" + b",".join(r.encoded for r in part) + b"]"

        encoded = [r.encoded for r in part]
        if not await self._in_doubt.lookups.note(lease, first.endpoint, encoded):
            return None  # not noted (Redis trouble): the call must not start

        async def attempt() -> CallResult | None:
            nonlocal fresh
            if any(r.delivery.withdrawn for r in part) or not lease.usable(self._call_margin_s):
                return None
            if hold.books.stopping.is_set():  # shutting down: no new call, no retry
                return None
            if not fresh and not await hold.note_attempt([r.delivery for r in part]):
                return None
            fresh = False
            for r in part:
                r.delivery.attempts += 1
            return await self._post(first.tenant, first.endpoint, payload, fence=lease.fence)

        return await call_with_retries(
            attempt,
            self._breakers.for_tenant(first.tenant.key),
            self._retries,
            made=max(r.delivery.attempts for r in part),
        )

    async def _conclude(self, hold: Hold[T], verdicts: _Verdicts[T]) -> list[Delivery[T]]:
        """Answer the records in doubt at once; the known results wait for their ledger write;
        the intents of records not sent are withdrawn now (a record still ours stays queued);
        then the settle period if a call may still be running. Returns the records done."""
        books = hold.books
        done: list[Delivery[T]] = []
        to_look_up: list[Doubted[T]] = []
        for ready, outcome in verdicts.in_doubt:
            if self._in_doubt.looks_up(ready.delivery.endpoint):
                to_look_up.append(_doubted(ready, outcome))  # answered once Sage was asked
                continue
            books.answer(ready.delivery, outcome)
            done.append(ready.delivery)
        hold.keep([_pending(r, outcome) for r, outcome in verdicts.judged])
        done += [r.delivery for r, _ in verdicts.judged]
        if not verdicts.may_run:
            hold.calls_ended()
        if verdicts.unsent:
            withdrawn = any(r.delivery.withdrawn for r in verdicts.unsent)
            if not withdrawn and not hold.lease.usable(self._call_margin_s):
                log.warning(
                    "lease too short to start a call; re-acquiring the lock",
                    extra={"tenant": hold.lease.tenant, "needed_s": self._call_margin_s},
                )
            results = [_withdrawal(r) for r in verdicts.unsent]
            for ready, landed in zip(verdicts.unsent, await hold.write(results), strict=True):
                if ready.delivery.withdrawn or not landed:
                    books.drop([ready.delivery.ticket])
                    done.append(ready.delivery)
        if verdicts.may_run:
            await hold.write_pending()  # the known results are not kept waiting a settle period
            await hold.wait_settle_period()
        done += await self._in_doubt.after_call(hold, to_look_up)
        return done


def _doubted(ready: _Ready[T], doubt: Outcome) -> Doubted[T]:
    return Doubted(ready.delivery, ready.digest, doubt)


def _pending(ready: _Ready[T], outcome: Outcome) -> Pending[T]:
    delivery = ready.delivery
    result = ResultToWrite(
        delivery.tenant.key,
        delivery.event_id,
        ready.digest,
        delivery.attempts,
        outcome.ok,
        delivery.claim,
    )
    return Pending(result, delivery.ticket, outcome)


def _withdrawal(ready: _Ready[T]) -> ResultToWrite:
    d = ready.delivery
    return ResultToWrite(d.tenant.key, d.event_id, ready.digest, d.attempts, False, d.claim)


def unknown_outcome(message: str, attempts: int) -> Outcome:
    """An ``unknown_outcome`` answer: sent, no verdict, never resent."""
    return Outcome.failure(Stage.UNKNOWN_OUTCOME, message, attempts=attempts)


def cannot_prepare(exc: Exception) -> Outcome:
    """The answer for a record that cannot be encoded: nothing was sent."""
    return Outcome.failure(
        Stage.VALIDATION,
        f"the record cannot be encoded for the Cloud Connector ({type(exc).__name__}: {exc}); "
        "nothing was sent",
    )


def _prepare(
    hold: Hold[T], group: Sequence[Delivery[T]], done: list[Delivery[T]]
) -> list[_Ready[T]]:
    """The group's records ready to send (fingerprinted, encoded); a record that cannot be
    encoded is answered alone, nothing was sent."""
    ready: list[_Ready[T]] = []
    for delivery in group:
        try:
            digest = fingerprint(delivery.record)
            encoded = orjson.dumps(delivery.record)
        except Exception as exc:  # nothing was sent: the record's own problem, answered alone
            hold.books.answer(delivery, cannot_prepare(exc))
            done.append(delivery)
            continue
        ready.append(_Ready(delivery, digest, encoded))
    return ready
