"""Record images end to end: Salesforce ContactChangeEvents on the broker, images in the real
Redis, AR Customer Contacts stored by the sandbox over HTTP.

The event shapes follow Salesforce's Change Data Capture Developer Guide:
- "Get Compound Fields in Change Events": in an update, ``changedFields`` lists each updated
  component as ``CompoundField.ComponentField`` (``Name.LastName``) and the event carries that
  component alone, nested (``"Name": {"LastName": "Birch"}``).
- "Change Event Body Fields": an UPDATE carries only the changed fields; the changed fields
  include fields set to null, which ``nulledFields`` also lists.
- "ChangeEventHeader Fields": ``commitTimestamp`` (ms since the epoch) and ``commitNumber``
  (increases with each committed transaction) order the changes of a record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from service.dev.events import produce
from service.dev.salesforce import change_event, contracts_with_xref, created_contact, envelope
from service.dev.sandbox.client import stored_records
from service.dev.topics import Topics
from service.state.keys import key
from tests.support.cli import sagebridge
from tests.support.kafka import Collector

ACCOUNT, JANE = "001Dn00000ACMEaIAG", "003Dn00000JANE1IAG"
KEYS = {"ARDivisionNo": "01", "CustomerNo": "ACME", "ContactCode": "JSMITH"}
SEED_HINT = "sagebridge crm seed salesforce_contact FILE"


@pytest.fixture
def crm_contracts(tmp_path: Path) -> Path:
    return contracts_with_xref(
        tmp_path, accounts=[(ACCOUNT, "01", "ACME")], contacts=[(JANE, "JSMITH", "01", "ACME")]
    )


class Feed:
    """Sends change events to the running service and collects their replies."""

    def __init__(self, bootstrap: str, topics: Topics, collector: Collector) -> None:
        self._bootstrap, self._topics, self._collector = bootstrap, topics, collector

    async def send(self, *events: tuple[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Produce ``(event_id, payload)`` in order, keyed by the record id; the replies."""
        await produce(
            self._bootstrap,
            self._topics.events,
            [(JANE.encode(), envelope(event_id, payload)) for event_id, payload in events],
        )
        wanted = {event_id for event_id, _ in events}
        replies = await self._collector.wait_for_events(self._topics.replies, wanted)
        return {r.json()["event_id"]: r.json() for r in replies if r.json()["event_id"] in wanted}


@pytest.fixture
def feed(kafka_bootstrap: str, topics: Topics, collector: Collector) -> Feed:
    return Feed(kafka_bootstrap, topics, collector)


def last_name(new: str) -> dict[str, Any]:
    """A contact's last name changed: only that component, as Salesforce sends it."""
    return change_event(
        "UPDATE",
        [JANE],
        changed=["Name.LastName", "LastModifiedDate"],
        Name={"LastName": new},
        LastModifiedDate="2026-12-02T09:30:00.000Z",
    )


async def sent(sandbox: Any) -> list[dict[str, Any]]:
    return [r["record"] for r in await stored_records(sandbox, "/customerContacts")]


async def test_a_last_name_update_sends_the_rebuilt_name(
    running_service: Any, crm_contracts: Path, feed: Feed, sandbox: Any
) -> None:
    async with running_service(contracts_dir=crm_contracts):
        replies = await feed.send(
            ("create", created_contact(JANE, ACCOUNT)), ("rename", last_name("Birch"))
        )
    assert [replies[e]["response"] for e in ("create", "rename")] == ["SUCCESS", "SUCCESS"]
    created, renamed = await sent(sandbox)
    assert created["ContactName"] == "Jane Smith"
    assert renamed == {**KEYS, "ContactName": "Jane Birch"}  # untouched elements left out


async def test_without_an_image_the_update_is_refused_until_seeded(
    running_service: Any,
    crm_contracts: Path,
    feed: Feed,
    sandbox: Any,
    service_env: dict[str, str],
    tmp_path: Path,
) -> None:
    async with running_service(contracts_dir=crm_contracts):
        refused = (await feed.send(("rename-1", last_name("Birch"))))["rename-1"]
    assert refused["response"] == "ERROR" and refused["stage"] == "validation"
    assert SEED_HINT in refused["message"], refused["message"]
    assert await sent(sandbox) == []

    # A Data Loader export: upper-case API names, every value quoted, "" for null.
    export = tmp_path / "contacts.csv"
    export.write_text(
        '"ID","ACCOUNTID","SALUTATION","FIRSTNAME","LASTNAME","TITLE","MAILINGCITY","PHONE",'
        '"CREATEDDATE"\r\n'
        f'"{JANE}","{ACCOUNT}","Ms.","Jane","Smith","Buyer, ""Senior""","Portland","",'
        '"2026-12-01T12:00:00.000Z"\r\n',
        encoding="utf-8",
    )
    env = {**service_env, "SAGEBRIDGE_CONTRACTS_DIR": str(crm_contracts)}
    seeded = await sagebridge(env, "crm", "seed", "salesforce_contact", str(export))
    assert "1 rows, 1 images written" in seeded.out, seeded.out

    async with running_service(contracts_dir=crm_contracts):
        replies = await feed.send(("rename-2", last_name("Birch")))
    assert replies["rename-2"]["response"] == "SUCCESS", replies
    assert await sent(sandbox) == [{**KEYS, "ContactName": "Jane Birch"}]


