"""A forward proxy that speaks only ``CONNECT`` (how a client reaches an ``https://`` host
through a corporate proxy), recording each tunnel's target, and the request line and headers
the client sent to the proxy — never anything inside the tunnel, which stays TLS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class ConnectProxy:
    hosts: dict[str, str] = field(default_factory=dict)
    """Names only the proxy can resolve (host → address): the client never looks them up."""
    tunnels: list[str] = field(default_factory=list)
    """``host:port`` of every CONNECT, in order."""
    requests: list[bytes] = field(default_factory=list)
    """What each client said to the proxy before its tunnel opened."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            self.tunnels.append(target)
            host, _, port = target.rpartition(":")
            address = self.hosts.get(host, host)
            upstream_reader, upstream_writer = await asyncio.open_connection(address, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.close()


@asynccontextmanager
async def connect_proxy(hosts: dict[str, str]) -> AsyncIterator[tuple[ConnectProxy, str]]:
    """A running proxy on a free port of 127.0.0.1, and its ``http://`` URL."""
    proxy = ConnectProxy(hosts)
    server = await asyncio.start_server(proxy._handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield proxy, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
