"""A Cloud Connector that answers with a redirect must not get the token or the record sent
elsewhere: the call is an ERROR naming the host it pointed at, and nothing is re-sent.

The Connector is a stand-in over real HTTP that redirects every call to a second server; that
one records whatever reaches it. The two are told apart by host name: the Connector is called at
``127.0.0.1``, the redirect points at ``localhost``.
"""

from __future__ import annotations

from pydantic import SecretStr

from service.connector.client import ConnectorClient
from service.connector.results import Rejected
from service.dev.events import contact, event, produce
from service.dev.topics import Topics
from service.tenants import Tenant
from tests.conftest import COMPANY, CUSTOMER, TOKEN
from tests.support.kafka import Collector
from tests.support.standin import Recorder, redirecting_to, serving


async def test_a_redirect_is_a_connector_error_and_nothing_reaches_its_target(
    running_service, kafka_bootstrap: str, topics: Topics, collector: Collector
) -> None:
    elsewhere = Recorder()
    async with (
        serving(elsewhere.app()) as target,
        serving(redirecting_to(target.replace("127.0.0.1", "localhost"))) as connector,
        running_service(connector_url=connector),
    ):
        await produce(
            kafka_bootstrap,
            topics.events,
            [
                (b"contact", event("c-1", contact(1))),
                (b"invoice", event("i-1", {"InvoiceNo": "i-1"}, type="ar_invoice.create")),
            ],
        )
        replies = await collector.wait_for(topics.replies, 2)
        dead = await collector.wait_for(topics.dlt, 2)

    assert {r.json()["event_id"] for r in replies} == {"c-1", "i-1"}
    for reply in replies:
        body = reply.json()
        assert body["response"] == "ERROR" and body["stage"] == "connector", body
        assert "redirect to host localhost" in body["message"], body
        assert body["attempts"] == 1, "a redirect is not retried"
    assert {d.headers["x-error-stage"] for d in dead} == {b"connector"}
    assert elsewhere.seen == [], "a request followed the redirect"


async def test_a_lookup_is_not_redirected_either() -> None:
    """The list GET (reconciling master data after a crash) refuses a redirect the same way."""
    elsewhere = Recorder()
    tenant = Tenant(CUSTOMER, COMPANY, SecretStr(TOKEN))
    async with (
        serving(elsewhere.app()) as target,
        serving(redirecting_to(target.replace("127.0.0.1", "localhost"), 302)) as connector,
    ):
        client = ConnectorClient(connector, 5.0)
        try:
            result = await client.get(tenant, "/customerContacts", {"CustomerNo": "C00001"})
        finally:
            await client.aclose()
    assert isinstance(result, Rejected) and result.whole_call, result
    assert result.message.startswith("HTTP 302: ") and "to host localhost" in result.message
    assert elsewhere.seen == []
