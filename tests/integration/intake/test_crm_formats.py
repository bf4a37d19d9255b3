"""Real CRM feeds over the real broker, Redis, the development Schema Registry and the sandbox:
the Confluent Salesforce CDC source connector's output (tests/fixtures/salesforce/README.md
says where each shape comes from) in Kafka Connect JSON with schemas and in Avro through the
registry, and the bad input a producer can send, each answered ERROR with a dead letter while
the consumer goes on."""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.dev.events import produce
from service.dev.registry import RegistryThread
from service.dev.salesforce import contracts_with_xref
from service.dev.sandbox.client import stored_records
from service.dev.topics import Topics, create_topics
from tests.support.kafka import Collector, Received
from tests.support.schema_registry import avro_of_connect, avro_value

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "salesforce"
CONNECT_CREATE = json.loads((FIXTURES / "confluent_cdc_contact_create.connect.json").read_text())
ACCOUNT = "001Dn00000ACMEaIAG"
JANE, JOHN = "003Dn00000JANE1IAG", "003Dn00000JOHN2IAG"


def connector_create(record_id: str, transaction: str, **fields: Any) -> dict[str, Any]:
    """The connector's published CREATE (schema and payload) with this contact's values: the
    shape as published, the values ours."""
    record = copy.deepcopy(CONNECT_CREATE)
    payload = record["payload"]
    payload["ChangeEventHeader"]["recordIds"] = [record_id]
    payload["ChangeEventHeader"]["transactionKey"] = transaction
    payload["Id"] = record_id
    address = {
        "GeocodeAccuracy": None,
        "State": "OR",
        "Street": "12 Harbour Road",
        "PostalCode": "97201",
        "Country": "US",
        "Latitude": None,
        "City": "Portland",
        "Longitude": None,
    }
    payload.update(
        AccountId=ACCOUNT,
        FirstName="Jane",
        LastName="Smith",
        Salutation="Ms.",
        MailingStreet=address["Street"],
        MailingCity=address["City"],
        MailingState=address["State"],
        MailingPostalCode=address["PostalCode"],
        MailingCountry=address["Country"],
        MailingAddress=address,
        Phone="(503) 555-0142",
    )
    payload.update(fields)
    return record


@pytest.fixture
def registry() -> Iterator[RegistryThread]:
    with RegistryThread() as running:
        yield running


@pytest.fixture
def crm_contracts(tmp_path: Path, topics: Topics) -> Path:
    contracts = contracts_with_xref(
        tmp_path,
        accounts=[(ACCOUNT, "01", "ACME")],
        contacts=[(JANE, "JSMITH", "01", "ACME"), (JOHN, "JDOE", "01", "ACME")],
    )
    routes = contracts / "routes.yaml"
    text = routes.read_text("utf-8").replace("salesforce.ContactChangeEvent:", f"{bound(topics)}:")
    routes.write_text(text, "utf-8")
    return contracts


def bound(topics: Topics) -> str:
    return f"sf-{topics.events}"


Run = Callable[..., Awaitable[list[Received]]]


@pytest.fixture
def run(
    running_service: Any,
    crm_contracts: Path,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    registry: RegistryThread,
) -> Run:
    """``await run(messages)``: the service reads the bound Salesforce topic, with the
    registry, while ``messages`` are produced there; its replies once there is one each."""

    async def go(messages: list[Any]) -> list[Received]:
        await create_topics(kafka_bootstrap, [bound(topics)])
        async with running_service(
            contracts_dir=crm_contracts,
            input_topics=f"{topics.events},{bound(topics)}",
            schema_registry_url=registry.url,
        ):
            await produce(kafka_bootstrap, bound(topics), messages)
            return await collector.wait_for(topics.replies, len(messages))

    return go


def stored_as_jane(record: dict[str, Any]) -> None:
    assert record["ContactCode"] == "JSMITH" and record["CustomerNo"] == "ACME"
    assert record["ContactName"] == "Jane Smith" and record["Salutation"] == "Ms."
    assert record["City"] == "Portland" and record["State"] == "OR"
    assert record["AddressLine1"] == "12 Harbour Road" and record["CountryCode"] == "US"


async def test_a_connect_json_create_from_the_confluent_connector_is_stored_whole(
    run: Run, sandbox: Any
) -> None:
    [reply] = await run([(JANE.encode(), connector_create(JANE, "tx-connect-json"))])
    assert reply.json()["response"] == "SUCCESS", reply.json()
    assert reply.json()["event_id"] == "tx-connect-json-1"
    [stored] = await stored_records(sandbox, "/customerContacts")
    stored_as_jane(stored["record"])


