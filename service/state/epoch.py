"""Did Redis keep its data? The epoch, the quarantine after a loss, and the replay horizon.

Tenant locks and the ledger live in Redis. A Redis that restarts without persistence, or fails
over to a replica that lagged, comes back without some or all of them, and two promises break:

* **one call at a time** — the lock is gone while a call made under it may still be running at
  the Cloud Connector (which finishes requests whose client gave up), so a waiting replica
  would take the empty lock and call at once;
* **nothing sent twice** — a redelivered record finds no ledger entry and looks new, though it
  may have been sent before the loss.

So Redis holds an **epoch**: a random id under ``<prefix>:epoch``, written once. Every process
remembers the epoch it works under and every lock script checks it. A script that finds the key
gone declares the loss itself, atomically: it writes a fresh epoch and a **quarantine** key that
expires after ``lease + settle`` — by then any call begun under the old data has ended at the
Connector (a call starts only under a lease that outlasts its timeout, and ``settle`` is how long
the Connector may go on after its client gave up). No tenant lock is granted while the
quarantine exists. A process that finds a *different* epoch learns of a loss someone else
declared, drops its lock and waits out the same quarantine.

Which redeliveries may have been sent before the loss? Any record already in the log when the
loss was found: the declarer stores each input partition's end offset then, the **replay
horizon**. A record below its partition's horizon that the ledger does not know is in doubt —
reported ``unknown_outcome``, never resent — if it is a replay (it was in the log when its
consumer got the partition, so an earlier owner may have sent it).

A process that starts without knowing any epoch cannot tell a fresh Redis from an emptied one by
Redis alone. The consumer group's committed offsets are the witness: if they exist for any input
partition while Redis has no epoch, data was lost. A fresh deployment's first process commits
where its partitions begin before it writes the first epoch, so the witness exists from then on,
even before any record is answered; and a question Kafka leaves unanswered proves nothing, so it
counts as a loss (:mod:`service.kafka.epoch_watch`). So a process first *establishes* its epoch
(:meth:`Epoch.establish`, with that witness) and no lock script runs before.

Each Lua function below is documented with what it reads and writes; the lock and ledger
scripts embed :data:`EPOCH_LUA` and call ``epoch_moved`` first.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from service.state.keys import escape, key, unescape
from service.state.unavailable import speaks_state

log = logging.getLogger(__name__)

EPOCH_LUA = """
-- epoch_moved(epoch key, quarantine key, known epoch, fresh epoch, quarantine ms):
-- nil while the epoch is the one the caller knows. A missing epoch is declared lost: a fresh
-- one is written, with a quarantine. Returns {'lost', epoch} for a loss this call declared,
-- {'changed', epoch} for an epoch someone else wrote.
local function epoch_moved(epoch_key, quarantine_key, known, fresh, quarantine_ms)
  local current = redis.call('GET', epoch_key)
  if current and current == known then
    return nil
  end
  if current then
    return {'changed', current}
  end
  redis.call('SET', epoch_key, fresh)
  redis.call('SET', quarantine_key, fresh, 'PX', quarantine_ms)
  return {'lost', fresh}
end
"""

# raise_horizon(key, ARGV index of the first field/offset pair): raises each field to at
# least its offset.
_HORIZON_LUA = """
local function raise_horizon(key, from)
  for i = from, #ARGV, 2 do
    local seen = tonumber(redis.call('HGET', key, ARGV[i]) or '-1')
    if tonumber(ARGV[i + 1]) > seen then
      redis.call('HSET', key, ARGV[i], ARGV[i + 1])
    end
  end
end
"""

# KEYS: epoch, quarantine, horizon. ARGV: fresh epoch, quarantine ms, then field/offset pairs.
# Declares a loss found by a witness other than a script (committed offsets without an epoch):
# writes the epoch, the quarantine and the horizon unless an epoch exists; returns the epoch.
_DECLARE_LOST = (
    _HORIZON_LUA
    + """
local current = redis.call('GET', KEYS[1])
if current then
  return current
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
raise_horizon(KEYS[3], 3)
return ARGV[1]
"""
)

# KEYS: horizon. ARGV: field/offset pairs.
_RAISE_HORIZON = _HORIZON_LUA + "raise_horizon(KEYS[1], 1)\nreturn #ARGV / 2\n"


EPOCH_CHECK_LUA = (
    EPOCH_LUA
    + """
