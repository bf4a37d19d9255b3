"""A serial route's ``batch_max`` and ``atomic_arrays``: read from routes.yaml, checked at load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.errors import ContractFileError
from service.intake.routes import DEFAULT_CONTRACTS_DIR, load_route_table


def contracts_with(tmp_path: Path, routes: str) -> Path:
    shutil.copytree(DEFAULT_CONTRACTS_DIR / "tables", tmp_path / "tables")
    (tmp_path / "routes.yaml").write_text(routes, encoding="utf-8")
    return tmp_path


def test_serial_routes_send_one_record_per_call_unless_told_otherwise() -> None:
    route = load_route_table().get("ar_invoice.create")
    assert route is not None
    assert (route.batch_max, route.atomic_arrays) == (1, False)


def test_a_serial_route_may_carry_arrays(tmp_path: Path) -> None:
    routes = (
        "routes:\n"
        "  ar_invoice.create: {lane: serial, endpoint: /accountsReceivable, contract: null,\n"
        "                      batch_max: 50, atomic_arrays: true}\n"
    )
    route = load_route_table(contracts_with(tmp_path, routes)).get("ar_invoice.create")
    assert route is not None
    assert (route.batch_max, route.atomic_arrays) == (50, True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("lane: serial, batch_max: 0", "batch_max must be a whole number >= 1, got 0"),
        ("lane: serial, batch_max: '5'", "batch_max must be a whole number >= 1, got '5'"),
        ("lane: serial, batch_max: true", "batch_max must be a whole number >= 1, got True"),
        ("lane: serial, atomic_arrays: 'yes'", "atomic_arrays must be true or false, got 'yes'"),
        (
            "lane: batch, contract: ar_customer, batch_max: 5",
            "batch_max and atomic_arrays are for serial routes",
        ),
    ],
)
def test_bad_array_settings_stop_the_load_naming_the_route(
    tmp_path: Path, fields: str, message: str
) -> None:
    routes = f"routes:\n  x.create: {{endpoint: /x, {fields}}}\n"
    with pytest.raises(ContractFileError, match=rf"routes\.yaml: route x\.create: {message}"):
        load_route_table(contracts_with(tmp_path, routes))