async def test_nulled_fields_clear_the_element_in_sage(
    running_service: Any, crm_contracts: Path, feed: Feed, sandbox: Any
) -> None:
    create = created_contact(JANE, ACCOUNT)  # made first: its commit number is the lower
    cleared = change_event(
        "UPDATE",
        [JANE],
        changed=["Name.FirstName", "Phone", "LastModifiedDate"],
        nulled=["Name.FirstName", "Phone"],
        LastModifiedDate="2026-12-02T09:30:00.000Z",
    )
    async with running_service(contracts_dir=crm_contracts):
        replies = await feed.send(("create", create), ("clear", cleared))
    assert replies["clear"]["response"] == "SUCCESS", replies
    records = await sent(sandbox)
    assert records[-1] == {**KEYS, "ContactName": "Smith", "TelephoneNo1": None}, records


async def test_a_delete_drops_the_image(
    running_service: Any, crm_contracts: Path, feed: Feed, sandbox: Any
) -> None:
    async with running_service(contracts_dir=crm_contracts):
        replies = await feed.send(
            ("create", created_contact(JANE, ACCOUNT)),
            ("delete", change_event("DELETE", [JANE])),
            ("rename", last_name("Birch")),
        )
    assert replies["delete"]["stage"] == "route"  # not sent, as before
    assert replies["rename"]["stage"] == "validation"
    assert SEED_HINT in replies["rename"]["message"]


async def test_images_from_before_a_loss_of_redis_data_are_not_used(
    running_service: Any,
    crm_contracts: Path,
    feed: Feed,
    sandbox: Any,
    redis: Redis,
    redis_prefix: str,
) -> None:
    async with running_service(contracts_dir=crm_contracts):
        await feed.send(("create", created_contact(JANE, ACCOUNT)))
    image_key = key(redis_prefix, "image", "salesforce_contact", JANE)
    assert await redis.exists(image_key)
    # Redis failed over to a replica that still had the image but lost later writes: a loss
    # was declared (a fresh epoch), so nothing written before it may be trusted.
    await redis.set(key(redis_prefix, "epoch"), "declared-after-a-loss")
    async with running_service(contracts_dir=crm_contracts):
        replies = await feed.send(("rename", last_name("Birch")))
    assert replies["rename"]["stage"] == "validation"
    assert SEED_HINT in replies["rename"]["message"]
    assert len(await sent(sandbox)) == 1


async def test_an_older_change_replayed_never_rolls_the_image_back(
    running_service: Any, crm_contracts: Path, feed: Feed, sandbox: Any
) -> None:
    create = created_contact(JANE, ACCOUNT)  # commit numbers rise in the order made
    birch, cole = last_name("Birch"), last_name("Cole")
    first_name = change_event(
        "UPDATE", [JANE], changed=["Name.FirstName"], Name={"FirstName": "Janet"}
    )
    async with running_service(contracts_dir=crm_contracts):
        await feed.send(("create", create), ("birch", birch))
        await feed.send(("cole", cole))
        # "birch" again, as a dead-letter replay would bring it: older than the image.
        replayed = await feed.send(("birch-again", birch), ("first-name", first_name))
    assert replayed["birch-again"]["response"] == "SUCCESS"
    records = await sent(sandbox)
    assert records[-2] == {**KEYS, "ContactName": "Jane Cole"}  # built from the newer image
    assert records[-1] == {**KEYS, "ContactName": "Janet Cole"}


async def test_an_image_over_the_bound_is_refused_and_the_feed_goes_on(
    running_service: Any,
    crm_contracts: Path,
    feed: Feed,
    sandbox: Any,
    collector: Collector,
    topics: Topics,
) -> None:
    huge = created_contact(JANE, ACCOUNT, Description="x" * 2_000)
    async with running_service(contracts_dir=crm_contracts, image_max_bytes=1_024):
        replies = await feed.send(("huge", huge), ("normal", created_contact(JANE, ACCOUNT)))
        [letter] = await collector.wait_for(topics.dlt, 1)
    assert replies["huge"]["stage"] == "validation"
    assert "SAGEBRIDGE_IMAGE_MAX_BYTES" in replies["huge"]["message"]
    assert replies["normal"]["response"] == "SUCCESS"
    assert letter.key == JANE.encode()
    assert len(await sent(sandbox)) == 1
