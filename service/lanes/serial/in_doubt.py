"""What a turn does with a record in doubt when its route names a look-up (see
:mod:`~service.lanes.serial.lookups` for the rule and why a look-up is decisive only once no call
of the company can still be running).

Two moments: a record the ledger already holds in doubt when it is begun (a redelivery after a
crash, a replay, or a record new to a ledger that lost its data), under a quiet hold; and the
records a call of this turn left in doubt, once that call has ended at the Connector. Either way:
found, its SUCCESS waits for the ledger's ``delivered``; absent and the route resends, its
intent goes and it is sent again; otherwise it is ``unknown_outcome``, saying when Sage was
checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic

from service.answers.outcomes import Outcome
from service.connector.lookup import Sighting
from service.lanes import Delivery, T
from service.lanes.serial.hold import Hold, Pending
from service.lanes.serial.lookups import Lookups, found_in_sage, still_in_doubt
from service.state.ledger import ResultToWrite


class Next(Enum):
    """What becomes of a record once the ledger has been asked."""

    SEND = "send"
    ANSWERED = "answered"
    """Answered (or its answer waits for a ledger write): it leaves the queue."""
    AGAIN = "again"
    """Its intent withdrawn after a look-up found it absent: it stays queued, to be sent."""


@dataclass(frozen=True, slots=True)
class Doubted(Generic[T]):
    """A record in doubt: its delivery, its fingerprint, and the answer it gets if Sage does
    not settle it."""

    delivery: Delivery[T]
    digest: str
    doubt: Outcome

    def result(self, *, delivered: bool, claim: str) -> ResultToWrite:
        d = self.delivery
        return ResultToWrite(d.tenant.key, d.event_id, self.digest, d.attempts, delivered, claim)


class InDoubt:
    """Settles records in doubt by looking them up in Sage, where their route says so."""

    def __init__(self, lookups: Lookups, max_attempts: int) -> None:
        """``max_attempts``: a record absent from Sage goes again only while it has calls left,
        so a Connector that loses every answer cannot keep one record going round for ever."""
        self.lookups = lookups
        self._max_attempts = max_attempts

    def looks_up(self, endpoint: str) -> bool:
        return self.lookups.rule(endpoint) is not None

    async def when_begun(self, hold: Hold[T], record: Doubted[T], *, claim: str) -> Next:
        """A record the ledger holds in doubt as it is begun, its intent under ``claim`` (ours,
        just written after a loss of Redis data, or ``""``: an earlier attempt's, orphaned by
        this begin). Only under a quiet hold can no call of the company still be running."""
        delivery = record.delivery
        if not self.looks_up(delivery.endpoint) or not hold.quiet:
            hold.books.answer(delivery, record.doubt)
            return Next.ANSWERED
        seen = await self.lookups.sight(delivery.tenant, delivery.endpoint, delivery.record)
        if seen is Sighting.FOUND:
            hold.keep([_found(record, claim)])
            return Next.ANSWERED
        if self._resends(delivery, seen):
            if claim:
                return Next.SEND  # the intent is this begin's own
            await hold.write([record.result(delivered=False, claim=claim)])  # unclaimed: lands
            return Next.AGAIN
        hold.books.answer(delivery, _unsettled(record, seen))
        return Next.ANSWERED

    async def after_call(self, hold: Hold[T], records: Sequence[Doubted[T]]) -> list[Delivery[T]]:
        """Records a call of this turn left in doubt, once that call has ended at the Connector
        (after the settle period, or at once when it answered). Returns those answered; one
        absent from Sage whose route resends stays queued, its intent withdrawn."""
        done: list[Delivery[T]] = []
        for record in records:
            delivery = record.delivery
            seen = await self.lookups.sight(delivery.tenant, delivery.endpoint, delivery.record)
            if seen is Sighting.FOUND:
                hold.keep([_found(record, delivery.claim)])
            elif self._resends(delivery, seen):
                withdrawal = record.result(delivered=False, claim=delivery.claim)
                if (await hold.write([withdrawal]))[0]:
                    continue
                hold.books.answer(delivery, _unsettled(record, seen))
            else:
                hold.books.answer(delivery, _unsettled(record, seen))
            done.append(delivery)
        return done

    def _resends(self, delivery: Delivery[T], seen: Sighting) -> bool:
        rule = self.lookups.rule(delivery.endpoint)
        return (
            seen is Sighting.ABSENT
            and rule is not None
            and rule.resend_if_absent
            and delivery.attempts < self._max_attempts
        )


def _found(record: Doubted[T], claim: str) -> Pending[T]:
    outcome = found_in_sage(record.doubt.attempts)
    return Pending(record.result(delivered=True, claim=claim), record.delivery.ticket, outcome)


def _unsettled(record: Doubted[T], seen: Sighting) -> Outcome:
    return still_in_doubt(record.doubt.message or "", seen, record.doubt.attempts)
