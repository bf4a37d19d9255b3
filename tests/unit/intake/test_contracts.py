"""Contract rules: what each element type accepts, exactly at and just past its limits.

The contracts here are small inline copies of seed elements, so these tests pin the rules and
not the shipped data files (``test_contract_files.py`` pins those).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.errors import ContractFileError
from service.intake.contracts import (
    Contract,
    ErrorCode,
    FieldError,
    describe_errors,
    load_contracts,
)


def _el(name: str, kind: str, length: str) -> dict[str, str]:
    return {"name": name, "description": name, "type": kind, "length": length}


CONTACT = Contract.from_data(
    "ar_customer_contact",
    {
        "table": "AR Customer Contact",
        "keys": ["ARDivisionNo", "CustomerNo", "ContactCode"],
        "elements": [
            _el("ARDivisionNo", "String", "2"),
            _el("CustomerNo", "String", "20"),
            _el("ContactCode", "String", "10"),
            _el("ContactName", "String", "30"),
            _el("EmailAddress", "String", "50"),
        ],
    },
)
CUSTOMER = Contract.from_data(
    "ar_customer",
    {
        "table": "AR Customer",
        "keys": ["ARDivisionNo", "CustomerNo"],
        "elements": [
            _el("ARDivisionNo", "String", "2"),
            _el("CustomerNo", "String", "20"),
            _el("CustomerName", "String", "30"),
            _el("AvgDaysOverDue", "Numeric", "3"),
            _el("CreditLimit", "Numeric", "14.2"),
        ],
    },
)
CONTACT_KEYS = {"ARDivisionNo": "01", "CustomerNo": "ABC", "ContactCode": "JSMITH"}
CUSTOMER_KEYS = {"ARDivisionNo": "01", "CustomerNo": "ABC"}


def contact_errors(**fields: Any) -> list[FieldError]:
    return CONTACT.check({**CONTACT_KEYS, **fields})


def customer_errors(**fields: Any) -> list[FieldError]:
    return CUSTOMER.check({**CUSTOMER_KEYS, **fields})


# --- String n -------------------------------------------------------------------------------------


def test_valid_record_has_no_errors() -> None:
    assert contact_errors(ContactName="Jane Smith", EmailAddress="jane@example.com") == []


@pytest.mark.parametrize(
    "char",
    [
        pytest.param("x", id="ascii"),
        pytest.param("é", id="precomposed-accent"),
        pytest.param("e\u0301", id="decomposed-accent"),
        pytest.param("😀", id="emoji"),
        pytest.param("漢", id="cjk"),
    ],
)
def test_string_of_exactly_n_characters_passes(char: str) -> None:
    assert contact_errors(ContactName=char * 30) == []


@pytest.mark.parametrize(
    "char",
    [
        pytest.param("x", id="ascii"),
        pytest.param("é", id="precomposed-accent"),
        pytest.param("e\u0301", id="decomposed-accent"),
        pytest.param("😀", id="emoji"),
        pytest.param("漢", id="cjk"),
    ],
)
def test_string_of_n_plus_one_characters_is_too_long(char: str) -> None:
    assert contact_errors(ContactName=char * 31) == [
        FieldError("ContactName", ErrorCode.TOO_LONG, limit=30, actual=31)
    ]


def test_short_string_limit_applies_to_key_elements_too() -> None:
    assert contact_errors(ARDivisionNo="001") == [
        FieldError("ARDivisionNo", ErrorCode.TOO_LONG, limit=2, actual=3)
    ]


def test_too_long_reports_the_actual_character_count() -> None:
    assert contact_errors(ContactName="x" * 41) == [
        FieldError("ContactName", ErrorCode.TOO_LONG, limit=30, actual=41)
    ]


@pytest.mark.parametrize("value", [12, 1.5, True, False, ["Jane"], {"first": "Jane"}])
def test_non_string_to_string_element_is_wrong_type(value: Any) -> None:
    assert contact_errors(ContactName=value) == [FieldError("ContactName", ErrorCode.WRONG_TYPE)]


@pytest.mark.parametrize(
    ("value", "position"),
    [
        pytest.param("Jane\x00Smith", 4, id="nul"),
        pytest.param("a\x1bb", 1, id="escape"),
        pytest.param("del\x7f", 3, id="del"),
        pytest.param("c1\x85", 2, id="c1-next-line"),
        pytest.param("é\x07", 1, id="bell-after-non-ascii"),
    ],
)
def test_control_characters_are_refused_with_their_position(value: str, position: int) -> None:
    assert contact_errors(ContactName=value) == [
        FieldError("ContactName", ErrorCode.CONTROL_CHARACTER, actual=position)
    ]


@pytest.mark.parametrize("value", ["a\tb", "line\nbreak", "cr\r\nlf", "", " "])
def test_tab_newlines_and_blanks_are_accepted(value: str) -> None:
    assert contact_errors(ContactName=value) == []


def test_a_short_printable_string_is_still_checked_for_its_element() -> None:
    assert contact_errors(NotAnElement="ok") == [
        FieldError("NotAnElement", ErrorCode.UNKNOWN_FIELD)
    ]
    assert customer_errors(CreditLimit="12x") == [FieldError("CreditLimit", ErrorCode.NOT_NUMERIC)]
    assert customer_errors(CreditLimit="1234567890123") == [
        FieldError("CreditLimit", ErrorCode.TOO_MANY_DIGITS, limit=12, actual=13)
    ]


# --- Numeric p.s (CreditLimit Numeric 14.2: 12 integer digits, 2 decimals) ------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("999999999999.99", id="12-digits-2-decimals"),
        pytest.param("-999999999999.99", id="negative-at-limit"),
        pytest.param("999999999999", id="12-digits-no-fraction"),
        pytest.param("123.45", id="numeric-string"),
        pytest.param("0", id="zero"),
        pytest.param("-0.5", id="negative-fraction"),
        pytest.param("1.2300000", id="trailing-fraction-zeros-do-not-count"),
        pytest.param("0000000000000001.5", id="leading-zeros-do-not-count"),
        pytest.param(123, id="json-int"),
        pytest.param(-42, id="json-negative-int"),
        pytest.param(123.45, id="json-float"),
        pytest.param(999999999999.99, id="json-float-at-limit"),
        pytest.param(1.0, id="json-float-whole"),
    ],
)
def test_numeric_within_precision_and_scale_passes(value: Any) -> None:
    assert customer_errors(CreditLimit=value) == []


@pytest.mark.parametrize(
    ("value", "actual"),
    [
        ("1234567890123", 13),
        ("-1234567890123.00", 13),
        (1234567890123, 13),
        (1e12, 13),
        (1e16, 17),  # a float whose repr uses an exponent is judged by its value
    ],
)
def test_numeric_with_too_many_integer_digits_is_reported(value: Any, actual: int) -> None:
    assert customer_errors(CreditLimit=value) == [
        FieldError("CreditLimit", ErrorCode.TOO_MANY_DIGITS, limit=12, actual=actual)
    ]


@pytest.mark.parametrize(
    ("value", "actual"), [("1.234", 3), ("-0.001", 3), (0.125, 3), ("1.23450", 4)]
)
def test_numeric_with_too_many_decimals_is_reported(value: Any, actual: int) -> None:
    assert customer_errors(CreditLimit=value) == [
        FieldError("CreditLimit", ErrorCode.TOO_MANY_DECIMALS, limit=2, actual=actual)
    ]


@pytest.mark.parametrize(
    "value",
    [
        "1e3",
        "1E3",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "",
        " 12",
        "12 ",
        "1,000",
        "12abc",
        "0x10",
        float("nan"),
        float("inf"),
        float("-inf"),
    ],
)
def test_value_that_is_not_a_plain_decimal_is_not_numeric(value: Any) -> None:
    assert customer_errors(CreditLimit=value) == [FieldError("CreditLimit", ErrorCode.NOT_NUMERIC)]


@pytest.mark.parametrize("value", ["１２", "١٢"], ids=["fullwidth", "arabic-indic"])
def test_non_ascii_digits_are_not_numeric(value: str) -> None:
    assert customer_errors(CreditLimit=value) == [FieldError("CreditLimit", ErrorCode.NOT_NUMERIC)]


@pytest.mark.parametrize("value", [1e-7, 1.5e-7])
def test_tiny_float_has_too_many_decimals(value: float) -> None:
    errors = customer_errors(CreditLimit=value)
    assert [e.code for e in errors] == [ErrorCode.TOO_MANY_DECIMALS]


@pytest.mark.parametrize("value", [True, False, [1], {"amount": 1}])
def test_non_number_json_type_to_numeric_element_is_wrong_type(value: Any) -> None:
    assert customer_errors(CreditLimit=value) == [FieldError("CreditLimit", ErrorCode.WRONG_TYPE)]


# --- Numeric n (AvgDaysOverDue Numeric 3: scale 0) ------------------------------------------------


@pytest.mark.parametrize("value", ["999", 999, "-999", "0", "007", "5.0"])
def test_numeric_without_scale_accepts_up_to_n_digits(value: Any) -> None:
    assert customer_errors(AvgDaysOverDue=value) == []


@pytest.mark.parametrize("value", ["1000", 1000])
def test_numeric_without_scale_rejects_n_plus_one_digits(value: Any) -> None:
    assert customer_errors(AvgDaysOverDue=value) == [
        FieldError("AvgDaysOverDue", ErrorCode.TOO_MANY_DIGITS, limit=3, actual=4)
    ]


@pytest.mark.parametrize("value", ["1.5", 1.5])
def test_numeric_without_scale_rejects_any_decimal(value: Any) -> None:
    assert customer_errors(AvgDaysOverDue=value) == [
        FieldError("AvgDaysOverDue", ErrorCode.TOO_MANY_DECIMALS, limit=0, actual=1)
    ]


# --- keys, unknown fields, null -------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"ARDivisionNo": "01", "ContactCode": "JSMITH"}, id="absent"),
        pytest.param({"ARDivisionNo": "01", "CustomerNo": None, "ContactCode": "J"}, id="null"),
        pytest.param({"ARDivisionNo": "01", "CustomerNo": "", "ContactCode": "J"}, id="empty"),
    ],
)
def test_missing_key_element_is_reported_once(record: dict[str, Any]) -> None:
    assert CONTACT.check(record) == [FieldError("CustomerNo", ErrorCode.MISSING)]


def test_unknown_field_is_reported() -> None:
    assert contact_errors(Nickname="JJ") == [FieldError("Nickname", ErrorCode.UNKNOWN_FIELD)]


def test_field_names_are_case_sensitive() -> None:
    assert contact_errors(contactname="Jane") == [
        FieldError("contactname", ErrorCode.UNKNOWN_FIELD)
    ]


@pytest.mark.parametrize("field", ["ContactName", "EmailAddress"])
def test_null_is_accepted_for_a_non_key_string_element(field: str) -> None:
    assert contact_errors(**{field: None}) == []


@pytest.mark.parametrize("field", ["CreditLimit", "AvgDaysOverDue"])
def test_null_is_accepted_for_a_non_key_numeric_element(field: str) -> None:
    assert customer_errors(**{field: None}) == []


def test_every_bad_field_is_reported_in_one_call() -> None:
    record = {
        "ARDivisionNo": "01",
        "ContactCode": "JSMITH",
        "ContactName": "x" * 41,
        "EmailAddress": 7,
        "Nickname": "JJ",
    }
    assert sorted(CONTACT.check(record), key=lambda e: e.field) == [
        FieldError("ContactName", ErrorCode.TOO_LONG, limit=30, actual=41),
        FieldError("CustomerNo", ErrorCode.MISSING),
        FieldError("EmailAddress", ErrorCode.WRONG_TYPE),
        FieldError("Nickname", ErrorCode.UNKNOWN_FIELD),
    ]


def test_numeric_and_string_errors_are_reported_together() -> None:
    errors = customer_errors(CustomerName="x" * 31, CreditLimit="1.234", AvgDaysOverDue="1000")
    assert {(e.field, e.code) for e in errors} == {
        ("CustomerName", ErrorCode.TOO_LONG),
        ("CreditLimit", ErrorCode.TOO_MANY_DECIMALS),
        ("AvgDaysOverDue", ErrorCode.TOO_MANY_DIGITS),
    }


# --- FieldError output ----------------------------------------------------------------------------


def test_as_dict_has_field_code_limit_and_actual() -> None:
    error = FieldError("ContactName", ErrorCode.TOO_LONG, limit=30, actual=41)
    assert error.as_dict() == {
        "field": "ContactName",
        "code": "too_long",
        "limit": 30,
        "actual": 41,
    }


def test_as_dict_is_plain_json() -> None:
    error = FieldError("ContactName", ErrorCode.TOO_LONG, limit=30, actual=41)
    assert json.loads(json.dumps(error.as_dict())) == error.as_dict()
    assert type(error.as_dict()["code"]) is str


def test_as_dict_leaves_out_limit_and_actual_when_they_do_not_apply() -> None:
    assert FieldError("CustomerNo", ErrorCode.MISSING).as_dict() == {
        "field": "CustomerNo",
        "code": "missing",
    }


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            FieldError("ContactName", ErrorCode.TOO_LONG, 30, 41),
            "ContactName: at most 30 characters, got 41",
        ),
        (
            FieldError("CreditLimit", ErrorCode.TOO_MANY_DIGITS, 12, 13),
            "CreditLimit: at most 12 digits before the decimal point, got 13",
        ),
        (
            FieldError("CreditLimit", ErrorCode.TOO_MANY_DECIMALS, 2, 3),
            "CreditLimit: at most 2 decimal places, got 3",
        ),
        (
            FieldError("CreditLimit", ErrorCode.NOT_NUMERIC),
            "CreditLimit: not a plain decimal number",
        ),
        (
            FieldError("CustomerNo", ErrorCode.MISSING),
            "CustomerNo: required key element is missing",
        ),
        (FieldError("Nickname", ErrorCode.UNKNOWN_FIELD), "Nickname: not an element of this table"),
        (
            FieldError("ContactName", ErrorCode.WRONG_TYPE),
            "ContactName: wrong JSON type for this element",
        ),
    ],
)
def test_describe_is_a_sentence_naming_the_field(error: FieldError, text: str) -> None:
    assert error.describe() == text


def test_describe_errors_joins_all_problems_on_one_line() -> None:
    errors = [
        FieldError("ContactName", ErrorCode.TOO_LONG, 30, 41),
        FieldError("CustomerNo", ErrorCode.MISSING),
    ]
    assert describe_errors(errors) == (
        "ContactName: at most 30 characters, got 41; CustomerNo: required key element is missing"
    )


# --- identity -------------------------------------------------------------------------------------


def test_identity_is_the_key_values_in_key_order() -> None:
    record = {
        "ContactName": "Jane",
        "ContactCode": "JSMITH",
        "CustomerNo": "ABC",
        "ARDivisionNo": "01",
    }
    assert CONTACT.identity(record) == ("01", "ABC", "JSMITH")


def test_identity_ignores_non_key_fields() -> None:
    a = {**CONTACT_KEYS, "ContactName": "Jane"}
    b = {**CONTACT_KEYS, "ContactName": "Janet"}
    assert CONTACT.identity(a) == CONTACT.identity(b)


def test_identity_of_a_record_missing_a_key_has_none_in_its_place() -> None:
    record = {"ARDivisionNo": "01", "ContactCode": "JSMITH"}
    assert CONTACT.identity(record) == ("01", None, "JSMITH")


def test_identity_under_one_key_is_a_tuple_of_its_value() -> None:
    one = Contract.from_data("one", {"keys": ["Code"], "elements": [_el("Code", "String", "10")]})
    assert one.identity({"Code": "A1"}) == ("A1",)
    assert one.identity({}) == (None,)


def test_identity_is_none_for_a_contract_without_keys() -> None:
    keyless = Contract.from_data("free", {"elements": [_el("Note", "String", "10")]})
    assert keyless.identity({"Note": "hi"}) is None


# --- malformed contract data ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"elements": [_el("When", "Date", "8")]}, id="unknown-type"),
        pytest.param({"elements": [_el("Name", "String", "abc")]}, id="non-numeric-length"),
        pytest.param({"elements": [_el("Amount", "Numeric", "14.x")]}, id="bad-precision"),
        pytest.param({"elements": [{"name": "Name", "length": "3"}]}, id="element-without-type"),
        pytest.param({"elements": [{"type": "String", "length": "3"}]}, id="element-without-name"),
        pytest.param(
            {"keys": ["Code"], "elements": [_el("Name", "String", "3")]}, id="key-not-an-element"
        ),
        pytest.param(
            {"elements": [_el("Name", "String", "3"), _el("Name", "String", "4")]},
            id="duplicate-element",
        ),
    ],
)
def test_malformed_contract_data_raises_contract_file_error(raw: dict[str, Any]) -> None:
    with pytest.raises(ContractFileError):
        Contract.from_data("broken", {"table": "Broken", **raw})


def test_contract_file_error_names_the_table_and_element() -> None:
    raw = {"table": "Broken", "elements": [_el("Name", "String", "3"), _el("Name", "String", "4")]}
    with pytest.raises(ContractFileError, match=r"^Broken: element Name listed twice$"):
        Contract.from_data("broken", raw)


def test_load_contracts_rejects_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ContractFileError, match=r"bad\.yaml"):
        load_contracts(tmp_path)


def test_load_contracts_names_each_contract_after_its_file(tmp_path: Path) -> None:
    (tmp_path / "sy_country_code.yaml").write_text(
        "table: SY Country Code\nkeys: [CountryCode]\n"
        "elements:\n"
        "  - {name: CountryCode, description: Country Code, type: String, length: '3'}\n",
        encoding="utf-8",
    )
    contracts = load_contracts(tmp_path)
    assert list(contracts) == ["sy_country_code"]
    assert contracts["sy_country_code"].table == "SY Country Code"
