"""Dead letters as the tools see them: tenant and type read from the original value with the
envelope parser, the filters, and the TIME and C/CO arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from service.answers.outcomes import Origin, Outcome, Stage, Subject, dead_letter_headers
from service.tenants import TenantKey, parse_tenant_key
from service.tools.dead_letters import (
    DeadLetter,
    LetterFilter,
    describe,
    iso,
    parse_time,
)
from service.tools.dlt_list import Listing

DEFAULT = TenantKey("1001", "ACME")
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def letter(value: bytes | None, *, stage: Stage = Stage.ROUTE, at: datetime = NOON) -> DeadLetter:
    headers = dead_letter_headers(
        Subject("e-1", "e-1", None), Outcome.failure(stage, "why", attempts=2), Origin("in", 3, 7)
    )
    return describe(
        "dlt",
        0,
        5,
        int(at.timestamp() * 1000),
        b"k",
        value,
        dict(headers),
        default_tenant=DEFAULT,
        max_event_bytes=10_000,
    )


def value(**extra: object) -> bytes:
    return orjson.dumps({"event_id": "e-1", "type": "contact.upsert", "data": {}, **extra})


def test_headers_and_original_value_make_the_letter() -> None:
    found = letter(value(tenant={"customer": "2002", "company": "BETA"}))
    assert found.summary() == {
        "event_id": "e-1",
        "stage": "route",
        "message": "why",
        "tenant": "2002/BETA",
        "type": "contact.upsert",
        "topic": "in",
        "partition": 3,
        "offset": 7,
        "time": "2026-12-01T12:00:00.000Z",
    }


def test_an_event_naming_no_tenant_belongs_to_the_default_tenant() -> None:
    assert letter(value()).tenant == "1001/ACME"


@pytest.mark.parametrize("raw", [b"not json", None, b"[1]", value(tenant={"customer": "2002"})])
def test_what_does_not_parse_is_unknown(raw: bytes | None) -> None:
    found = letter(raw)
    assert found.tenant == "unknown"
    if raw is None or not raw.startswith(b"{"):
        assert found.type == "unknown"


def test_missing_headers_read_as_empty() -> None:
    found = describe("dlt", 0, 0, 0, None, None, {}, default_tenant=None, max_event_bytes=100)
    assert (found.event_id, found.stage, found.original_offset) == (None, "unknown", None)


@pytest.mark.parametrize(
    ("chosen", "matches"),
    [
        (LetterFilter(), True),
        (LetterFilter(stages={"route", "parse"}), True),
        (LetterFilter(stages={"parse"}), False),
        (LetterFilter(tenant=DEFAULT), True),
        (LetterFilter(tenant=TenantKey("2002", "BETA")), False),
        (LetterFilter(type="contact.upsert"), True),
        (LetterFilter(type="customer.upsert"), False),
        (LetterFilter(event_ids={"e-1", "e-2"}), True),
        (LetterFilter(event_ids={"e-2"}), False),
        (LetterFilter(since=NOON), True),
        (LetterFilter(since=NOON + timedelta(milliseconds=1)), False),
        (LetterFilter(until=NOON), False),
        (LetterFilter(until=NOON + timedelta(milliseconds=1)), True),
    ],
)
def test_filters(chosen: LetterFilter, matches: bool) -> None:
    assert chosen.matches(letter(value())) is matches


def test_times_are_iso_8601_and_utc_when_no_offset_is_given() -> None:
    assert parse_time("2026-12-01T12:00:00Z") == NOON
    assert parse_time("2026-12-01T13:00:00+01:00") == NOON
    assert parse_time("2026-12-01T12:00:00") == NOON
    assert iso(parse_time("2026-12-01T13:00:00+01:00")) == "2026-12-01T12:00:00.000Z"
    with pytest.raises(ValueError, match="not an ISO 8601 time: 'yesterday'"):
        parse_time("yesterday")


def test_tenants_are_customer_slash_company() -> None:
    assert parse_tenant_key("1001/ACME") == DEFAULT
    assert parse_tenant_key("a/b/ACME") == TenantKey("a/b", "ACME")
    for bad in ("ACME", "/ACME", "1001/"):
        with pytest.raises(ValueError, match="expected CUSTOMER/COMPANY"):
            parse_tenant_key(bad)


def test_a_listing_counts_everything_and_keeps_the_newest() -> None:
    listing = Listing(limit=2)
    for hour, stage in enumerate([Stage.ROUTE, Stage.PARSE, Stage.ROUTE, Stage.VALIDATION]):
        listing.add(letter(value(), stage=stage, at=NOON + timedelta(hours=hour)))
    shown = listing.as_json()
    assert shown["counts"] == {
        "stage": {"route": 2, "parse": 1, "validation": 1},
        "tenant": {"1001/ACME": 4},
        "type": {"contact.upsert": 4},
    }
    assert [letter["time"] for letter in shown["letters"]] == [
        "2026-12-01T15:00:00.000Z",
        "2026-12-01T14:00:00.000Z",
    ]
