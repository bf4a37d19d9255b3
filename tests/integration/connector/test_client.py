"""The Connector client over real sockets: which failures mean "not sent" (safe to send again)
and which mean "maybe sent" (never resent for a transaction)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr

from service.connector.client import ConnectorClient
from service.connector.results import Delivered, Retryable, Unknown
from service.dev.sandbox import SandboxThread
from service.dev.sandbox.client import sandbox_post
from service.tenants import Tenant
from tests.conftest import COMPANY, CUSTOMER, TOKEN

TENANT = Tenant(CUSTOMER, COMPANY, SecretStr(TOKEN))
INVOICE = b'{"InvoiceNo": "INV1", "Amount": 1}'


@asynccontextmanager
async def hanging_up_after_the_request() -> AsyncIterator[str]:
    """A server that reads a whole request and closes the connection without an answer: what
    the client sees when the Connector (or a proxy) dies mid-call."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def post_once(url: str, timeout_s: float = 5.0) -> object:
    client = ConnectorClient(url, timeout_s)
    try:
        return await client.post(TENANT, "/accountsReceivable", INVOICE, fence=7)
    finally:
        await client.aclose()


async def test_a_call_the_sandbox_answers_is_delivered(sandbox: SandboxThread) -> None:
    assert isinstance(await post_once(sandbox.url), Delivered)


async def test_a_refused_connection_is_not_sent(nowhere: str) -> None:
    result = await post_once(f"http://{nowhere}")
    assert isinstance(result, Retryable), result
    assert "cannot connect" in result.reason


async def test_no_answer_within_the_timeout_is_an_unknown_outcome(sandbox: SandboxThread) -> None:
    await sandbox_post(sandbox, "/_sandbox/faults", {"hang_rate": 1.0})
    result = await post_once(sandbox.url, timeout_s=0.5)
    await sandbox_post(sandbox, "/_sandbox/faults", {"hang_rate": 0.0})
    assert isinstance(result, Unknown), result
    assert "timeout" in result.reason and TOKEN not in result.reason


async def test_a_connection_dropped_after_the_request_is_an_unknown_outcome() -> None:
    async with hanging_up_after_the_request() as url:
        result = await post_once(url)
    assert isinstance(result, Unknown), result
    assert TOKEN not in result.reason


@asynccontextmanager
async def recording_heads(heads: list[bytes]) -> AsyncIterator[str]:
    """A server that answers every request SUCCESS and keeps each request's head."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = b'{"response": "SUCCESS"}'
        with contextlib.suppress(asyncio.IncompleteReadError):  # the client hung up
            await answer_each(reader, writer, body)

    async def answer_each(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes
    ) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            heads.append(head.lower())
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_kept_headers_follow_a_rotated_token_and_carry_no_earlier_calls_fence() -> None:
    """The client keeps each tenant's headers between calls: a fence belongs to its own call
    only, and a new token is sent as soon as the tenant has it."""
    heads: list[bytes] = []
    rotated = Tenant(CUSTOMER, COMPANY, SecretStr("rotated-token"))
    async with recording_heads(heads) as url:
        client = ConnectorClient(url, 5.0)
        try:
            assert isinstance(await client.post(TENANT, "/ar", INVOICE, fence=7), Delivered)
            assert isinstance(await client.post(TENANT, "/ar", INVOICE), Delivered)
            assert isinstance(await client.post(rotated, "/ar", INVOICE, fence=8), Delivered)
            assert isinstance(await client.post(rotated, "/ar", INVOICE), Delivered)
        finally:
            await client.aclose()
    fences = [[line for line in h.split(b"\r\n") if b"x-fencing-token" in line] for h in heads]
    assert fences == [[b"x-fencing-token: 7"], [], [b"x-fencing-token: 8"], []]
    tokens = [[line for line in h.split(b"\r\n") if line.startswith(b"auth-token")] for h in heads]
    assert (
        tokens
        == [[b"auth-token: " + TOKEN.lower().encode()]] * 2 + [[b"auth-token: rotated-token"]] * 2
    )
    assert all(b"customer: " + CUSTOMER.lower().encode() in h for h in heads)
    # Framed by its length, never chunked (proxies in front of the Connector may refuse that).
    assert all(b"content-length: %d\r\n" % len(INVOICE) in h for h in heads)
    assert all(b"host: 127.0.0.1:" in h and b"transfer-encoding" not in h for h in heads)
