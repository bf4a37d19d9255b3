"""The shipped contract and route files agree with the Sage documentation and with SPEC.

The element lists under ``contracts/tables/`` are transcribed by hand from the Cloud Connector's
"CustomerContacts Resource" page (``shared/seeds/customer-contacts-resource.txt``). A typo in a
length would let bad data through or refuse good data, so every element is compared with the
seed text character for character.
"""

from __future__ import annotations

import copy
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.intake.contracts import Contract, load_contracts
from service.intake.routes import DEFAULT_CONTRACTS_DIR, Lane, load_route_table

REPO = Path(__file__).resolve().parents[3]
TABLES_DIR = DEFAULT_CONTRACTS_DIR / "tables"
SEED_NAME = "customer-contacts-resource.txt"
SEED_CANDIDATES = (
    REPO.parent / "shared" / "seeds" / SEED_NAME,
    REPO / "docs" / "seeds" / SEED_NAME,  # a verbatim copy, for checkouts without shared/
)
SEED_TABLES = ("AR Customer Contact", "AR Customer", "AR Division", "SY Country Code", "SY ZipCode")


def parse_seed_tables(text: str, titles: tuple[str, ...] = SEED_TABLES) -> dict[str, list[str]]:
    """Table title -> its element lines (``name + description + type + length``), in order.

    A section is a line equal to a title, then an ``Element Name...`` header, then one line per
    element up to the next blank line.
    """
    lines = text.splitlines()
    tables: dict[str, list[str]] = {}
    for index, line in enumerate(lines):
        title = line.strip()
        if title not in titles:
            continue
        rest = list(lines[index + 1 :])
        while rest and not rest[0].strip():
            rest.pop(0)
        if not rest or not rest[0].startswith("Element Name"):
            continue  # the title mentioned in prose, not a table section
        elements = []
        for element_line in rest[1:]:
            if not element_line.strip():
                break
            elements.append(element_line.strip())
        tables[title] = elements
    return tables


def transcription_problems(contract: Contract, seed_lines: list[str]) -> list[str]:
    """Every way ``contract`` differs from the seed's element lines; empty when they agree."""
    problems = []
    elements = list(contract.elements.values())
    for position, (element, expected) in enumerate(zip_longest(elements, seed_lines), start=1):
        if element is None:
            problems.append(f"{contract.table} #{position}: missing seed element {expected!r}")
        elif expected is None:
            problems.append(f"{contract.table} #{position}: {element.name} is not in the seed")
        elif not expected.startswith(element.name):
            problems.append(
                f"{contract.table} #{position}: element {element.name}, seed has {expected!r}"
            )
        else:
            actual = element.name + element.description + element.type + element.length
            if actual != expected:
                problems.append(
                    f"{contract.table} #{position} {element.name}: "
                    f"contract {actual!r} != seed {expected!r}"
                )
    return problems


@pytest.fixture(scope="module")
def seed_tables() -> dict[str, list[str]]:
    for path in SEED_CANDIDATES:
        if path.is_file():
            return parse_seed_tables(path.read_text(encoding="utf-8"))
    pytest.fail(f"seed {SEED_NAME} not found; looked in {[str(p) for p in SEED_CANDIDATES]}")


@pytest.fixture(scope="module")
def contracts_by_table() -> dict[str, Contract]:
    return {contract.table: contract for contract in load_contracts(TABLES_DIR).values()}


# --- the seed parser itself -----------------------------------------------------------------------


def test_seed_parser_finds_every_table_with_its_elements(
    seed_tables: dict[str, list[str]],
) -> None:
    assert list(seed_tables) == list(SEED_TABLES)
    assert seed_tables["AR Customer Contact"][3] == "ContactNameContact NameString30"
    assert seed_tables["SY ZipCode"] == [
        "ZipCodeZip CodeString10",
        "CityCityString20",
        "StateCodeState CodeString2",
        "CountryCodeCountry CodeString3",
    ]


def test_seed_parser_ignores_a_title_mentioned_without_an_element_header() -> None:
    text = (
        "AR Customer\nis a table.\n\nAR Customer\n\nElement NameDescriptionTypeLength\nA1BString2\n"
    )
    assert parse_seed_tables(text) == {"AR Customer": ["A1BString2"]}


# --- contract files against the seed --------------------------------------------------------------


def test_every_seed_table_has_exactly_one_contract_file(
    seed_tables: dict[str, list[str]], contracts_by_table: dict[str, Contract]
) -> None:
    assert sorted(contracts_by_table) == sorted(seed_tables)
    assert len(load_contracts(TABLES_DIR)) == len(contracts_by_table)


