"""Commits land in the order they were started, newest last: a commit that is slow to land
(aiokafka retries a retriable failure after a backoff, outside its own lock) must not land
after a newer one, or the group goes back to older offsets and the next owner replays records
that were answered."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import TopicPartition

from service.offsets.committer import Committer
from service.offsets.tracker import OffsetTracker

EVENTS = TopicPartition("events", 0)


class FirstCommitHeld:
    """A group consumer whose first commit lands only when the test lets it."""

    def __init__(self) -> None:
        self.landed: list[dict[TopicPartition, int]] = []
        self.first_started = asyncio.Event()
        self.first_may_land = asyncio.Event()
        self._calls = 0

    def assignment(self) -> set[TopicPartition]:
        return {EVENTS}

    async def commit(self, positions: Mapping[TopicPartition, int]) -> None:
        self._calls += 1
        if self._calls == 1:
            self.first_started.set()
            await self.first_may_land.wait()
        self.landed.append(dict(positions))


async def test_a_slow_commit_never_lands_after_a_newer_one() -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    consumer = FirstCommitHeld()
    committer = Committer(tracker, consumer)
    for offset in range(3):
        tracker.consumed(EVENTS, offset)
    tracker.answered(EVENTS, 0)

    background = asyncio.create_task(committer.commit_now())  # position 1, held
    await consumer.first_started.wait()
    tracker.answered(EVENTS, 1)
    tracker.answered(EVENTS, 2)
    final = asyncio.create_task(committer.commit_now())  # the drain's: position 3
    # The loop runs callbacks in the order they were scheduled: the final commit's first step
    # (scheduled by create_task) goes as far as it can before the held commit may land.
    asyncio.get_running_loop().call_soon(consumer.first_may_land.set)
    await asyncio.gather(background, final)

    assert consumer.landed[-1] == {EVENTS: 3}, consumer.landed
    assert tracker.committable() == {}  # nothing left that moved past what was committed
