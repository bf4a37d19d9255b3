"""The Schema Registry client ignores the proxy variables: they are for the Cloud Connector
(docs/configuration.md, "The Connector behind a corporate network"). A shell or pod whose
HTTPS_PROXY/HTTP_PROXY points at a corporate proxy must not reroute the registry's requests
through it."""

from __future__ import annotations

import socket

import pytest

from service.dev.registry.server import RegistryThread
from service.registry.client import RegistryClient

SCHEMA = '{"type": "record", "name": "Contact", "fields": [{"name": "Id", "type": "string"}]}'


def closed_port() -> int:
    """A port nothing listens on: a proxy there refuses every connection."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_registry_is_asked_directly_whatever_the_proxy_variables_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with RegistryThread() as registry:
        schema_id = registry.store.register("contacts-value", SCHEMA, "AVRO")
        client = RegistryClient(registry.url, timeout_s=5)
        try:
            found = await client.schema(schema_id)
        finally:
            await client.aclose()
    assert getattr(found, "schema_id", schema_id) == schema_id
    assert type(found).__name__ == "RegisteredSchema", found
