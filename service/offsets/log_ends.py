"""Where each partition's log ends, read from the log itself.

The replay horizon and the replay check (:mod:`service.state.epoch`) need each partition's end
offset: records below it may already have been read, and sent, by an earlier owner. A ListOffsets
answer is not enough everywhere: Tansu (the tests' broker) reports the base offset of the last
record batch plus one, so a batch of five records at offsets 0-4 "ends" at 1. The high watermark in
a fetch response is right on Tansu and on Kafka alike, so the end is read by fetching from one
before the reported end and taking that high watermark. On Kafka this can only come out later than a
ListOffsets answer (records arriving meanwhile), which errs on the side of doubt.

A reader of its own does the fetching (assigned by hand, no group), so the service's consumer
never moves. It is started on first use and asked at most one question at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

UNKNOWN_END = 2**63 - 1
"""Stands for an end that could not be learnt in time: every record counts as below it."""


class LogEnds:
    def __init__(self, client_options: dict[str, Any]) -> None:
        self._options = client_options
        self._reader: AIOKafkaConsumer | None = None
        self._one_at_a_time = asyncio.Lock()

    async def of(
        self, partitions: Sequence[TopicPartition], within_s: float
    ) -> dict[TopicPartition, int]:
        """The end offset of each partition; :data:`UNKNOWN_END` for those not learnt within
        ``within_s``."""
        async with self._one_at_a_time:
            try:
                return await asyncio.wait_for(self._read(list(partitions)), within_s)
            except Exception as exc:  # Kafka slow or away: assume the worst for everyone
                log.warning("partition ends unknown", extra={"error": repr(exc)})
                return dict.fromkeys(partitions, UNKNOWN_END)

    async def _read(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        reader = await self._started()
        reported: dict[TopicPartition, int] = await reader.end_offsets(partitions)
        ends = {tp: 0 for tp, end in reported.items() if end <= 0}
        waiting = [tp for tp, end in reported.items() if end > 0]
        reader.assign(waiting)
        try:
            for tp in waiting:
                reader.seek(tp, reported[tp] - 1)
            while waiting:
                await reader.getmany(*waiting, timeout_ms=100, max_records=1)
                for tp in list(waiting):
                    high = reader.highwater(tp)
                    if high is not None:
                        ends[tp] = max(high, reported[tp])
                        waiting.remove(tp)
        finally:
            reader.assign([])
        return ends

    async def _started(self) -> AIOKafkaConsumer:
        if self._reader is None:
            reader = AIOKafkaConsumer(
                **self._options, enable_auto_commit=False, client_id="sagebridge-log-ends"
            )
            await reader.start()
            self._reader = reader
        return self._reader

    async def aclose(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
