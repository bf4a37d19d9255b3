"""What the ledger's memory of an ``event_id`` means for a redelivered record, in both lanes.

The ledger answers a redelivery by itself in two cases: the event was delivered with this data
(SUCCESS, no call), or the ``event_id`` was used with other data (refused, nothing sent). What an
unfinished earlier attempt means differs by lane — master data is looked up in Sage, a
transaction is reported ``unknown_outcome`` — so that case stays with each lane.
"""

from __future__ import annotations

from service.answers.outcomes import Outcome
from service.state.ledger import EntryState, LedgerEntry


def answered_by_ledger(entry: LedgerEntry, event_id: str) -> Outcome | None:
    """The outcome to report without a call, or ``None`` when the ledger cannot answer it."""
    match entry.state:
        case EntryState.DELIVERED:
            return Outcome.success(entry.attempts)
        case EntryState.CONFLICT:
            return Outcome.reused_event_id(event_id)
        case _:
            return None
