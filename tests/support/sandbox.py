"""Talking to the sandbox from async tests without blocking the event loop."""

from __future__ import annotations

from typing import Any

import httpx


async def sandbox_get(sandbox: Any, path: str) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=10) as client:
        response = await client.get(path)
        response.raise_for_status()
        return response.json()


async def sandbox_post(sandbox: Any, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=10) as client:
        response = await client.post(path, json=body)
        response.raise_for_status()
        return response.json()


async def stats(sandbox: Any) -> dict[str, Any]:
    result: dict[str, Any] = await sandbox_get(sandbox, "/_sandbox/stats")
    return result


async def stored_records(sandbox: Any, endpoint: str) -> list[dict[str, Any]]:
    result = await sandbox_get(sandbox, f"/_sandbox/records?endpoint={endpoint}")
    return list(result["records"])