@pytest.mark.parametrize("table", SEED_TABLES)
def test_contract_elements_match_the_seed_exactly(
    table: str, seed_tables: dict[str, list[str]], contracts_by_table: dict[str, Contract]
) -> None:
    assert transcription_problems(contracts_by_table[table], seed_tables[table]) == []


@pytest.mark.parametrize("table", SEED_TABLES)
def test_contract_keys_are_elements_of_the_table(
    table: str, contracts_by_table: dict[str, Contract]
) -> None:
    contract = contracts_by_table[table]
    assert contract.keys
    assert set(contract.keys) <= set(contract.elements)


# --- the checker catches typos --------------------------------------------------------------------


def _contact_data() -> dict[str, Any]:
    raw = yaml.safe_load((TABLES_DIR / "ar_customer_contact.yaml").read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def _element(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in raw["elements"] if item["name"] == name)


def _change_length(raw: dict[str, Any]) -> None:
    _element(raw, "ContactName")["length"] = "31"


def _change_description(raw: dict[str, Any]) -> None:
    _element(raw, "ContactName")["description"] = "Contact  Name"


def _change_type(raw: dict[str, Any]) -> None:
    _element(raw, "ContactName")["type"] = "Numeric"


def _drop_element(raw: dict[str, Any]) -> None:
    raw["elements"] = [item for item in raw["elements"] if item["name"] != "ContactName"]


def _swap_elements(raw: dict[str, Any]) -> None:
    items = raw["elements"]
    items[3], items[4] = items[4], items[3]


def _add_element(raw: dict[str, Any]) -> None:
    raw["elements"].append(
        {"name": "Extra", "description": "Extra", "type": "String", "length": "1"}
    )


@pytest.mark.parametrize(
    "mutate",
    [
        _change_length,
        _change_description,
        _change_type,
        _drop_element,
        _swap_elements,
        _add_element,
    ],
)
def test_checker_reports_a_transcription_typo(
    mutate: Any, seed_tables: dict[str, list[str]]
) -> None:
    raw = copy.deepcopy(_contact_data())
    mutate(raw)
    contract = Contract.from_data("ar_customer_contact", raw)
    assert transcription_problems(contract, seed_tables["AR Customer Contact"]) != []


def test_checker_names_the_element_and_both_values_for_a_wrong_length(
    seed_tables: dict[str, list[str]],
) -> None:
    raw = copy.deepcopy(_contact_data())
    _change_length(raw)
    contract = Contract.from_data("ar_customer_contact", raw)
    assert transcription_problems(contract, seed_tables["AR Customer Contact"]) == [
        "AR Customer Contact #4 ContactName: "
        "contract 'ContactNameContact NameString31' != seed 'ContactNameContact NameString30'"
    ]


def test_checker_accepts_an_unchanged_copy(seed_tables: dict[str, list[str]]) -> None:
    contract = Contract.from_data("ar_customer_contact", copy.deepcopy(_contact_data()))
    assert transcription_problems(contract, seed_tables["AR Customer Contact"]) == []


# --- routes ---------------------------------------------------------------------------------------

SPEC_ROUTES = [
    ("contact.upsert", Lane.BATCH, "/customerContacts", "AR Customer Contact"),
    ("customer.upsert", Lane.BATCH, "/customers", "AR Customer"),
    ("ar_invoice.create", Lane.SERIAL, "/accountsReceivable", None),
    ("ap_invoice.create", Lane.SERIAL, "/accountsPayable", None),
    ("journal.create", Lane.SERIAL, "/journalTransactions", None),
    ("payroll.create", Lane.SERIAL, "/payrollRecords", None),
]


def test_route_table_loads() -> None:
    table = load_route_table()
    assert table.routes
    for event_type, route in table.routes.items():
        assert route.type == event_type
        assert route.endpoint.startswith("/")
        if route.lane is Lane.BATCH:
            assert route.contract is not None


@pytest.mark.parametrize(("event_type", "lane", "endpoint", "table"), SPEC_ROUTES)
def test_spec_route_is_present_with_its_lane_and_endpoint(
    event_type: str, lane: Lane, endpoint: str, table: str | None
) -> None:
    route = load_route_table().get(event_type)
    assert route is not None
    assert (route.lane, route.endpoint) == (lane, endpoint)
    if table is not None:  # serial routes: operator-supplied contract, else any JSON object
        assert route.contract is not None
        assert route.contract.table == table


@pytest.mark.parametrize(("event_type", "endpoint"), [(r[0], r[2]) for r in SPEC_ROUTES])
def test_route_is_found_by_its_endpoint(event_type: str, endpoint: str) -> None:
    route = load_route_table().by_endpoint(endpoint)
    assert route is not None
    assert route.type == event_type
