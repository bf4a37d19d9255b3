"""A copy of the shipped contracts with some serial routes sending arrays, or looking records in
doubt up in Sage: for tests and the benchmark, which start the service with
``SAGEBRIDGE_CONTRACTS_DIR`` pointing at it."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import yaml

from service.config import DEFAULT_CONTRACTS_DIR


def contracts_with_arrays(
    directory: Path,
    batch_max: int,
    *,
    atomic: bool = False,
    types: Iterable[str] = ("ar_invoice.create",),
) -> Path:
    """``directory`` (created) holding the shipped contracts, with the routes of ``types``
    carrying up to ``batch_max`` records per call (``atomic_arrays: atomic``)."""
    shutil.copytree(DEFAULT_CONTRACTS_DIR, directory, dirs_exist_ok=True)
    routes_file = directory / "routes.yaml"
    routes = yaml.safe_load(routes_file.read_text(encoding="utf-8"))
    for event_type in types:
        routes["routes"][event_type].update(batch_max=batch_max, atomic_arrays=atomic)
    routes_file.write_text(yaml.safe_dump(routes, sort_keys=False), encoding="utf-8")
    return directory


INVOICE_LOOKUP = {"InvoiceNo": "invoiceNo"}
"""How the tests' and the benchmark's invoices are found in Sage: by their invoice number."""


def contracts_with_lookup(
    directory: Path,
    *,
    resend_if_absent: bool = False,
    types: Iterable[str] = ("ar_invoice.create",),
) -> Path:
    """``directory`` (created, or already holding contracts) with the routes of ``types``
    looking their records in doubt up by :data:`INVOICE_LOOKUP`."""
    if not (directory / "routes.yaml").exists():
        shutil.copytree(DEFAULT_CONTRACTS_DIR, directory, dirs_exist_ok=True)
    routes_file = directory / "routes.yaml"
    routes = yaml.safe_load(routes_file.read_text(encoding="utf-8"))
    for event_type in types:
        routes["routes"][event_type].update(
            lookup=dict(INVOICE_LOOKUP), resend_if_absent=resend_if_absent
        )
    routes_file.write_text(yaml.safe_dump(routes, sort_keys=False), encoding="utf-8")
    return directory
