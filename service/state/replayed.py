"""Which dead letters ``sagebridge dlt replay`` has already sent back, so none is sent twice.

A consumer group's committed offset can only say "everything before here": with filters
(replay one stage, one tenant, some event ids) the letters skipped would be marked done too.
So each replayed letter is recorded by where it sits: one Redis set per dead-letter partition,
``<prefix>:dlt-replayed:<topic>:<partition>``, holding the offsets replayed.

A letter is *claimed* before it is sent (``SADD`` answers whether this run added it, so two
runs at once cannot both send it) and *released* if its send fails, so it can be tried again. A
replay that dies between the claim and the send leaves the letter claimed and unsent: "at most
once" is the promise, and ``dlt list`` still shows the letter. The sets do not expire: they
hold small integers, one per replayed letter.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from service.state.keys import key
from service.state.unavailable import speaks_state


class ReplayedLetters:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, topic: str, partition: int) -> str:
        return key(self._prefix, "dlt-replayed", topic, str(partition))

    @speaks_state
    async def replayed(self, topic: str, partition: int, offsets: Sequence[int]) -> list[bool]:
        """For each offset, whether its letter was replayed already (reads only)."""
        if not offsets:
            return []
        found = await self._redis.smismember(self._key(topic, partition), list(offsets))
        return [bool(f) for f in found]

    @speaks_state
    async def claim(self, topic: str, partition: int, offsets: Sequence[int]) -> list[bool]:
        """Record the offsets as replayed; for each, whether this call was the one to add it
        (``False``: replayed before, or by a run going on at the same time)."""
        if not offsets:
            return []
        name = self._key(topic, partition)
        async with self._redis.pipeline(transaction=True) as pipe:
            for offset in offsets:
                pipe.sadd(name, offset)
            added = await pipe.execute()
        return [bool(a) for a in added]

    @speaks_state
    async def release(self, topic: str, partition: int, offsets: Sequence[int]) -> None:
        """Forget claims whose letters could not be sent."""
        if offsets:
            await self._redis.srem(self._key(topic, partition), *offsets)
