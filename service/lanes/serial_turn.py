"""One transactional record's turn under a tenant lock: what the ledger knows of it, then at
most one call (retrying only what was certainly not processed), then its result.

The ledger decides first: a record already delivered is answered SUCCESS without a call, one
left in doubt by an earlier attempt (or by Redis losing the ledger) is answered
``unknown_outcome`` and never resent, and an ``event_id`` reused with other data is refused.
Only a new record is sent. An unknown outcome is answered at once and followed by the settle
period; a known one waits for its ledger write (:mod:`service.lanes.serial_hold`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol

import orjson

from service.answers.outcomes import Outcome, Stage
from service.connector.results import CallResult, Delivered, Rejected, Unknown
from service.lanes import Delivery, T
from service.lanes.breaker import Breakers
from service.lanes.retry import Concluded, Retries, call_with_retries
from service.lanes.serial_hold import Bookkeeping, Hold, Unrecorded
from service.lanes.verdicts import answered_by_ledger
from service.state.ledger import EntryState, ResultToWrite, fingerprint
from service.state.locks import Lease
from service.tenants import Tenant

log = logging.getLogger("service.lanes.serial")  # one logger for the whole serial lane

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


class Turn(Generic[T]):
    """What serving records under a hold needs, whether one per call or an array per call."""

    def __init__(
        self,
        post: FencedPost,
        breakers: Breakers,
        book: Bookkeeping[T],
        retries: Retries,
        *,
        call_margin_s: float,
        doubtful: Callable[[T], Awaitable[bool]],
        ledger_hit: Callable[[], None],
    ) -> None:
        """``call_margin_s``: how much of the lease must remain for a call to start;
        ``doubtful``: whether a record the ledger does not know may have been sent before
        Redis lost its data; ``ledger_hit``: told of each record answered from the ledger."""
        self._post = post
        self._breakers = breakers
        self._book = book
        self._retries = retries
        self._call_margin_s = call_margin_s
        self._doubtful = doubtful
        self._ledger_hit = ledger_hit


class RecordTurn(Turn[T]):
    """Serves one record at a time under a hold (see the module docstring)."""

    async def take(self, hold: Hold[T], delivery: Delivery[T]) -> bool | None:
        """One record: ``True`` served, go on; ``False`` served, end the hold; ``None`` not
        served, end the hold (the record stays first in its queue)."""
        try:
            digest = fingerprint(delivery.record)
            payload = orjson.dumps(delivery.record)
        except Exception as exc:  # nothing was sent: the record's own problem, answered alone
            self._book.answer(delivery, cannot_prepare(exc))
            return True
        begun = await self._book.begin(hold, delivery, digest)
        if begun is None:
            return None
        known = answered_by_ledger(begun, delivery.event_id)
        if known is not None:
            if known.ok:
                self._ledger_hit()
            self._book.answer(delivery, known)
            return True
        if begun.state is EntryState.IN_DOUBT:
            self._book.answer(delivery, unknown_outcome(IN_DOUBT_MESSAGE, begun.attempts))
            return True
        if await self._doubtful(delivery.ticket):  # new to a ledger that lost data?
            self._book.answer(delivery, unknown_outcome(LEDGER_LOST_MESSAGE, delivery.attempts))
            return True
        hold.settled = False  # a call is about to be made
        try:
            result = await self._call(hold.lease, delivery, payload)
        except Exception as exc:  # a bug: the call may or may not have been made
            log.exception("serial lane failed unexpectedly during a call")
            self._book.answer(
                delivery,
                Outcome.internal_error(
                    exc, stage=Stage.UNKNOWN_OUTCOME, attempts=delivery.attempts
                ),
            )
            await self._book.settle_period(hold)
            return False
        return await self._conclude(hold, delivery, digest, result)

    async def _conclude(
        self, hold: Hold[T], delivery: Delivery[T], digest: str, result: Concluded | None
    ) -> bool | None:
        tenant, claim = delivery.tenant.key, delivery.claim
        withdraw = ResultToWrite(tenant, delivery.event_id, digest, delivery.attempts, False, claim)
        if result is None:  # not sent this time: breaker open, lease short, or withdrawn
            hold.settled = True
            if not hold.lease.usable(self._call_margin_s) and not delivery.withdrawn:
                log.warning(
                    "lease too short to start a call; re-acquiring the lock",
                    extra={"tenant": tenant, "needed_s": self._call_margin_s},
                )
            written = await self._book.settle(withdraw, hold)
            if delivery.withdrawn or not written:
                self._book.drop(delivery.ticket)
                return False
            return None
        if isinstance(result, Unknown):
            self._book.answer(
                delivery,
                unknown_outcome(
                    f"{result.reason}; the record may or may not be in Sage — not resent",
                    delivery.attempts,
                ),
            )
            await self._book.settle_period(hold)
            return False
        hold.settled = True
        if isinstance(result, Delivered):
            outcome = Outcome.success(delivery.attempts)
            delivered = ResultToWrite(
                tenant, delivery.event_id, digest, delivery.attempts, True, claim
            )
            hold.unrecorded = Unrecorded(delivered, delivery.ticket, outcome)
            return True
        if isinstance(result, Rejected):
            outcome = Outcome.failure(Stage.CONNECTOR, result.message, attempts=delivery.attempts)
        else:
            outcome = Outcome.failure(Stage.CONNECTOR, result.reason, attempts=delivery.attempts)
        hold.unrecorded = Unrecorded(withdraw, delivery.ticket, outcome)
        return True

    async def _call(self, lease: Lease, delivery: Delivery[T], payload: bytes) -> Concluded | None:
        """Call, retrying only what was certainly not processed (:mod:`service.lanes.retry`).
        ``None`` if no call could start: the breaker opened, the lease no longer outlasts a
        call, or the record was withdrawn."""

        async def attempt() -> CallResult | None:
            if delivery.withdrawn or not lease.usable(self._call_margin_s):
                return None
            delivery.attempts += 1
            return await self._post(delivery.tenant, delivery.endpoint, payload, fence=lease.fence)

        return await call_with_retries(
            attempt,
            self._breakers.for_tenant(delivery.tenant.key),
            self._retries,
            made=delivery.attempts,
        )


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
