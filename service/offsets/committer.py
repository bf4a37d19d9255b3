"""Committing input offsets: only what every earlier record of the partition has been answered
for, one commit at a time, coalescing wake-ups (a commit per answered batch would be wasteful).

One at a time matters for more than economy. aiokafka retries a commit that failed with a
retriable error after a backoff, outside its own lock, so a commit started earlier (older
positions) could land after one started later, taking the group back to older offsets: the
next owner replays what was answered. The drain's final commit runs beside the background
one, so it could meet exactly that. So a commit reads its positions only once the previous
commit has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from aiokafka import TopicPartition

from service.offsets.tracker import OffsetTracker

log = logging.getLogger(__name__)


class Consumer(Protocol):
    """What committing needs of the group's consumer (:class:`service.kafka.consumer.GroupConsumer`
    is the one the service wires in)."""

    def assignment(self) -> set[TopicPartition]: ...

    async def commit(self, positions: Mapping[TopicPartition, int]) -> None: ...


class Committer:
    def __init__(self, tracker: OffsetTracker[TopicPartition], consumer: Consumer) -> None:
        self.tracker = tracker
        self._consumer = consumer
        self._wanted = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()

    def wanted(self) -> None:
        """Records were answered: commit soon (several calls before the next commit merge)."""
        self._wanted.set()

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.commit_now()

    async def commit_now(self, only: set[TopicPartition] | None = None) -> None:
        """Commit every assigned partition (or those in ``only``) whose position moved, once
        any commit still under way has ended (see the module docstring)."""
        async with self._one_at_a_time:
            await self._commit(only)

    async def _commit(self, only: set[TopicPartition] | None) -> None:
        assigned = self._consumer.assignment()
        positions = {
            tp: position
            for tp, position in self.tracker.committable().items()
            if tp in assigned and (only is None or tp in only)
        }
        if not positions:
            return
        try:
            await self._consumer.commit(positions)
        except Exception as exc:  # rebalance in progress, coordinator moved: replay is safe
            log.warning(
                "offset commit failed; the records will be replayed",
                extra={"error": type(exc).__name__},
            )
            return
        self.tracker.mark_committed(positions)
