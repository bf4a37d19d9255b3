"""The Connector behind a corporate network: the sandbox served over TLS with a certificate from
a CA of the test's own (``trustme``), a server that requires a client certificate, and a local
CONNECT proxy — each reached by the real client, over real sockets. The token never appears in
what the client logs or returns."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from pydantic import SecretStr

from service.connector.client import ConnectorClient
from service.connector.network import ConnectorNetwork, connector_network
from service.connector.results import CallResult, Delivered, Retryable
from service.dev.sandbox import SandboxOptions, SandboxThread
from service.tenants import Tenant
from tests.conftest import COMPANY, CUSTOMER, TOKEN
from tests.support.connect_proxy import connect_proxy

TENANT = Tenant(CUSTOMER, COMPANY, SecretStr(TOKEN))
BEHIND_PROXY = "connector.corp.test"
"""The Connector's name on the far side of the proxy: only the proxy resolves it (to the
sandbox), as on a network where the client has no DNS for the outside. This machine's own
names (``localhost``) never go through a proxy."""
CONTACT = b'{"ARDivisionNo": "01", "CustomerNo": "ABC", "ContactCode": "C1", "ContactName": "J"}'


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A corporate CA, the Connector's certificate from it, and a client CA with one client."""
    folder = tmp_path_factory.mktemp("pki")
    corporate, clients = trustme.CA(), trustme.CA()
    server = corporate.issue_cert("localhost", "127.0.0.1", BEHIND_PROXY)
    client = clients.issue_cert("sagebridge@example.com")
    paths = {
        "ca": folder / "corporate-ca.pem",
        "server": folder / "server.pem",
        "client_ca": folder / "client-ca.pem",
        "client": folder / "client.pem",
        "client_cert_only": folder / "client-cert.pem",
        "client_key": folder / "client-key.pem",
    }
    corporate.cert_pem.write_to_path(str(paths["ca"]))
    server.private_key_and_cert_chain_pem.write_to_path(str(paths["server"]))
    clients.cert_pem.write_to_path(str(paths["client_ca"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client_cert_only"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    return paths


@pytest.fixture
def tls_sandbox(pki: dict[str, Path]) -> Iterator[SandboxThread]:
    options = SandboxOptions(port=0, tokens=(TOKEN,), tls_cert=pki["server"])
    with SandboxThread(options) as running:
        yield running


@pytest.fixture
def mtls_sandbox(pki: dict[str, Path]) -> Iterator[SandboxThread]:
    options = SandboxOptions(
        port=0, tokens=(TOKEN,), tls_cert=pki["server"], tls_client_ca=pki["client_ca"]
    )
    with SandboxThread(options) as running:
        yield running


async def post_contact(url: str, network: ConnectorNetwork) -> CallResult:
    client = ConnectorClient(url, 5.0, network=network)
    try:
        return await client.post(TENANT, "/customerContacts", CONTACT)
    finally:
        await client.aclose()


def network(url: str, environ: dict[str, str] | None = None, **paths: Path) -> ConnectorNetwork:
    return connector_network(
        url,
        ca_file=paths.get("ca_file"),
        client_cert=paths.get("client_cert"),
        client_key=paths.get("client_key"),
        environ=environ or {},
    )


@pytest.fixture(autouse=True)
def every_log_line(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test here ends by checking that no log line of any logger holds the token."""
    caplog.set_level(logging.DEBUG)
    yield
    assert TOKEN not in caplog.text


async def test_a_connector_signed_by_an_unknown_ca_is_refused_and_nothing_was_sent(
    tls_sandbox: SandboxThread, pki: dict[str, Path]
) -> None:
    """Without the corporate CA the handshake fails before a byte of the request is sent: a
    retryable failure that says what to set, and the sandbox saw no call."""
    result = await post_contact(tls_sandbox.url, network(tls_sandbox.url))
    assert isinstance(result, Retryable), result
    assert "certificate is not trusted" in result.reason
    assert "SAGEBRIDGE_CONNECTOR_CA_FILE" in result.reason
    assert TOKEN not in result.reason
    assert tls_sandbox.sandbox.store.calls == []


async def test_the_configured_ca_bundle_makes_the_connector_trusted(
    tls_sandbox: SandboxThread, pki: dict[str, Path]
) -> None:
    url = tls_sandbox.url
    result = await post_contact(url, network(url, ca_file=pki["ca"]))
    assert isinstance(result, Delivered), result
    assert [call["outcome"] for call in tls_sandbox.sandbox.store.calls] == ["SUCCESS"]


@pytest.mark.parametrize("key_apart", [False, True], ids=["key-in-cert-file", "key-file"])
async def test_a_connector_that_requires_a_client_certificate_gets_the_configured_one(
    mtls_sandbox: SandboxThread, pki: dict[str, Path], key_apart: bool
) -> None:
    url = mtls_sandbox.url
    if key_apart:
        chosen = network(
            url,
            ca_file=pki["ca"],
            client_cert=pki["client_cert_only"],
            client_key=pki["client_key"],
        )
    else:
        chosen = network(url, ca_file=pki["ca"], client_cert=pki["client"])
    result = await post_contact(url, chosen)
    assert isinstance(result, Delivered), result
    assert len(mtls_sandbox.sandbox.store.calls) == 1


async def test_without_its_client_certificate_the_connector_processes_nothing(
    mtls_sandbox: SandboxThread, pki: dict[str, Path]
) -> None:
    url = mtls_sandbox.url
    result = await post_contact(url, network(url, ca_file=pki["ca"]))
    assert not isinstance(result, Delivered), result
    assert mtls_sandbox.sandbox.store.calls == []


async def test_https_proxy_carries_the_call_through_a_connect_tunnel(
    tls_sandbox: SandboxThread, pki: dict[str, Path]
) -> None:
    """The proxy sees where the tunnel goes, and nothing else: no token, no record."""
    url = f"https://{BEHIND_PROXY}:{tls_sandbox.port}"
    async with connect_proxy({BEHIND_PROXY: "127.0.0.1"}) as (proxy, proxy_url):
        environ = {"HTTPS_PROXY": proxy_url, "NO_PROXY": "example.com"}
        result = await post_contact(url, network(url, environ, ca_file=pki["ca"]))
    assert isinstance(result, Delivered), result
    assert proxy.tunnels == [f"{BEHIND_PROXY}:{tls_sandbox.port}"]
    assert all(TOKEN.encode() not in said for said in proxy.requests)
    assert len(tls_sandbox.sandbox.store.calls) == 1


@pytest.mark.parametrize("no_proxy", [BEHIND_PROXY, ".corp.test,example.com", "corp.test", "*"])
async def test_no_proxy_that_matches_the_connector_goes_direct(
    tls_sandbox: SandboxThread, pki: dict[str, Path], no_proxy: str
) -> None:
    """Direct, the client must resolve the name itself, and here it cannot: the call fails
    before anything is sent, and the proxy saw no tunnel."""
    url = f"https://{BEHIND_PROXY}:{tls_sandbox.port}"
    async with connect_proxy({BEHIND_PROXY: "127.0.0.1"}) as (proxy, proxy_url):
        environ = {"https_proxy": proxy_url, "no_proxy": no_proxy}
        result = await post_contact(url, network(url, environ, ca_file=pki["ca"]))
    assert isinstance(result, Retryable) and "cannot connect" in result.reason, result
    assert proxy.tunnels == []
    assert tls_sandbox.sandbox.store.calls == []


async def test_this_machine_is_reached_directly_whatever_the_proxy_variables_say(
    tls_sandbox: SandboxThread, pki: dict[str, Path]
) -> None:
    url = tls_sandbox.url.replace("127.0.0.1", "localhost")
    async with connect_proxy({}) as (proxy, proxy_url):
        result = await post_contact(
            url, network(url, {"HTTPS_PROXY": proxy_url}, ca_file=pki["ca"])
        )
    assert isinstance(result, Delivered), result
    assert proxy.tunnels == []


async def test_a_proxy_password_stays_out_of_what_is_logged(pki: dict[str, Path]) -> None:
    url = "https://connector.example.com"
    chosen = network(url, {"HTTPS_PROXY": "http://svc:pr0xy-s3cret@proxy.corp:3128"})
    assert chosen.proxy == "http://svc:pr0xy-s3cret@proxy.corp:3128"
    assert chosen.shown() == "proxy http://proxy.corp:3128, the default CA bundle"
