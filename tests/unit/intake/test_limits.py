"""The one depth and size rule (``service.intake.limits``): a free-form record is checked against it
with a clear ``validation`` error, and every record the check lets through can be fingerprinted
for the ledger and encoded for the Cloud Connector."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.intake.contracts import ErrorCode, check_free_form
from service.intake.limits import MAX_DEPTH, MAX_PATH_CHARS, MAX_VALUES
from service.state.ledger import fingerprint


def nested(depth: int, key: str = "k", inner: Any = "leaf") -> dict[str, Any]:
    """An object ``depth`` levels deep (the record itself is level 1)."""
    record: Any = inner
    for _ in range(depth):
        record = {key: record}
    assert isinstance(record, dict)
    return record


def test_a_record_at_the_depth_limit_passes_and_one_level_more_is_too_deep() -> None:
    assert check_free_form(nested(MAX_DEPTH)) == []
    [error] = check_free_form({"Lines": [nested(MAX_DEPTH - 1)]})
    assert error.code is ErrorCode.TOO_DEEP and error.limit == MAX_DEPTH
    assert error.field.startswith("Lines[0].k.k")
    assert error.describe().endswith(f"nested more than {MAX_DEPTH} levels deep")


def test_too_many_values_is_an_error_naming_the_limit() -> None:
    assert check_free_form({"Lines": [0] * (MAX_VALUES - 2)}) == []
    [error] = check_free_form({"Lines": [0] * (MAX_VALUES - 1)})
    assert error.code is ErrorCode.TOO_MANY_VALUES and error.limit == MAX_VALUES
    assert error.field == f"Lines[{MAX_VALUES - 2}]"


def test_a_long_path_is_echoed_by_its_start_and_end() -> None:
    record = nested(MAX_DEPTH - 1, key="K" * 74, inner={"Memo": "bell\x07"})
    [error] = check_free_form(record)
    assert error.code is ErrorCode.CONTROL_CHARACTER
    assert len(error.field) == MAX_PATH_CHARS + 1
    assert error.field.startswith("K" * 74 + ".") and error.field.endswith(".Memo")


@pytest.mark.parametrize("depth", [1, 2, MAX_DEPTH, MAX_DEPTH + 1, 254, 255, 400])
def test_every_record_the_check_lets_through_can_be_fingerprinted_and_sent(depth: int) -> None:
    """``orjson.dumps`` (the ledger's fingerprint, the Connector's body) refuses more than 254
    levels; a record the check passes must never get that far."""
    record = nested(depth)
    if check_free_form(record):
        return
    assert fingerprint(record)
    assert orjson.loads(orjson.dumps([record])) == [record]
