"""Tenant locks in Redis: at most one transactional call per Sage company, across all replicas.

Sage generates transaction record keys in a way that breaks under concurrent calls, so the
serial lane holds this lock around every call. The lock is the classic single-instance Redis
lock, with the parts that make it safe to operate:

* acquired with ``SET NX PX`` and a random owner token, so only the owner can release or renew
  it (compare-and-delete / compare-and-expire in Lua, atomic on the server);
* an expiry, so a replica that dies mid-call frees the lane after ``ttl`` without anyone's help,
  and a renewal loop that keeps a live holder's lock from expiring during a slow call;
* a fencing number per acquisition, strictly increasing per tenant — seeded from the Redis
  clock (microseconds) the first time, so it keeps increasing even if a Redis without
  persistence restarts — sent to the Cloud Connector so a stale holder can be recognised;
* release publishes on a channel; waiters block on that notification (with the remaining TTL
  as their timeout, for holders that die without releasing) instead of polling.

Redis errors propagate as :class:`redis.RedisError`: the serial lane treats them as "wait",
never as permission to call without the lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

log = logging.getLogger(__name__)

# KEYS: lock, fence. ARGV: owner token, ttl ms. Returns the fencing number, or nil if held.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    local now = redis.call('TIME')
    redis.call('SET', KEYS[2], now[1] .. string.rep('0', 6 - #now[2]) .. now[2])
  end
  return redis.call('INCR', KEYS[2])
end
return false
"""

# KEYS: lock. ARGV: owner token, channel. Deletes and notifies only if still the owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '1')
  return 1
end
return 0
"""

# KEYS: lock. ARGV: owner token, ttl ms.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


_HOST = socket.gethostname()


def process_token() -> str:
    """``host:pid:random``: unique, and tells an operator reading Redis which process wrote it."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(8)}"


@dataclass(slots=True)
class Held:
    """A held lock: ``fence`` goes in the request header; ``lost`` is set if renewal found the
    lock gone. ``valid_until`` (``time.monotonic()``) is when the lease runs out unless renewed,
    counted from the moment the acquire or last renewal was *sent*, so it never overestimates.
    """

    name: str
    owner: str
    fence: int
    valid_until: float
    lost: bool = False

    def usable(self, margin_s: float = 0.0) -> bool:
        """Still ours for at least ``margin_s`` more: safe to start a call under it. A holder
        whose Redis stalled past the TTL finds out here, before its next call — not from the
        Connector refusing a stale fencing token."""
        return not self.lost and time.monotonic() + margin_s < self.valid_until


class TenantLocks:
    """Lock factory for one deployment (all keys under ``prefix``)."""

    def __init__(self, redis: Redis, prefix: str, ttl_s: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._released: dict[str, asyncio.Event] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listener_guard = asyncio.Lock()
        self.on_wait: Callable[[str], None] | None = None
        """Called each time an acquirer blocks waiting for a release (metrics, tests)."""

    def _keys(self, name: str) -> tuple[str, str, str]:
        base = f"{self._prefix}:lock:{name}"
        return base, f"{self._prefix}:fence:{name}", f"{self._prefix}:released:{name}"

    async def try_acquire(self, name: str) -> Held | None:
        """One attempt; ``None`` if someone else holds it."""
        lock_key, fence_key, _ = self._keys(name)
        owner = process_token()  # who holds it, for operators
        sent = time.monotonic()
        fence = await self._acquire(keys=[lock_key, fence_key], args=[owner, self._ttl_ms])
        return Held(name, owner, int(fence), sent + self._ttl_ms / 1000) if fence else None

    async def acquire(self, name: str, wait_s: float) -> Held | None:
        """Wait up to ``wait_s`` for the lock; ``None`` if it stayed taken that long."""
        await self.start_listening()
        released = self._released.setdefault(name, asyncio.Event())
        deadline = time.monotonic() + wait_s
        while True:
            released.clear()  # cleared before trying, so a release after the try is not missed
            held = await self.try_acquire(name)
            if held is not None:
                return held
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ttl_ms = await self._redis.pttl(self._keys(name)[0])
            # The holder may die without releasing: wake up when its lock would expire anyway.
            nap = remaining if ttl_ms < 0 else min(remaining, ttl_ms / 1000 + 0.001)
            if self.on_wait is not None:
                self.on_wait(name)
            with suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), nap)

    async def release(self, held: Held) -> bool:
        """Release if still ours; ``False`` means it had expired (or been taken) meanwhile."""
        lock_key, _, channel = self._keys(held.name)
        return bool(await self._release(keys=[lock_key], args=[held.owner, channel]))

    async def renew(self, held: Held) -> bool:
        sent = time.monotonic()
        renewed = bool(
            await self._renew(keys=[self._keys(held.name)[0]], args=[held.owner, self._ttl_ms])
        )
        if renewed:
            held.valid_until = sent + self._ttl_ms / 1000
        return renewed

    @asynccontextmanager
    async def kept_alive(self, held: Held) -> AsyncIterator[Held]:
        """Renew ``held`` every third of its TTL while the body runs (a slow call keeps it)."""
        task = asyncio.create_task(self._renew_loop(held))
        try:
            yield held
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _renew_loop(self, held: Held) -> None:
        interval = self._ttl_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self.renew(held):
                    held.lost = True
                    log.error("tenant lock lost during a call", extra={"lock": held.name})
                    return
            except Exception as exc:  # Redis trouble: keep trying until the call ends
                log.warning("lock renewal failed", extra={"error": type(exc).__name__})

    async def start_listening(self) -> None:
        """Subscribe to release notifications (done lazily by :meth:`acquire`)."""
        async with self._listener_guard:  # tenants' workers arrive together; subscribe once
            if self._listener is not None and not self._listener.done():
                return
            if self._pubsub is not None:
                with suppress(Exception):
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = self._redis.pubsub()
            await self._pubsub.psubscribe(f"{self._prefix}:released:*")
            self._listener = asyncio.create_task(self._listen(self._pubsub))

    async def _listen(self, pubsub: PubSub) -> None:
        prefix = f"{self._prefix}:released:"
        try:
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                channel = message["channel"]
                name = (channel.decode() if isinstance(channel, bytes) else channel)[len(prefix) :]
                event = self._released.get(name)
                if event is not None:
                    event.set()
        except Exception as exc:  # connection lost: waiters fall back to their TTL timeouts
            log.warning("lock notifications interrupted", extra={"error": type(exc).__name__})
            for event in self._released.values():
                event.set()

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            with suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
