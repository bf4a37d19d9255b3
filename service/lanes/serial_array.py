"""One array call's turn under a tenant lock: a serial route with ``batch_max`` > 1 sends up to
that many queued records in one call, as one JSON array — still one call at a time per tenant.

Everything that keeps one record safe holds for every record of the array:

* each record's intent is written before the call, all in one guarded step under the lease
  (:meth:`~service.state.ledger.Ledger.begin_guarded_many`), and the lease must outlast the
  call's timeout when the call starts;
* the ledger answers first: a record already delivered, in doubt, or reused with other data is
  answered from it and left out of the array;
* only what proves nothing was processed is retried (the whole array, :mod:`service.lanes.retry`);
* a timeout, a dropped connection, 500/502/504 or an answer without an envelope puts every
  record of the array in doubt (``unknown_outcome``, never resent), followed by the settle
  period, because the Connector may still be storing them.

A refused array is judged by the route's ``atomic_arrays``. Atomic: nothing was stored, so the
array is split as the batch lane splits (:func:`~service.lanes.isolate.split_plan`) and each part
is sent and judged by its own answer. Not atomic: the Connector may have stored the records
before the bad one, and which ones cannot be known, so every record is ``unknown_outcome``. A
call carrying one record sends it as a JSON object, as a ``batch_max`` of 1 does, and its
refusal is certain either way.

The array's results are written in one step as soon as its call ends, before their answers, so a
crash leaves at most the array in flight in doubt.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic

import orjson

from service.answers.outcomes import Outcome, Stage
from service.connector.results import CallResult, Delivered, Rejected, Unknown
from service.lanes import Delivery, T
from service.lanes.isolate import split_plan
from service.lanes.retry import Concluded, call_with_retries
from service.lanes.serial_hold import Hold, Unrecorded
from service.lanes.serial_turn import (
    IN_DOUBT_MESSAGE,
    LEDGER_LOST_MESSAGE,
    Turn,
    cannot_prepare,
    unknown_outcome,
)
from service.lanes.verdicts import answered_by_ledger
from service.state.ledger import EntryState, ResultToWrite, fingerprint

log = logging.getLogger("service.lanes.serial")  # one logger for the whole serial lane


@dataclass(frozen=True, slots=True)
class ArrayRule:
    """A serial route's arrays (``contracts/routes.yaml``)."""

    batch_max: int = 1
    """Most records one call carries; 1 is one record per call, as a JSON object."""
    atomic: bool = False
    """A refused array stored nothing, so it may be split and its parts resent."""


@dataclass(slots=True, eq=False)
class _Ready(Generic[T]):
    """A record begun in the ledger and ready to go into an array."""

    delivery: Delivery[T]
    digest: str
    encoded: bytes


@dataclass(slots=True)
class _Verdicts(Generic[T]):
    """What one array's calls came to, record by record."""

    written: list[tuple[_Ready[T], Outcome | None]] = field(default_factory=list)
    """Results for the ledger: delivered (SUCCESS), refused or never sent (intent withdrawn);
    ``None``: not sent this time, the record stays queued."""
    in_doubt: list[tuple[_Ready[T], Outcome]] = field(default_factory=list)
    """Sent without a verdict: answered at once, the intent left in place."""
    settle: bool = False
    """A call may still be running at the Connector: the settle period follows."""


