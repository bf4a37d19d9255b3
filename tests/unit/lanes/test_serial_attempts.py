"""Each call after the first of a record's intent is recorded in the ledger before it starts
(``ledger resolve --not-delivered`` is timed from the last), and no call starts if it cannot be."""

from __future__ import annotations

from service.connector.results import CallResult, Delivered, Retryable, Unknown
from service.tenants import Tenant
from tests.unit.lanes.test_serial_turn import TENANT, Stage_, invoice


def tries(stage: Stage_, event_id: str) -> int:
    return stage.store.entries[stage.ledger.key(TENANT.key, event_id)].tries


async def test_a_retry_is_recorded_in_the_entry_before_it_is_made() -> None:
    stage = Stage_([Retryable("429 too many requests"), Unknown("read timeout")])
    hold = await stage.hold()
    await stage.take(hold, [invoice(1)])
    assert len(stage.calls) == 2
    assert tries(stage, "inv-1") == 1, "the first call is timed by the intent, the retry noted"


async def test_a_record_sent_once_notes_no_later_attempt() -> None:
    stage = Stage_([Unknown("read timeout")])
    hold = await stage.hold()
    await stage.take(hold, [invoice(1)])
    assert tries(stage, "inv-1") == 0


class LosesTheLockAfterEachCall(Stage_):
    async def _post(
        self, tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        answer = await super()._post(tenant, endpoint, payload, fence=fence)
        self.locks.take_over(TENANT.key)
        return answer


async def test_no_retry_starts_when_its_attempt_cannot_be_recorded() -> None:
    """The lock went to another replica during the throttled call: the retry is not made, the
    record is not answered, its intent is withdrawn, and it stays queued."""
    stage = LosesTheLockAfterEachCall([Retryable("429 too many requests"), Delivered({})])
    hold = await stage.hold()
    served = await stage.take(hold, [invoice(1)])
    assert len(stage.calls) == 1, "the retry was not made"
    assert stage.answered == [] and served.done == []
    assert stage.stored("inv-1") is None
