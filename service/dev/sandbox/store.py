"""The sandbox's memory: what Sage accepted, how it was called, and ordering violations.

Tests assert on this state rather than on the bridge's own logs, because it is what the far side
actually saw. Every method is synchronous and runs on the server's event loop thread, so a method
is atomic; handlers interleave only *between* calls, which is why a call takes a snapshot of the
:attr:`Store.generation` on arrival and everything it reports later is checked against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from service.tenants import TenantKey

"""(customer, company): the unit the Cloud Connector serialises transactional calls on."""

INJECTED_KINDS = (
    "down",
    "fail",
    "error",
    "hang",
    "slow",
    "store_then_fail",
    "gateway_401",
    "throttle",
)


@dataclass(slots=True)
class Store:
    """Accepted records, the call log, counters and transactional bookkeeping."""

    records: list[dict[str, Any]] = field(default_factory=list)
    """Append-only: {"endpoint","customer","company","record_number","call","record"}."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    """One entry per finished business call, in completion order; never holds a token."""
    generation: int = 0
    """Bumped by :meth:`reset`; a call that straddles a reset must not write into the new state."""
    batch_calls: int = 0
    successes: int = 0
    errors: int = 0
    rejected_records: int = 0
    violations: int = 0
    max_concurrent_transactional: int = 0
    max_parallel_tenants: int = 0
    """Most tenants with a transactional call in progress at the same moment: proof that
    tenants' serial lanes run side by side."""
    stale_fences: int = 0
    """Transactional calls whose fencing number was lower than one already seen for the tenant
    (a holder that lost its lock and called anyway). Counted always, refused only with the
    ``check_fencing`` fault: the real Connector ignores the header."""
    unfenced_calls: int = 0
    """Transactional calls without an ``X-Fencing-Token`` header."""
    highest_fence: dict[TenantKey, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INJECTED_KINDS, 0))
    lookups: int = 0
    abandoned: int = 0
    """Business calls that finished after their client had disconnected (gave up waiting)."""
    calls_in_progress: int = 0
    """Business calls received and not yet answered (any endpoint)."""
    in_progress: dict[TenantKey, int] = field(default_factory=dict)
    """Live transactional calls per tenant; deliberately *not* cleared by a reset, because those
    calls are still running and will :meth:`leave` later."""
    _next_call: int = 1
    _next_record_number: dict[TenantKey, int] = field(default_factory=dict)
    _rows: dict[tuple[str, TenantKey], dict[tuple[str, ...], dict[str, Any]]] = field(
        default_factory=dict
    )
    """The current row per key, per (endpoint, tenant): a lookup by the key elements is one
    dict read, as a database's would be, however many records were stored."""
    _keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """The key elements each endpoint's rows are indexed by."""

    def reset(self) -> None:
        """Forget history (records, log, counters, record numbers); keep live in-progress counts."""
        self.generation += 1
        self.records = []
        self.calls = []
        self.batch_calls = self.successes = self.errors = self.rejected_records = 0
        self.violations = self.stale_fences = self.unfenced_calls = self.lookups = 0
        self.abandoned = 0
        self.max_concurrent_transactional = max(self.in_progress.values(), default=0)
        self.max_parallel_tenants = len(self.in_progress)
        self.injected = dict.fromkeys(INJECTED_KINDS, 0)
        self._next_call = 1
        self._next_record_number = {}
        self._rows = {}

    def next_call(self) -> int:
        """The number of a call that just arrived (1, 2, ... since the last reset)."""
        number = self._next_call
        self._next_call += 1
        return number

    def enter_transactional(self, tenant: TenantKey) -> bool:
        """Count a transactional call as in progress; ``True`` if it overlaps another (a violation).

        The overlapping call itself counts towards :attr:`max_concurrent_transactional`, because
        at that moment two calls really are in flight for the tenant.
        """
        running = self.in_progress.get(tenant, 0) + 1
        self.in_progress[tenant] = running
        self.max_concurrent_transactional = max(self.max_concurrent_transactional, running)
        self.max_parallel_tenants = max(self.max_parallel_tenants, len(self.in_progress))
        if running > 1:
            self.violations += 1
            return True
        return False

    def check_fence(self, tenant: TenantKey, fence: int | None) -> bool:
        """``False`` if ``fence`` is older than one already seen for ``tenant`` (stale holder).
        Retries of one acquisition reuse its number, so equal is fine."""
        if fence is None:
            self.unfenced_calls += 1
            return True
        if fence < self.highest_fence.get(tenant, 0):
            self.stale_fences += 1
            return False
        self.highest_fence[tenant] = fence
        return True

    def leave_transactional(self, tenant: TenantKey) -> None:
        """The call ended at the server (answered, whether or not anyone still listened)."""
        running = self.in_progress.get(tenant, 0) - 1
        if running > 0:
            self.in_progress[tenant] = running
        else:
            self.in_progress.pop(tenant, None)

    def accept(
        self,
        endpoint: str,
        tenant: TenantKey,
        call: int,
        records: Sequence[dict[str, Any]],
        numbered: bool,
        keys: tuple[str, ...] = (),
    ) -> list[int]:
        """Store ``records``; numbered (transactional) ones get the tenant's next record numbers.
        ``keys``: the elements that identify a row of ``endpoint`` (indexed for lookups)."""
        customer, company = tenant
        if keys:
            self._keys[endpoint] = keys
            rows = self._rows.setdefault((endpoint, tenant), {})
            for record in records:
                rows[tuple(str(record.get(name, "")) for name in keys)] = record
        numbers: list[int] = []
        if numbered:
            first = self._next_record_number.get(tenant, 1)
            numbers = list(range(first, first + len(records)))
            self._next_record_number[tenant] = first + len(records)
        for index, record in enumerate(records):
            self.records.append(
                {
                    "endpoint": endpoint,
                    "customer": customer,
                    "company": company,
                    "record_number": numbers[index] if numbered else None,
                    "call": call,
                    "record": record,
                }
            )
        return numbers

    def log_call(self, entry: dict[str, Any]) -> None:
        """Record a finished call and update the counters derived from it."""
        self.calls.append(entry)
        if entry.get("array"):
            self.batch_calls += 1
        if entry.get("outcome") == "SUCCESS":
            self.successes += 1
        else:
            self.errors += 1

    def stats(self) -> dict[str, Any]:
        """The counters for ``GET /_sandbox/stats``."""
        return {
            "calls": len(self.calls),
            "batch_calls": self.batch_calls,
            "records": len(self.records),
            "successes": self.successes,
            "errors": self.errors,
            "rejected_records": self.rejected_records,
            "violations": self.violations,
            "max_concurrent_transactional": self.max_concurrent_transactional,
            "max_parallel_tenants": self.max_parallel_tenants,
            "stale_fences": self.stale_fences,
            "unfenced_calls": self.unfenced_calls,
            "in_progress_transactional": sum(self.in_progress.values()),
            "in_progress_tenants": sorted(str(tenant) for tenant in self.in_progress),
            "calls_in_progress": self.calls_in_progress,
            "lookups": self.lookups,
            "abandoned": self.abandoned,
            "injected": dict(self.injected),
        }

    def lookup(
        self, endpoint: str, tenant: TenantKey, criteria: dict[str, str]
    ) -> list[dict[str, Any]]:
        """The Connector's ``list`` GET: the current row for each identity matching ``criteria``
        (element name -> value, compared as text). Later writes of a row replace earlier ones."""
        keys = self._keys.get(endpoint)
        if keys is not None and set(criteria) == set(keys):
            row = self._rows.get((endpoint, tenant), {}).get(tuple(criteria[k] for k in keys))
            return [] if row is None else [row]
        identity = keys or tuple(sorted(criteria))
        current: dict[tuple[str, ...], dict[str, Any]] = {}
        for entry in self.records:
            if entry["endpoint"] != endpoint or (entry["customer"], entry["company"]) != tenant:
                continue
            record = entry["record"]
            if all(str(record.get(name, "")) == value for name, value in criteria.items()):
                current[tuple(str(record.get(name, "")) for name in identity)] = record
        return list(current.values())

    def field_names(self, endpoint: str, tenant: TenantKey) -> set[str]:
        """Every field name of the records ``tenant`` stored at ``endpoint``."""
        names: set[str] = set()
        for entry in self.records:
            if entry["endpoint"] == endpoint and (entry["customer"], entry["company"]) == tenant:
                names.update(entry["record"])
        return names

    def records_for(self, endpoint: str | None) -> list[dict[str, Any]]:
        """Accepted records, all or only those of ``endpoint``."""
        if endpoint is None:
            return list(self.records)
        return [r for r in self.records if r["endpoint"] == endpoint]
