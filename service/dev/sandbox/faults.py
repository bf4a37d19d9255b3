"""Faults the sandbox injects, so the bridge's retry, timeout and reply paths can be exercised.

A real Cloud Connector sits in front of an on-premise Sage server whose stability the seed calls
out as environment-dependent; the bridge must survive slow answers, HTTP 500s, ERROR envelopes,
hangs, refused records and an unreachable server. It is also harsher than a polite test double
in ways that decide whether a transactional record is posted twice: it keeps working on a
request after the client gave up, a proxy in front of it can answer 500/502/504 after Sage
stored the record, and it ignores any fencing header. Each of those is one field here, changed
at start-up (flags) or at run time (``POST /_sandbox/faults``) without restarting the sandbox.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from service.errors import FaultsError

STORE_THEN_FAIL_STATUSES = (500, 502, 504)
THROTTLE_STATUSES = (429, 503)
REFUSAL_STATUSES = (200, 400, 409, 422)


@dataclass(slots=True)
class Faults:
    """The current faults; mutable because tests switch them on and off between calls."""

    latency_ms: int = 0
    """Delay before every business answer; transactional calls count as in progress meanwhile."""
    fail_rate: float = 0.0
    """Share of calls answered HTTP 500 (a crashed Connector), nothing stored."""
    error_rate: float = 0.0
    """Share of calls answered HTTP 200 with an ERROR envelope (Sage refused), nothing stored."""
    hang_rate: float = 0.0
    """Share of calls that do not answer until released (a faults update or a reset) or
    ``hang_s`` passes. A client that gives up does not end them: like a real server, the call
    stays in progress, and a transactional one keeps occupying its tenant."""
    hang_s: float = 3600.0
    """Upper bound on a hang, so a forgotten hung request cannot pin the server for ever."""
    slow_rate: float = 0.0
    """Share of calls that take ``slow_ms`` longer at the server, then do their work normally
    (store, answer) — whether or not their client is still waiting."""
    slow_ms: int = 0
    """Extra processing time of a slow call."""
    store_then_fail_rate: float = 0.0
    """Share of calls that store their records and then answer ``store_then_fail_status``, as
    a proxy does when it gives up on (or loses) an answer the Connector already produced."""
    store_then_fail_status: int = 502
    """500 (with an ERROR envelope, as the Connector would), 502 or 504 (a proxy's text page)."""
    check_fencing: bool = False
    """Refuse a transactional call whose ``X-Fencing-Token`` is lower than one already seen for
    its tenant. Off by default, because the real Cloud Connector ignores the header: mutual
    exclusion must be proven without the server's help."""
    partial_arrays: bool = False
    """A refused array stores the records before the first bad one, then answers ERROR, as a
    Connector that writes an array row by row without a transaction does. Off: an array is
    stored all or nothing."""
    reject_marker: str | None = None
    """A record with a string field exactly equal to this is refused, naming record and field."""
    down: bool = False
    """Answer 503 to every business call: the Connector cannot reach the Sage server."""
    refusal_status: int = 200
    """HTTP status of the ERROR envelope that refuses a record (contract, ``reject_marker``):
    200 as the seed shows, or a 4xx (400, 409, 422) as a Connector may answer."""
    gateway_401: int = 0
    """The next this many business calls are answered by a gateway in front of the Connector:
    HTTP 401 with a plain-text body, no envelope; nothing reaches the Connector."""
    throttle_count: int = 0
    """The next this many business calls are answered ``throttle_status`` with an ERROR
    envelope (and ``retry_after``, if set); nothing is processed."""
    throttle_status: int = 429
    """429 (too many requests) or 503 (try later)."""
    retry_after: str | None = None
    """The ``Retry-After`` header of a throttled answer, as sent: delay-seconds or an
    HTTP-date (RFC 9110 §10.2.3)."""

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` all or nothing; raise :class:`FaultsError` listing every problem.

        Validating everything before assigning anything means a typo in one key never leaves
        the sandbox half-reconfigured in the middle of a test.
        """
        known = {f.name for f in fields(self)}
        problems: list[str] = []
        accepted: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                problems.append(f"unknown fault {key!r} (known: {', '.join(sorted(known))})")
                continue
            problem = _validate(key, value)
            if problem is None:
                accepted[key] = float(value) if key.endswith(("_rate", "_s")) else value
            else:
                problems.append(f"{key}: {problem}")
        if problems:
            raise FaultsError("; ".join(problems))
        for key, value in accepted.items():
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        """The faults as JSON-ready data, for ``GET /_sandbox/faults``."""
        return asdict(self)

    def copy(self) -> Faults:
        """An independent copy, so a reset can restore the start-up faults."""
        return Faults(**asdict(self))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be fault ``key``, or ``None`` if it can."""
    if key in ("gateway_401", "throttle_count"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"expected a whole number of calls >= 0, got {value!r}"
    elif key == "throttle_status":
        if value not in THROTTLE_STATUSES or isinstance(value, bool):
            return f"expected one of {', '.join(map(str, THROTTLE_STATUSES))}, got {value!r}"
    elif key == "refusal_status":
        if value not in REFUSAL_STATUSES or isinstance(value, bool):
            return f"expected one of {', '.join(map(str, REFUSAL_STATUSES))}, got {value!r}"
    elif key == "retry_after":
        if value is not None and (not isinstance(value, str) or not value.isprintable()):
            return f"expected a header value (text) or null, got {value!r}"
    elif key in ("latency_ms", "slow_ms"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"expected a whole number of milliseconds >= 0, got {value!r}"
    elif key == "store_then_fail_status":
        if value not in STORE_THEN_FAIL_STATUSES or isinstance(value, bool):
            return f"expected one of {', '.join(map(str, STORE_THEN_FAIL_STATUSES))}, got {value!r}"
    elif key.endswith("_rate"):
        if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
            return f"expected a number from 0 to 1, got {value!r}"
    elif key == "hang_s":
        if not _is_number(value) or not math.isfinite(float(value)) or float(value) <= 0:
            return f"expected a number of seconds > 0, got {value!r}"
    elif key == "reject_marker":
        if value is not None and (not isinstance(value, str) or not value):
            return f"expected a non-empty string or null, got {value!r}"
    elif key in ("down", "check_fencing", "partial_arrays") and not isinstance(value, bool):
        return f"expected true or false, got {value!r}"
    return None
