"""The note of what a tenant's latest call carried, read back only as the running call's when
its fence is the calling marker's (real Redis)."""

from __future__ import annotations

from redis.asyncio import Redis

from service.state.carried import Carried, CarriedCalls

TENANT = ("C1", "ACME")


async def test_a_note_names_the_running_call_only_under_the_markers_fence(
    redis: Redis, redis_prefix: str
) -> None:
    notes = CarriedCalls(redis, redis_prefix)
    marker = f"{redis_prefix}:calling:C1:ACME"
    await notes.note(TENANT, 7, "/accountsReceivable", [b'{"InvoiceNo":"A"}', b'{"InvoiceNo":"B"}'])
    assert await notes.of_running_call(TENANT) is None, "no calling marker: nothing may run"
    await redis.set(marker, "7")
    expected = Carried("/accountsReceivable", ({"InvoiceNo": "A"}, {"InvoiceNo": "B"}))
    assert await notes.of_running_call(TENANT) == expected
    await redis.set(marker, "8")  # a later holder (or an older release) set the marker
    assert await notes.of_running_call(TENANT) is None
