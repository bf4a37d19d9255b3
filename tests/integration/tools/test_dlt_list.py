"""``sagebridge dlt list`` against the real broker, through the command line: counts by stage,
tenant and type, the newest letters, each filter, ``--json``, and reading without consuming."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.dev.topics import Topics
from service.tools.dead_letters import iso
from tests.integration.tools.letters import START, sample, write
from tests.support.cli import sagebridge


@pytest.fixture
async def letters(kafka_bootstrap: str, topics: Topics) -> None:
    await write(kafka_bootstrap, topics.dlt, topics.events, sample())


async def test_text_listing_counts_then_shows_the_newest(
    letters: None, service_env: dict[str, str], topics: Topics
) -> None:
    ran = await sagebridge(service_env, "dlt", "list", "--limit", "2")
    lines = ran.out.splitlines()
    assert lines[0] == f"4 dead letter(s) on {topics.dlt}"
    assert set(lines[1].removeprefix("by stage: ").split(", ")) == {
        "validation 1",
        "route 1",
        "unknown_outcome 1",
        "parse 1",
    }
    assert lines[2].startswith("by tenant: 1001/ACME 2, ")
    assert set(lines[2].split(", ")[1:]) == {"2002/BETA 1", "unknown 1"}
    assert lines[3].startswith("by type: contact.upsert 2, ")
    assert lines[4] == "newest 2:"
    parse_line, invoice_line = lines[5:]
    assert parse_line.startswith(f"{iso(START + timedelta(hours=3))}  parse  -  ")
    assert invoice_line.startswith(
        f"{iso(START + timedelta(hours=2))}  unknown_outcome  inv-1  {topics.events}/0@2  "
        "1001/ACME  ar_invoice.create  refused at unknown_outcome"
    )


@pytest.mark.parametrize(
    ("options", "newest"),
    [
        ([], ["junk", "inv-1", "beta-1", "c-1"]),
        (["--stage", "unknown_outcome"], ["inv-1"]),
        (["--stage", "route", "--stage", "validation"], ["beta-1", "c-1"]),
        (["--tenant", "2002/BETA"], ["beta-1"]),
        (["--tenant", "1001/ACME"], ["inv-1", "c-1"]),
        (["--type", "ar_invoice.create"], ["inv-1"]),
        (["--since", iso(START + timedelta(minutes=90))], ["junk", "inv-1"]),
        (["--limit", "1"], ["junk"]),
    ],
    ids=["all", "stage", "two-stages", "tenant", "default-tenant", "type", "since", "limit"],
)
async def test_json_listing_with_each_filter(
    letters: None,
    service_env: dict[str, str],
    topics: Topics,
    options: list[str],
    newest: list[str],
) -> None:
    found = (await sagebridge(service_env, "dlt", "list", "--json", *options)).json()
    assert [letter["event_id"] or "junk" for letter in found["letters"]] == newest
    counted = 4 if options[:1] == ["--limit"] else len(newest)
    assert sum(found["counts"]["stage"].values()) == counted
    assert sum(found["counts"]["tenant"].values()) == counted
    assert sum(found["counts"]["type"].values()) == counted
    for letter in found["letters"]:
        assert set(letter) == {
            "event_id",
            "stage",
            "message",
            "tenant",
            "type",
            "topic",
            "partition",
            "offset",
            "time",
        }
        assert letter["topic"] == topics.events and letter["partition"] == 0


async def test_listing_consumes_nothing(
    letters: None, service_env: dict[str, str], kafka_bootstrap: str, topics: Topics
) -> None:
    """Two listings see the same letters, and a letter written after is seen by the next."""
    first = (await sagebridge(service_env, "dlt", "list", "--json")).json()
    assert first == (await sagebridge(service_env, "dlt", "list", "--json")).json()
    await write(kafka_bootstrap, topics.dlt, topics.events, sample()[:1])
    third = (await sagebridge(service_env, "dlt", "list", "--json")).json()
    assert third["counts"]["stage"]["validation"] == 2


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"SAGEBRIDGE_KAFKA_BOOTSTRAP": "<nowhere>"}, "cannot reach Kafka at"),
        ({"SAGEBRIDGE_DLT_TOPIC": "no-such-dead-letter-topic"}, "does not exist"),
    ],
    ids=["kafka-unreachable", "no-such-topic"],
)
async def test_trouble_is_one_line_and_a_non_zero_exit(
    service_env: dict[str, str], change: dict[str, str], says: str, nowhere: str
) -> None:
    change = {name: value.replace("<nowhere>", nowhere) for name, value in change.items()}
    ran = await sagebridge({**service_env, **change}, "dlt", "list", ok=False)
    assert ran.out == ""
    assert len(ran.err.splitlines()) == 1 and says in ran.err, ran.err
    assert ran.err.startswith("sagebridge dlt list: ")


@pytest.mark.parametrize(
    "options", [["--since", "yesterday"], ["--tenant", "ACME"], ["--limit", "many"]]
)
async def test_a_bad_argument_is_one_line(service_env: dict[str, str], options: list[str]) -> None:
    ran = await sagebridge(service_env, "dlt", "list", *options, ok=False)
    assert ran.code == 2 and len(ran.err.splitlines()) == 1, ran.err
