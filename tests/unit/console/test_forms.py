"""What a console filter or form accepts, and the sentence it gives when it does not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.console.forms import MAX_FILTER, BadInput, letter_query, tenant
from service.tenants import TenantKey


def test_the_filters_become_the_tools_letter_filter() -> None:
    query = letter_query(
        {"stage": "validation", "tenant": " 1001/ACME ", "since": "2026-12-01T08:00:00Z"}
    )
    assert query.chosen.stages == {"validation"}
    assert query.chosen.tenant == TenantKey("1001", "ACME")
    assert query.chosen.since == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert query.chosen.type is None and query.chosen.until is None
    assert query.typed["tenant"] == "1001/ACME"


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"type": "x" * (MAX_FILTER + 1)}, "at most 200 are taken"),
        ({"since": "yesterday"}, "not an ISO 8601 time"),
        ({"tenant": "ACME"}, "expected CUSTOMER/COMPANY"),
        ({"event_id": "e" * 1000}, "event_id is 1000 characters long"),
    ],
)
def test_bad_filters_are_refused_with_a_sentence(values: dict[str, object], says: str) -> None:
    with pytest.raises(BadInput, match=says):
        letter_query(values)


def test_a_missing_tenant_is_named() -> None:
    with pytest.raises(BadInput, match="tenant is missing"):
        tenant({})
