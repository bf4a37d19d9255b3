"""Redis key parts are escaped so that a ':' inside a part is never read as a separator."""

from __future__ import annotations

import pytest

from service.state.keys import KeysUnder, escape, key, unescape


@pytest.mark.parametrize("part", ["ACME", "A:x", "x:e", "100%", "%3A", "::", "", "é:%25"])
def test_escaping_round_trips(part: str) -> None:
    assert unescape(escape(part)) == part
    assert ":" not in escape(part)


def test_distinct_parts_make_distinct_keys() -> None:
    assert key("p", "ledger", "1", "A", "x:e") != key("p", "ledger", "1", "A:x", "e")
    assert key("p", "ledger", "1", "A%3Ax", "e") != key("p", "ledger", "1", "A:x", "e")


def test_plain_parts_keep_the_names_written_before_escaping() -> None:
    assert (
        key("sagebridge", "ledger", "1001", "ACME", "inv-1") == "sagebridge:ledger:1001:ACME:inv-1"
    )


@pytest.mark.parametrize("last", ["inv-1", "x:e", "100%", ""])
def test_keys_under_a_kept_head_are_the_keys_named_in_full(last: str) -> None:
    keys = KeysUnder("p", "ledger")
    assert keys.key(("1", "A:x"), "first") == key("p", "ledger", "1", "A:x", "first")
    assert keys.key(("1", "A:x"), last) == key("p", "ledger", "1", "A:x", last)


def test_many_keys_at_once_are_the_keys_named_one_by_one() -> None:
    entries = [(("1", "A:x"), "inv-1", "digest"), (("2", "B"), "x:e", 3), (("1", "A:x"), "100%")]
    assert KeysUnder("p", "ledger").keys(entries) == [
        key("p", "ledger", *head, last) for head, last, *_ in entries
    ]
