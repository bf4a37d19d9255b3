"""The sandbox's own endpoints (``/_sandbox/...``) from async code: faults, counters, records.

Each call opens its own short-lived HTTP client, so it works from any event loop (pytest's,
the demo's, the benchmark's) against a sandbox in a thread or in another process alike.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

TIMEOUT_S = 10.0


class Reachable(Protocol):
    """Anything that knows the sandbox's base URL (a :class:`SandboxThread`, a process)."""

    @property
    def url(self) -> str: ...


async def sandbox_get(sandbox: Reachable, path: str) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=TIMEOUT_S) as client:
        response = await client.get(path)
        response.raise_for_status()
        return response.json()


async def sandbox_post(sandbox: Reachable, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=TIMEOUT_S) as client:
        response = await client.post(path, json=body)
        response.raise_for_status()
        return response.json()


async def stats(sandbox: Reachable) -> dict[str, Any]:
    """The sandbox's counters: calls, records stored, overlapping transactional calls, ..."""
    result: dict[str, Any] = await sandbox_get(sandbox, "/_sandbox/stats")
    return result


async def stored_records(sandbox: Reachable, endpoint: str) -> list[dict[str, Any]]:
    """Every record the sandbox stored under ``endpoint`` (e.g. ``/customerContacts``)."""
    result = await sandbox_get(sandbox, f"/_sandbox/records?endpoint={endpoint}")
    return list(result["records"])
