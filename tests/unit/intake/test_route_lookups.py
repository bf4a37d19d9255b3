"""A serial route's ``lookup`` and ``resend_if_absent``: read from routes.yaml, checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ContractFileError
from service.intake.routes import load_route_table
from tests.unit.intake.test_routes import contracts_with


def test_a_serial_route_may_name_a_lookup_and_resend_what_sage_lacks(tmp_path: Path) -> None:
    routes = (
        "routes:\n"
        "  ar_invoice.create: {lane: serial, endpoint: /accountsReceivable, contract: null,\n"
        "                      lookup: {InvoiceNo: invoiceNo}, resend_if_absent: true}\n"
    )
    route = load_route_table(contracts_with(tmp_path, routes)).get("ar_invoice.create")
    assert route is not None
    assert (dict(route.lookup or {}), route.resend_if_absent) == (
        {"InvoiceNo": "invoiceNo"},
        True,
    )


def test_a_serial_route_resends_nothing_unless_told() -> None:
    route = load_route_table().get("ar_invoice.create")
    assert route is not None
    assert (route.lookup, route.resend_if_absent) == (None, False)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("lane: serial, resend_if_absent: true", "resend_if_absent is for serial routes with a"),
        (
            "lane: serial, lookup: {InvoiceNo: invoiceNo}, resend_if_absent: 'yes'",
            "resend_if_absent must be true or false, got 'yes'",
        ),
        ("lane: serial, lookup: {}", "lookup is a mapping of key elements to query parameters"),
        ("lane: serial, lookup: [InvoiceNo]", "lookup is a mapping of key elements"),
        (
            "lane: serial, contract: ar_customer, lookup: {Nope: nope}",
            r"lookup names elements not in the contract: \['Nope'\]",
        ),
        (
            "lane: batch, contract: ar_customer, lookup: {CustomerNo: customerNo}",
            "lookup must map exactly the keys",
        ),
    ],
)
def test_bad_lookup_settings_stop_the_load_naming_the_route(
    tmp_path: Path, fields: str, message: str
) -> None:
    routes = f"routes:\n  x.create: {{endpoint: /x, {fields}}}\n"
    with pytest.raises(ContractFileError, match=rf"routes\.yaml: route x\.create: {message}"):
        load_route_table(contracts_with(tmp_path, routes))