class ArrayTurn(Turn[T]):
    """Serves up to ``batch_max`` records in one call under a hold (see the module docstring)."""

    async def take(
        self, hold: Hold[T], group: Sequence[Delivery[T]], rule: ArrayRule
    ) -> tuple[list[Delivery[T]], bool]:
        """One array call for ``group`` (queued records of one endpoint, in order): the records
        served (answered or given up, to leave the queue), and whether the hold goes on."""
        served: list[Delivery[T]] = []
        prepared: list[_Ready[T]] = []
        for delivery in group:
            try:
                prepared.append(
                    _Ready(delivery, fingerprint(delivery.record), orjson.dumps(delivery.record))
                )
            except Exception as exc:  # nothing was sent: the record's own problem
                self._book.answer(delivery, cannot_prepare(exc))
                served.append(delivery)
        if not prepared:
            return served, True
        entries = await self._book.begin_array(
            hold, [r.delivery for r in prepared], [r.digest for r in prepared]
        )
        if entries is None:
            return served, False  # Redis trouble, lease lost: nothing was sent
        to_send: list[_Ready[T]] = []
        for ready, entry in zip(prepared, entries, strict=True):
            delivery = ready.delivery
            known = answered_by_ledger(entry, delivery.event_id)
            if known is not None:
                if known.ok:
                    self._ledger_hit()
                self._book.answer(delivery, known)
            elif entry.state is EntryState.IN_DOUBT:
                self._book.answer(delivery, unknown_outcome(IN_DOUBT_MESSAGE, entry.attempts))
            elif await self._doubtful(delivery.ticket):  # new to a ledger that lost data?
                self._book.answer(delivery, unknown_outcome(LEDGER_LOST_MESSAGE, delivery.attempts))
            else:
                to_send.append(ready)
                continue
            served.append(delivery)
        if not to_send:
            return served, True
        hold.settled = False  # a call is about to be made
        verdicts: _Verdicts[T] = _Verdicts()
        try:
            await self._send(hold, to_send, rule, verdicts)
        except Exception as exc:  # a bug: any record not yet judged may or may not be in Sage
            log.exception("serial lane failed unexpectedly during an array call")
            judged = {id(r) for r, _ in verdicts.written} | {id(r) for r, _ in verdicts.in_doubt}
            for ready in to_send:
                if id(ready) not in judged:
                    outcome = Outcome.internal_error(
                        exc, stage=Stage.UNKNOWN_OUTCOME, attempts=ready.delivery.attempts
                    )
                    verdicts.in_doubt.append((ready, outcome))
            verdicts.settle = True
        return served + await self._conclude(hold, verdicts), not (
            verdicts.settle or any(outcome is None for _, outcome in verdicts.written)
        )

    async def _send(
        self, hold: Hold[T], records: list[_Ready[T]], rule: ArrayRule, verdicts: _Verdicts[T]
    ) -> None:
        """Call with the array, then with its parts while an atomic refusal splits it, in
        order; stops at the first call whose outcome is unknown or that cannot start."""
        parts: deque[list[_Ready[T]]] = deque([records])
        while parts:
            part = parts.popleft()
            result = await self._call(hold, part)
            if result is None:  # breaker open, lease short, a record withdrawn: not sent
                for rest in (part, *parts):
                    verdicts.written.extend((ready, None) for ready in rest)
                return
            if isinstance(result, Delivered):
                verdicts.written.extend(
                    (ready, Outcome.success(ready.delivery.attempts)) for ready in part
                )
            elif isinstance(result, Rejected) and len(part) > 1 and not result.whole_call:
                if not rule.atomic:
                    message = (
                        f"the Cloud Connector refused an array of {len(part)} records "
                        f"({result.message}) and may have stored some of them; check Sage "
                        "before replaying — not resent"
                    )
                    verdicts.in_doubt.extend(
                        (ready, unknown_outcome(message, ready.delivery.attempts)) for ready in part
                    )
                    continue
                pieces = [part[s] for s in split_plan(len(part), result.record_index)]
                parts.extendleft(reversed(pieces))
            elif isinstance(result, Unknown):
                reason = f"{result.reason}; the record may or may not be in Sage — not resent"
                verdicts.in_doubt.extend(
                    (ready, unknown_outcome(reason, ready.delivery.attempts)) for ready in part
                )
                verdicts.settle = True
                for rest in parts:
                    verdicts.written.extend((ready, None) for ready in rest)
                return
            else:  # refused for certain (one record, or the whole call), or retries ran out
                message = result.message if isinstance(result, Rejected) else result.reason
                verdicts.written.extend(
                    (
                        ready,
                        Outcome.failure(Stage.CONNECTOR, message, attempts=ready.delivery.attempts),
                    )
                    for ready in part
                )

    async def _conclude(self, hold: Hold[T], verdicts: _Verdicts[T]) -> list[Delivery[T]]:
        """Answer the records in doubt at once; write every other result in one step, then
        answer those; the settle period if a call may still be running. Returns the records
        served (a record not sent and still ours stays queued)."""
        served: list[Delivery[T]] = []
        for ready, outcome in verdicts.in_doubt:
            self._book.answer(ready.delivery, outcome)
            served.append(ready.delivery)
        if not verdicts.settle:
            hold.settled = True  # every call of this array has ended at the Connector
        if verdicts.written:
            results = [
                ResultToWrite(
                    ready.delivery.tenant.key,
                    ready.delivery.event_id,
                    ready.digest,
                    ready.delivery.attempts,
                    judged is not None and judged.ok,
                    ready.delivery.claim,
                )
                for ready, judged in verdicts.written
            ]
            written = await self._book.settle_many(results, hold)
            for (ready, judged), result, landed in zip(
                verdicts.written, results, written, strict=True
            ):
                delivery = ready.delivery
                if judged is not None:
                    self._book.deliver_after_write(
                        Unrecorded(result, delivery.ticket, judged), landed
                    )
                    served.append(delivery)
                elif delivery.withdrawn or not landed:
                    self._book.drop(delivery.ticket)
                    served.append(delivery)
        if verdicts.settle:
            await self._book.settle_period(hold)
        return served

    async def _call(self, hold: Hold[T], part: list[_Ready[T]]) -> Concluded | None:
        """One array call (a lone record as a JSON object), retrying only what was certainly
        not processed. ``None`` if no call could start: the breaker opened, the lease no longer
        outlasts a call, or a record of the part was withdrawn."""
        lease = hold.lease
        first = part[0].delivery
        if len(part) == 1:
            payload = part[0].encoded
        else:
            payload = b"[" + b",".join(ready.encoded for ready in part) + b"]"

        async def attempt() -> CallResult | None:
            if any(r.delivery.withdrawn for r in part) or not lease.usable(self._call_margin_s):
                return None
            for ready in part:
                ready.delivery.attempts += 1
            return await self._post(first.tenant, first.endpoint, payload, fence=lease.fence)

        return await call_with_retries(
            attempt,
            self._breakers.for_tenant(first.tenant.key),
            self._retries,
            made=max(ready.delivery.attempts for ready in part),
        )


def front_group(queue: Iterable[Delivery[T]], batch_max: int) -> list[Delivery[T]]:
    """The records one array call carries: those at the front of a tenant's queue that share
    the first one's endpoint, up to ``batch_max``, in order (a withdrawn one ends the group:
    it is dropped when it reaches the front)."""
    group: list[Delivery[T]] = []
    for delivery in queue:
        if len(group) == batch_max or delivery.withdrawn:
            break
        if group and delivery.endpoint != group[0].endpoint:
            break
        group.append(delivery)
    return group


def leave_queue(
    queue: deque[Delivery[T]], group: Sequence[Delivery[T]], served: Sequence[Delivery[T]]
) -> None:
    """Take ``group`` (the front of ``queue``) off the queue, but for the records not served,
    which keep their place at the front, in order."""
    done = set(map(id, served))
    kept = [delivery for delivery in group if id(delivery) not in done]
    for _ in group:
        queue.popleft()
    queue.extendleft(reversed(kept))
