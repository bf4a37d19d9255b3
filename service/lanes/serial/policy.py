"""The serial lane's pace and patience, as the wiring sets them from the settings: how long a
company's lock is waited for and kept, how calls are retried, and how long a call may go on."""

from __future__ import annotations

from dataclasses import dataclass

from service.lanes.retry import Backoff


@dataclass(frozen=True, slots=True)
class SerialPolicy:
    lock_wait_s: float
    max_attempts: int
    backoff: Backoff
    call_timeout_s: float
    """The Connector client's timeout: a call ends (at the client) within this."""
    settle_s: float
    """The settle period: how long the Connector may go on with a call after its client gave up."""
    redis_retry_s: float = 0.5
    hold_records: int = 50
    """Most records delivered under one acquisition of a tenant lock."""
    hold_s: float = 0.5
    """Longest one acquisition is kept while records are queued and another replica may be
    waiting for the lock."""
    hold_alone_s: float = 2.5
    """Longest one acquisition is kept while records are queued and no other replica has marked
    the lock wanted (:mod:`service.state.locks`): each hand-back costs an acquire, a release and
    a write of its own, which a replica alone on a company need not pay every ``hold_s``."""
