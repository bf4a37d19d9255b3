"""TenantKey locks in Redis: at most one transactional call per Sage company, across all replicas.

Sage generates transaction record keys in a way that breaks under concurrent calls, and the
Cloud Connector does nothing to prevent them: it ignores fencing headers, and it finishes a
request after the client gave up on it. So "one call at a time" must hold at the Connector, by
our own discipline alone. The lock is the classic single-instance Redis lock, with the parts
that make that discipline hold:

* acquired with ``SET NX PX`` and a random owner token, so only the owner can renew or release
  it (compare-and-expire / compare-and-delete in Lua, atomic on the server);
* a **lease** the holder tracks on its own clock from when each acquire or renewal was *sent*
  (:class:`Lease`); the serial lane starts a call only while the lease outlasts the call's own
  timeout plus a margin, so a holder that lost contact with Redis has given up on its call
  before anyone else can take the lock. Renewal runs every third of the TTL during a hold, and
  every ledger ``begin`` renews too (it checks ownership in the same script);
* a **calling marker** per tenant, set when a call is about to be made and cleared only by a
  holder whose call's outcome is known (answered, or followed by the settle period). A lock
  granted while the marker is set comes with ``occupied``: an earlier holder died, stalled or
  lost its lease while a call of its may still be running at the Connector, so the new holder
  waits the settle period before its first call;
* the **epoch** check of :mod:`service.state.epoch` in every script: a Redis that lost its data is
  found at the next acquire or renewal, and no lock is granted until its quarantine passes. The
  per-tenant fence counter is a second witness: seeded from the Redis clock, it only grows, so
  a value at or below one this process was already given means Redis lost writes (a failover
  to a lagging replica);
* a fencing number per acquisition, sent as ``X-Fencing-Token``, for a server or proxy that
  checks it (the Cloud Connector does not);
* release publishes on a channel; waiters block on that notification (with the remaining TTL as
  their timeout, for holders that die without releasing) instead of polling;
* a waiter that finds the lock taken leaves a mark (``<prefix>:wanted:<customer>:<company>``,
  expiring a second after its wait would end; a release clears it), which every ``begin``
  reports to the holder: a holder that no other replica waits for may keep the lock longer
  before handing it back. The mark decides only how long a hold lasts, never who may call.

Redis failures are raised as :class:`~service.errors.StateUnavailable`: the serial lane treats
them as "wait", never as permission to call without the lock. The lock owns its :class:`Lease`:
renewing and losing it are this class's methods; the lanes only read it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from service.errors import EpochMovedError, LeaseLost
from service.state.epoch import Epoch, moved
from service.state.keys import key
from service.state.lock_scripts import ACQUIRE, RELEASE, RENEW, WANTED_MARGIN_MS
from service.state.renewal import renewed_while
from service.state.unavailable import speaks_state
from service.tenants import TenantKey

log = logging.getLogger(__name__)

Done = TypeVar("Done")

_HOST = socket.gethostname()


def process_token() -> str:
    """``host:pid:random``: unique, and tells an operator reading Redis which process wrote it."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(8)}"


class Lease:
    """A held tenant lock, as the lanes read it; only :class:`TenantLocks` changes it (as
    redis-py's ``Lock`` keeps its token and TTL to itself).

    :attr:`valid_until` (``time.monotonic()``) is when it runs out unless renewed, counted from
    the moment the acquire or last renewal was *sent*, so it never overestimates. :attr:`lost`:
    a renewal or a guarded step found the lock gone (or Redis's epoch moved). ``occupied``: when
    it was granted, a call of an earlier holder could still be running at the Connector."""

    __slots__ = ("_lost", "_valid_until", "fence", "occupied", "owner", "tenant")

    def __init__(
        self, tenant: TenantKey, owner: str, fence: int, valid_until: float, occupied: bool = False
    ) -> None:
        self.tenant = tenant
        self.owner = owner
        self.fence = fence
        self.occupied = occupied
        self._valid_until = valid_until
        self._lost = False

    @property
    def valid_until(self) -> float:
        return self._valid_until

    @property
    def lost(self) -> bool:
        return self._lost

    def usable(self, margin_s: float = 0.0) -> bool:
        """Still ours for at least ``margin_s`` more, by our own clock: safe to start a call
        that ends within ``margin_s``. A holder whose Redis stalled finds out here."""
        return not self._lost and time.monotonic() + margin_s < self._valid_until

    def _extend(self, until: float) -> None:
        self._valid_until = max(self._valid_until, until)

    def _lose(self) -> None:
        self._lost = True


