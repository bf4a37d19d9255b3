"""Deciding whether a row the Connector returns is the record we would have sent."""

from __future__ import annotations

from service.connector.lookup import matches


def test_same_values_match_even_with_extra_columns_in_sage() -> None:
    assert matches({"A": "1", "B": "x", "DateUpdated": "20261122"}, {"A": "1", "B": "x"})


def test_numbers_compare_as_numbers() -> None:
    assert matches({"CreditLimit": "12.50"}, {"CreditLimit": 12.5})
    assert not matches({"CreditLimit": "12.51"}, {"CreditLimit": 12.5})


def test_a_changed_or_missing_value_does_not_match() -> None:
    assert not matches({"A": "1", "B": "y"}, {"A": "1", "B": "x"})
    assert not matches({"A": "1"}, {"A": "1", "B": "x"})
    assert not matches({"A": None}, {"A": False})