async def test_an_avro_create_through_the_schema_registry_is_stored_whole(
    run: Run, sandbox: Any, registry: RegistryThread, topics: Topics
) -> None:
    record = connector_create(JANE, "tx-avro")
    value = avro_value(
        registry.url, bound(topics), avro_of_connect(record["schema"]), record["payload"]
    )
    [reply] = await run([(JANE.encode(), value)])
    assert reply.json()["response"] == "SUCCESS", reply.json()
    assert reply.json()["event_id"] == "tx-avro-1"
    [stored] = await stored_records(sandbox, "/customerContacts")
    stored_as_jane(stored["record"])


async def test_a_registry_that_is_down_is_waited_for_and_nothing_is_dead_lettered(
    running_service: Any,
    crm_contracts: Path,
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    registry: RegistryThread,
    sandbox: Any,
) -> None:
    record = connector_create(JANE, "tx-outage")
    value = avro_value(
        registry.url, bound(topics), avro_of_connect(record["schema"]), record["payload"]
    )
    async with httpx.AsyncClient(base_url=registry.url) as control:
        await control.post("/_registry/outage", json={"down": True})
        await create_topics(kafka_bootstrap, [bound(topics)])
        async with running_service(
            contracts_dir=crm_contracts,
            input_topics=f"{topics.events},{bound(topics)}",
            schema_registry_url=registry.url,
            http_timeout_s=2,
        ):
            await produce(kafka_bootstrap, bound(topics), [(JANE.encode(), value)])
            # Asked, refused, asked again: the record waits for the registry.
            await wait_until_asked(control, times=3)
            assert collector.messages[topics.replies] == []
            await control.post("/_registry/outage", json={"down": False})
            [reply] = await collector.wait_for(topics.replies, 1)
    assert reply.json()["response"] == "SUCCESS", reply.json()
    assert collector.messages[topics.dlt] == []


async def wait_until_asked(control: httpx.AsyncClient, times: int) -> None:
    """Until the registry has been asked for a schema ``times`` times (refusals included)."""
    for _ in range(10_000):
        if (await control.get("/_registry/requests")).json()["schema_id_requests"] >= times:
            return
    raise AssertionError(f"the registry was not asked {times} times")


async def test_bad_input_is_refused_with_a_dead_letter_and_the_consumer_goes_on(
    run: Run, sandbox: Any, registry: RegistryThread, topics: Topics, collector: Collector
) -> None:
    good = connector_create(JOHN, "tx-good")
    registered = avro_value(
        registry.url, bound(topics), avro_of_connect(good["schema"]), good["payload"]
    )
    nested_list_name = connector_create(JANE, "tx-list-name")["payload"]
    for flat in ("FirstName", "LastName", "Salutation"):
        nested_list_name[flat] = None
    nested_list_name["Name"] = ["Jane", "Smith"]
    many = connector_create(JANE, "tx-many")
    many["payload"]["ChangeEventHeader"]["recordIds"] = [f"003Dn{i:013d}" for i in range(20_000)]
    messages = [
        (b"1", connector_create(JANE, "tx-types", FirstName=5, LastName=["x"])),
        (b"2", nested_list_name),
        (b"3", {"schema": {"type": "struct"}, "payload": ["not", "an", "object"]}),
        (b"4", b"\x00" + struct.pack(">I", 4242) + b"\x02\x04"),
        (b"5", registered[:5] + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
        (b"6", many),
        (JOHN.encode(), good),
    ]
    replies = {r.key: r.json() for r in await run(messages)}
    types = replies[b"1"]
    assert (types["response"], types["stage"]) == ("ERROR", "validation")
    assert types["errors"] == [
        {
            "field": "ContactName",
            "code": "wrong_type",
            "detail": "Name.FirstName: expected text, found a number (5)",
        }
    ]
    listed = replies[b"2"]
    assert listed["stage"] == "validation"
    assert listed["message"] == "Name: expected an object, found an array"
    assert replies[b"3"]["stage"] == "parse"
    assert "the payload must be a JSON object, got an array" in replies[b"3"]["message"]
    assert replies[b"4"]["stage"] == "parse"
    assert "schema id 4242" in replies[b"4"]["message"]
    assert "does not know this id" in replies[b"4"]["message"]
    assert replies[b"5"]["stage"] == "parse" and "is corrupt" in replies[b"5"]["message"]
    assert replies[b"6"]["stage"] == "validation"
    assert "20000, more than the 1000" in replies[b"6"]["message"]
    assert replies[JOHN.encode()]["response"] == "SUCCESS"
    dead = await collector.wait_for(topics.dlt, 6)
    assert sorted(d.key for d in dead) == [b"1", b"2", b"3", b"4", b"5", b"6"]
    assert all("x-value-omitted" not in d.headers for d in dead)
    [stored] = await stored_records(sandbox, "/customerContacts")
    assert stored["record"]["ContactCode"] == "JDOE"  # nothing of the bad ones reached Sage
