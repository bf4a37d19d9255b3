"""``sagebridge validate --explain`` with record images, as the command runs: a seeded image
read from the real Redis (and left as it was), and a Redis that does not answer."""

from __future__ import annotations

from pathlib import Path

import orjson
from redis.asyncio import Redis

from service.dev.salesforce import change_event, contracts_with_xref, envelope
from service.state.epoch import Epoch
from service.state.keys import key
from tests.support.cli import sagebridge

ACCOUNT, JANE = "001Dn00000ACMEaIAG", "003Dn00000JANE1IAG"


def setup(tmp_path: Path) -> tuple[Path, Path]:
    contracts = contracts_with_xref(
        tmp_path, accounts=[(ACCOUNT, "01", "ACME")], contacts=[(JANE, "JSMITH", "01", "ACME")]
    )
    rename = change_event("UPDATE", [JANE], changed=["Name.LastName"], Name={"LastName": "Birch"})
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(orjson.dumps(envelope("sf-rename", rename)) + b"\n")
    return contracts, feed


async def test_explain_shows_the_stored_image_and_writes_nothing(
    tmp_path: Path, redis: Redis, redis_url: str, redis_prefix: str
) -> None:
    contracts, feed = setup(tmp_path)
    await Epoch(redis, redis_prefix, quarantine_s=1.0).establish()  # as a running service
    export = tmp_path / "contacts.jsonl"
    export.write_bytes(
        orjson.dumps({"Id": JANE, "AccountId": ACCOUNT, "FirstName": "Jane", "LastName": "Smith"})
    )
    env = {
        "SAGEBRIDGE_CONTRACTS_DIR": str(contracts),
        "SAGEBRIDGE_REDIS_URL": redis_url,
        "SAGEBRIDGE_REDIS_PREFIX": redis_prefix,
    }
    await sagebridge(env, "crm", "seed", "salesforce_contact", str(export))
    stored = await redis.get(key(redis_prefix, "image", "salesforce_contact", JANE))

    done = await sagebridge(env, "validate", "--explain", str(feed))

    lines = done.out.splitlines()
    assert lines[0] == (
        f"line 1 (sf-rename): image of salesforce_contact {JANE}: "
        f'{{"AccountId":"{ACCOUNT}","Name":{{"FirstName":"Jane","LastName":"Smith"}}}}'
    )
    assert lines[1] == (
        'line 1 (sf-rename): /customerContacts <- {"ARDivisionNo":"01","CustomerNo":"ACME",'
        '"ContactCode":"JSMITH","ContactName":"Jane Birch"}'
    )
    assert await redis.get(key(redis_prefix, "image", "salesforce_contact", JANE)) == stored


async def test_without_redis_every_record_starts_without_an_image(tmp_path: Path) -> None:
    contracts, feed = setup(tmp_path)
    env = {
        "SAGEBRIDGE_CONTRACTS_DIR": str(contracts),
        "SAGEBRIDGE_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    done = await sagebridge(env, "validate", "--explain", str(feed), ok=False)
    assert "record images: Redis does not answer" in done.out
    assert "sagebridge crm seed salesforce_contact FILE" in done.out
    assert done.out.splitlines()[-1] == "1 events, 1 invalid"