@dataclass(frozen=True, slots=True)
class LeaseKeys:
    """What a script needs to check a lease and mark a call (see :mod:`service.state.ledger`),
    and where waiters for the lock leave their mark: a holder that finds none may keep the lock
    longer (:class:`~service.lanes.serial.policy.SerialPolicy`)."""

    lock: str
    calling: str
    wanted: str


@dataclass(frozen=True, slots=True)
class Guard:
    """A lease as a ledger script checks it (built by :meth:`TenantLocks.guard`). ``quiet``: no
    call of the holder can still be running, so the calling marker may go."""

    keys: LeaseKeys
    owner: str
    ttl_ms: int
    fence: int
    quiet: bool


class LeaseOwner:
    """How a lease is checked by a ledger script, renewed by it, or lost: one copy, for the
    Redis-backed :class:`TenantLocks` and any stand-in that keeps its contract. A subclass
    says where the lock lives (:meth:`keys`) and how long a lease lasts (``ttl_ms``)."""

    ttl_ms: int

    def keys(self, tenant: TenantKey) -> LeaseKeys:
        raise NotImplementedError

    def guard(self, lease: Lease, *, quiet: bool) -> Guard:
        """The lease as a ledger script checks (and renews) it."""
        return Guard(self.keys(lease.tenant), lease.owner, self.ttl_ms, lease.fence, quiet)

    async def under_lease(
        self, lease: Lease, step: Callable[[Guard], Awaitable[Done]], *, quiet: bool
    ) -> Done:
        """Run a ledger step whose script checks and renews the lease (``begin`` under the
        lock): the lease is extended from when the step was sent, or lost if the step raised
        :class:`LeaseLost` or :class:`EpochMovedError` (both re-raised)."""
        sent = time.monotonic()
        try:
            done = await step(self.guard(lease, quiet=quiet))
        except (LeaseLost, EpochMovedError):
            lease._lose()
            raise
        lease._extend(sent + self.ttl_ms / 1000)
        return done


