"""Keeping this process's view of Redis's data in step with what Kafka says was read.

Redis can come back empty (see :mod:`service.state.epoch`). Two facts about the input topics
decide what that means, and only Kafka has them: whether the group had committed offsets
before (then an empty Redis is a loss, not a fresh deployment), and where each partition's log
ended when the loss was found (records below that may have been sent under the lost ledger:
the replay horizon). This watch asks Kafka those questions at the moments they matter:

- when partitions are assigned: where their logs end now (records before that are replays),
  then the epoch check, before any of their records is taken in;
- once a second (the service's periodic Redis check), so a loss is noticed even while no
  transactional record moves;
- when a script of ours declared a loss: the horizon is recorded at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence

from aiokafka import TopicPartition

from service.errors import StateUnavailable
from service.kafka.consumer import GroupConsumer
from service.offsets.log_ends import LogEnds
from service.state.epoch import Epoch, EpochMoved, ReplayDoubt

log = logging.getLogger(__name__)

ASK_KAFKA_WITHIN_S = 5.0
"""Longest a question to Kafka may hold up taking partitions on (end offsets, commits)."""


class EpochWatch:
    def __init__(
        self,
        epoch: Epoch,
        consumer: GroupConsumer,
        log_ends: LogEnds,
        input_topics: Sequence[str],
    ) -> None:
        self._epoch = epoch
        self._consumer = consumer
        self._log_ends = log_ends
        self._input_topics = tuple(input_topics)
        self._replays = ReplayDoubt()
        self._assigned: set[TopicPartition] = set()
        self._recording: asyncio.Task[None] | None = None
        self._establishing = asyncio.Lock()
        """Held while the epoch is first established: a second check meanwhile would take
        this process's own fresh trace for a commit made before it started (a loss)."""

    async def start(self) -> None:
        self._recording = asyncio.create_task(self._record_declared_losses())

    async def stop(self) -> None:
        if self._recording is not None:
            self._recording.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recording

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Note where each partition's log ends now (records before that are replays an
        earlier owner may have sent), then make sure a Redis that lost its data is known
        before any of them is taken in. Redis trouble is logged: the lanes wait for Redis."""
        if not partitions:
            return
        self._assigned = set(partitions)
        ends = await self._log_ends.of(list(partitions), ASK_KAFKA_WITHIN_S)
        self._replays.assigned({(tp.topic, tp.partition): end for tp, end in ends.items()})
        try:
            await self.check()
        except StateUnavailable as exc:  # the periodic Redis check tries again every second
            log.warning("Redis epoch not checked at assignment", extra={"error": repr(exc)})

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget ``partitions``: a first epoch not yet established leaves its trace only on
        partitions this replica still owns (Kafka refuses a commit on any other)."""
        gone = set(partitions)
        self._assigned -= gone
        self._replays.revoked((tp.topic, tp.partition) for tp in gone)

    async def check(self) -> None:
        """Compare Redis's epoch with the one we work under: first establish it (once
        partitions are assigned: their committed offsets witness a loss before we started);
        later, declare a loss if it is gone, adopt another replica's. Then refresh the replay
        horizon."""
        if not self._epoch.established:
            if not self._assigned:
                return
            async with self._establishing:  # an assignment and the periodic check may meet
                if not self._epoch.established:
                    await self._establish()
            if not self._epoch.established:
                return  # its partitions went meanwhile: the next assignment establishes it
        current = await self._epoch.current()
        if current is None:
            await self._epoch.declare_lost(await self._end_offsets_everywhere())
        elif current != self._epoch.known:
            self._epoch.adopt(EpochMoved(current, declared=False))
        self._replays.load(self._epoch.known, await self._epoch.horizon())

    def may_doubt(self) -> bool:
        """Whether any record can be doubtful now (false while Redis never lost data)."""
        return self._replays.may_doubt(self._epoch.known)

    async def doubtful(self, partition: TopicPartition, offset: int) -> bool:
        """May this record, unknown to the ledger, have been sent before Redis lost its data?"""
        topic, number = partition.topic, partition.partition
        if not self._replays.is_replay(topic, number, offset):
            return False
        if self._replays.stale(self._epoch.known):
            try:
                self._replays.load(self._epoch.known, await self._epoch.horizon())
            except StateUnavailable:
                return True  # cannot tell: do not resend blindly
        return self._replays.doubtful(topic, number, offset)

    async def _establish(self) -> None:
        """Work under the epoch Redis has; without one, only a deployment Kafka proves fresh
        starts a first epoch, after leaving its trace.

        A replica joining a running deployment must not leave one: committing where its
        partitions begin would take the group back to the start of their logs. aiokafka reads
        the committed offsets while this runs, so the replica itself could replay what was
        answered, and a partition then left idle would be replayed whole by its next owner."""
        if await self._epoch.current() is not None:
            witnessed = True  # an epoch gone by the time it is read again was lost
        elif await self._loss_witnessed():
            witnessed = True
        elif not self._assigned:
            return  # all revoked meanwhile: the next assignment leaves the trace on its own
        else:
            witnessed = not await self._leave_a_trace()
        await self._epoch.establish(witnessed, self._end_offsets_everywhere)

    async def _loss_witnessed(self) -> bool:
        """Redis has no epoch and we know none: is this a fresh deployment, or did Redis lose
        its data? Only Kafka can prove it fresh: the group committed no offset on any
        partition of any input topic (ours or another replica's: a replica starting beside
        others may be given only partitions that never committed). Anything less is no proof,
        and is handled as a declared loss, with its quarantine: a call made under the lost data
        may still be running at the Connector. So is a question Kafka leaves unanswered."""
        partitions = self._input_partitions() or self._assigned
        try:
            return await self._consumer.any_committed(partitions, ASK_KAFKA_WITHIN_S)
        except Exception as exc:
            log.warning(
                "committed offsets unknown at assignment: Redis is not known to be fresh, so "
                "its missing epoch is handled as a loss of data",
                extra={"error": repr(exc)},
            )
            return True

    async def _leave_a_trace(self) -> bool:
        """Before a fresh deployment's first epoch: commit where our partitions begin, so that
        from now on the group has commits, and a replica that later finds Redis without an
        epoch cannot take it for a fresh one, even if no record was ever answered (a first
        call still running when Redis lost its data). ``False`` if Kafka did not take it."""
        try:
            await self._consumer.commit_beginnings(self._assigned, ASK_KAFKA_WITHIN_S)
        except Exception as exc:
            log.warning(
                "could not commit the first offsets of a fresh deployment: its epoch is "
                "established as after a loss of data",
                extra={"error": repr(exc)},
            )
            return False
        return True

    def _input_partitions(self) -> list[TopicPartition]:
        return [tp for topic in self._input_topics for tp in self._consumer.partitions_of(topic)]

    async def _end_offsets_everywhere(self) -> dict[tuple[str, int], int]:
        """The end offset of every partition of every input topic (ours or not): the replay
        horizon of a loss of Redis data."""
        partitions = self._input_partitions()
        if not partitions:
            return {}
        ends = await self._log_ends.of(partitions, ASK_KAFKA_WITHIN_S)
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}

    async def _record_declared_losses(self) -> None:
        """A script of ours found Redis emptied: record the replay horizon now."""
        while True:
            await self._epoch.declared.wait()
            self._epoch.declared.clear()
            try:
                await self._epoch.raise_horizon(await self._end_offsets_everywhere())
                self._replays.load(self._epoch.known, await self._epoch.horizon())
            except Exception as exc:  # the periodic Redis check reloads it every second
                log.warning("replay horizon not recorded yet", extra={"error": repr(exc)})
