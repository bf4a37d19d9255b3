"""Later copies of an event wait, unbegun, for the open copy's conclusion, in arrival order."""

from __future__ import annotations

from service.lanes.copies import LaterCopies


def test_a_later_copy_waits_for_the_open_one_and_is_handed_back_when_it_concludes() -> None:
    copies: LaterCopies[str, str] = LaterCopies()
    assert copies.open_or_wait("inv-5", "first")
    assert copies.open_or_wait("inv-6", "other event")
    assert not copies.open_or_wait("inv-5", "second")
    assert not copies.open_or_wait("inv-5", "third")
    assert len(copies) == 2
    assert copies.conclude("inv-5") == ["second", "third"]
    assert copies.open_or_wait("inv-5", "second"), "taken in again, the first reopens it"
    assert not copies.open_or_wait("inv-5", "third")
    assert copies.conclude("inv-6") == []


def test_withdrawn_copies_leave_and_the_rest_keep_waiting() -> None:
    copies: LaterCopies[str, str] = LaterCopies()
    copies.open_or_wait("inv-5", "p0 first")
    copies.open_or_wait("inv-5", "p1 copy")
    copies.open_or_wait("inv-5", "p0 copy")
    assert copies.withdraw(lambda copy: copy.startswith("p1")) == ["p1 copy"]
    assert copies.conclude("inv-5") == ["p0 copy"]