local moved = epoch_moved(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
if moved then
  return moved
end
"""
)
"""The prologue of a script whose first KEYS are :meth:`Epoch.script_keys` and first ARGV
:meth:`Epoch.script_args`: it returns the epoch's verdict if the epoch moved."""


_EPOCH_ORIGIN = secrets.token_hex(8)
_EPOCH_SERIAL = itertools.count()


def fresh_epoch() -> str:
    """An epoch no one has used: this process's random origin and a serial number. Every
    guarded ledger step carries one (used only if that step finds Redis emptied), so it must be
    cheap — one ``os.urandom`` per process, not per step — and never repeat: two steps in
    flight at once must not declare the same epoch for two losses."""
    return f"{_EPOCH_ORIGIN}.{next(_EPOCH_SERIAL)}"


def _horizon_args(horizon: Mapping[tuple[str, int], int]) -> list[str | int]:
    """Field/offset pairs, as the horizon scripts take them."""
    return [
        value
        for (topic, partition), end in horizon.items()
        for value in (partition_field(topic, partition), end)
    ]


def partition_field(topic: str, partition: int) -> str:
    """A partition's field in the horizon hash (topic names cannot hold ``/``)."""
    return f"{escape(topic)}/{partition}"


@dataclass(frozen=True, slots=True)
class EpochMoved:
    """A script found the epoch moved: ``declared`` if this process declared the loss."""

    epoch: str
    declared: bool


def moved(reply: Any) -> EpochMoved | None:
    """The :data:`EPOCH_LUA` verdict in a script's reply, if the reply is one."""
    if isinstance(reply, list) and len(reply) == 2:
        kind = _text(reply[0])
        if kind in ("lost", "changed"):
            return EpochMoved(_text(reply[1]), declared=kind == "lost")
    return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Epoch:
    """The epoch this process works under, and the keys and arguments scripts check it with.

    ``quarantine_s`` is lease plus settle: how long after a loss any call begun under the old
    data may still be running at the Connector."""

    def __init__(self, redis: Redis, prefix: str, quarantine_s: float) -> None:
        self._redis = redis
        self.declared = asyncio.Event()
        """Set when a script of this process declared a loss; whoever knows the input
        partitions records the replay horizon then, and clears it."""
        self.known = ""
        """The epoch this process works under; empty until it has seen one."""
        self.epoch_key = key(prefix, "epoch")
        self.quarantine_key = key(prefix, "quarantine")
        self.horizon_key = key(prefix, "replay-horizon")
        self.quarantine_ms = max(1, int(quarantine_s * 1000))
        self._declare_lost = redis.register_script(_DECLARE_LOST)
        self._raise_horizon = redis.register_script(_RAISE_HORIZON)
        self._established = asyncio.Event()

    @property
    def established(self) -> bool:
        return self._established.is_set()

    @speaks_state
    async def ready(self) -> None:
        """Return once :meth:`establish` has run (scripts need a known epoch)."""
        await self._established.wait()

    @speaks_state
    async def establish(
        self,
        witnessed: bool = False,
        horizon: Callable[[], Awaitable[Mapping[tuple[str, int], int]]] | None = None,
    ) -> None:
        """Learn the epoch to work under: the one in Redis; else a loss, if ``witnessed``
        (recorded with ``horizon()``, the input partitions' end offsets); else a fresh
        deployment's first epoch."""
        current = await self.current()
        if current is not None:
            self.adopt(EpochMoved(current, declared=False))
        elif witnessed:
            await self.declare_lost(await horizon() if horizon is not None else {})
        else:
            await self._redis.set(self.epoch_key, fresh_epoch(), nx=True)
            self.known = await self.current() or ""
        self._established.set()

    def script_keys(self) -> list[str]:
        """The epoch and quarantine keys, as the first two KEYS of a script using EPOCH_LUA."""
        return [self.epoch_key, self.quarantine_key]

    def script_args(self) -> list[str | int]:
        """Known epoch, a fresh one (used only if the script declares a loss), quarantine ms."""
        return [self.known, fresh_epoch(), self.quarantine_ms]

    def adopt(self, found: EpochMoved) -> None:
        """Work under the epoch a script reported; log a loss once, where it was found."""
        if found.declared:
            log.error(
                "Redis lost its data: transactional calls wait out the quarantine, and "
                "redelivered records it may have sent are reported unknown_outcome",
                extra={"quarantine_s": self.quarantine_ms / 1000},
            )
        elif self.known and found.epoch != self.known:
            log.warning("Redis epoch changed: another replica found a loss of data")
        self.known = found.epoch
        if found.declared:
            self.declared.set()

    @speaks_state
    async def current(self) -> str | None:
        """The epoch in Redis now (``None`` if there is none)."""
        value = await self._redis.get(self.epoch_key)
        return None if value is None else _text(value)

    @speaks_state
    async def declare_lost(self, horizon: Mapping[tuple[str, int], int]) -> str:
        """Declare a loss found by a witness (see module docstring) with the partitions' end
        offsets as their horizon; adopt and return the epoch (someone else's, if they were
        first)."""
        args: list[str | int] = [fresh_epoch(), self.quarantine_ms, *_horizon_args(horizon)]
        epoch = _text(
            await self._declare_lost(
                keys=[self.epoch_key, self.quarantine_key, self.horizon_key], args=args
            )
        )
        if epoch != self.known:
            self.known = epoch
            log.error(
                "Redis lost its data: transactional calls wait out the quarantine, and "
                "redelivered records it may have sent are reported unknown_outcome",
                extra={"quarantine_s": self.quarantine_ms / 1000, "declared": epoch == args[0]},
            )
        return epoch

    @speaks_state
    async def raise_horizon(self, horizon: Mapping[tuple[str, int], int]) -> None:
        """Record that records below these offsets may have been sent before a loss."""
        if horizon:
            await self._raise_horizon(keys=[self.horizon_key], args=_horizon_args(horizon))

    @speaks_state
    async def horizon(self) -> dict[tuple[str, int], int]:
        """Every partition's replay horizon, as stored."""
        raw = await self._redis.hgetall(self.horizon_key)
        found: dict[tuple[str, int], int] = {}
        for field, value in raw.items():
            topic, _, partition = _text(field).rpartition("/")
            found[(unescape(topic), int(partition))] = int(value)
        return found


class ReplayDoubt:
    """Which consumed records may have been sent before Redis lost its data (pure).

    A record is *doubtful* if it is a replay — it was already in the log when this process got
    its partition (at or above the offset then at the end, nobody before us can have read it) —
    and it lies below its partition's replay horizon (see module docstring). The horizon is
    cached per epoch; :meth:`stale` says when it must be read again."""

    def __init__(self) -> None:
        self._replay_end: dict[tuple[str, int], int] = {}
        self._horizon: dict[tuple[str, int], int] = {}
        self._horizon_epoch: str | None = None

    def assigned(self, ends: Mapping[tuple[str, int], int]) -> None:
        """Partitions just assigned, with their end offsets at that moment."""
        self._replay_end.update(ends)

    def revoked(self, partitions: Iterable[tuple[str, int]]) -> None:
        for partition in partitions:
            self._replay_end.pop(partition, None)

    def is_replay(self, topic: str, partition: int, offset: int) -> bool:
        return offset < self._replay_end.get((topic, partition), -1)

    def stale(self, epoch: str) -> bool:
        """The cached horizon is not the one of ``epoch``."""
        return self._horizon_epoch != epoch

    def may_doubt(self, epoch: str) -> bool:
        """Whether any record can be doubtful now: not while Redis never lost data (no horizon
        recorded) — the usual case, checked once per poll instead of once per record."""
        return bool(self._horizon) or self.stale(epoch)

    def load(self, epoch: str, horizon: Mapping[tuple[str, int], int]) -> None:
        self._horizon_epoch = epoch
        self._horizon = dict(horizon)

    def doubtful(self, topic: str, partition: int, offset: int) -> bool:
        """A replay below the horizon (call only when the ledger does not know the record)."""
        return self.is_replay(topic, partition, offset) and offset < self._horizon.get(
            (topic, partition), -1
        )