class TenantLocks(LeaseOwner):
    """Lock factory for one deployment (all keys under ``prefix``)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        ttl_s: float,
        epoch: Epoch,
        on_wait: Callable[[TenantKey], None] = lambda tenant: None,
    ) -> None:
        """``on_wait`` is told each time an acquirer blocks waiting for a release."""
        self._redis = redis
        self._prefix = prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.epoch = epoch
        self._acquire = redis.register_script(ACQUIRE)
        self._release = redis.register_script(RELEASE)
        self._renew = redis.register_script(RENEW)
        self._highest_fence: dict[TenantKey, int] = {}
        self._keys: dict[TenantKey, LeaseKeys] = {}
        self._released: dict[str, asyncio.Event] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listener_guard = asyncio.Lock()
        self._on_wait = on_wait

    def keys(self, tenant: TenantKey) -> LeaseKeys:
        """Where the tenant's lock, calling marker and waiters' mark live (built once per
        tenant: tenants come from configuration)."""
        found = self._keys.get(tenant)
        if found is None:
            found = self._keys[tenant] = LeaseKeys(
                key(self._prefix, "lock", *tenant),
                key(self._prefix, "calling", *tenant),
                key(self._prefix, "wanted", *tenant),
            )
        return found

    def _fence_key(self, tenant: TenantKey) -> str:
        return key(self._prefix, "fence", *tenant)

    def _channel(self, tenant: TenantKey) -> str:
        return key(self._prefix, "released", *tenant)

    @speaks_state
    async def try_acquire(self, tenant: TenantKey) -> Lease | None:
        """One attempt; ``None`` if someone else holds it, or while Redis is in quarantine
        after a loss of data (see :meth:`acquire` to wait for either)."""
        granted, _ = await self._attempt(tenant, 0)
        return granted

    async def _attempt(self, tenant: TenantKey, wanted_ms: int) -> tuple[Lease | None, float]:
        """A lease, or how long (seconds) it makes sense to wait before trying again; a lock
        found taken is marked wanted for ``wanted_ms`` (0: not marked)."""
        await self.epoch.ready()
        keys = self.keys(tenant)
        owner = process_token()  # who holds it, for operators
        while True:
            sent = time.monotonic()
            reply: Any = await self._acquire(
                keys=[
                    *self.epoch.script_keys(),
                    keys.lock,
                    self._fence_key(tenant),
                    keys.calling,
                    keys.wanted,
                ],
                args=[
                    *self.epoch.script_args(),
                    owner,
                    self.ttl_ms,
                    self._highest_fence.get(tenant, 0),
                    wanted_ms,
                ],
            )
            found = moved(reply)
            if found is None:
                break
            self.epoch.adopt(found)  # and try again under the epoch now in force
        kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if kind != "held":
            return None, max(0, int(reply[1])) / 1000
        fence = int(reply[1])
        self._highest_fence[tenant] = fence
        lease = Lease(tenant, owner, fence, sent + self.ttl_ms / 1000, occupied=bool(reply[2]))
        return lease, 0.0

    @speaks_state
    async def acquire(self, tenant: TenantKey, wait_s: float) -> Lease | None:
        """Wait up to ``wait_s`` for the lock; ``None`` if it stayed unavailable that long."""
        await self.start_listening()
        channel = self._channel(tenant)
        released = self._released.setdefault(channel, asyncio.Event())
        deadline = time.monotonic() + wait_s
        wanted_ms = int(wait_s * 1000) + WANTED_MARGIN_MS
        while True:
            released.clear()  # cleared before trying, so a release after the try is not missed
            lease, retry_in_s = await self._attempt(tenant, wanted_ms)
            if lease is not None:
                return lease
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # The holder may die without releasing: wake up when its lock would expire anyway
            # (or when a quarantine ends; no release is announced for that).
            nap = min(remaining, retry_in_s + 0.001) if retry_in_s > 0 else remaining
            self._on_wait(tenant)
            with suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), nap)

    @speaks_state
    async def release(self, lease: Lease, *, quiet: bool) -> bool:
        """Release if still ours; ``False`` means it had expired (or been taken) meanwhile.
        ``quiet``: no call made under this lease can still be running at the Connector, so
        the calling marker goes too. Otherwise the next holder waits the settle period."""
        keys = self.keys(lease.tenant)
        released = await self._release(
            keys=[keys.lock, keys.calling, keys.wanted],
            args=[lease.owner, "1" if quiet else "0", self._channel(lease.tenant)],
        )
        return bool(released)

    @speaks_state
    async def renew(self, lease: Lease) -> bool:
        """Extend the lease by the TTL; ``False`` (and ``lease.lost``) if it was gone."""
        sent = time.monotonic()
        reply: Any = await self._renew(
            keys=[*self.epoch.script_keys(), self.keys(lease.tenant).lock],
            args=[*self.epoch.script_args(), lease.owner, self.ttl_ms],
        )
        found = moved(reply)
        if found is not None:
            self.epoch.adopt(found)
            lease._lose()
            return False
        if reply[0] in (b"held", "held"):
            lease._extend(sent + self.ttl_ms / 1000)
            return True
        lease._lose()
        return False

    def kept_alive(self, lease: Lease) -> AbstractAsyncContextManager[Lease]:
        """Renew ``lease`` every third of its TTL while the body runs (a slow call keeps it),
        and no longer once it has ended (:mod:`~service.state.renewal`)."""
        return renewed_while(self.renew, lease, self.ttl_ms / 3000, lease.tenant)

    @speaks_state
    async def start_listening(self) -> None:
        """Subscribe to release notifications (done lazily by :meth:`acquire`)."""
        async with self._listener_guard:  # tenants' workers arrive together; subscribe once
            if self._listener is not None and not self._listener.done():
                return
            if self._pubsub is not None:
                with suppress(Exception):
                    await self._pubsub.aclose()
            self._pubsub = self._redis.pubsub()
            await self._pubsub.psubscribe(key(self._prefix, "released", "*"))
            self._listener = asyncio.create_task(self._listen(self._pubsub))

    async def _listen(self, pubsub: PubSub) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                channel = message["channel"]
                name = channel.decode() if isinstance(channel, bytes) else channel
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
                await self._pubsub.aclose()
