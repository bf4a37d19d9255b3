"""The demo's sample CRM feed: realistic contacts, customers and invoices for two tenants, and
the mistakes a real feed makes, from a seeded RNG so every run sends the same events."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from service.dev.events import event, tenant

ACME, BETA = ("1001", "ACME"), ("2002", "BETA")
FIRST_NAMES = (
    "Jane", "John", "Maria", "Wei", "Aisha", "Carlos", "Emily", "Omar",
    "Sofia", "Liam", "Priya", "Noah", "Hannah", "Mateo", "Grace", "Yuki",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Garcia", "Chen", "Okafor", "Muller", "Rossi", "Nguyen", "Patel",
    "Johnson", "Kowalski", "Haddad", "Larsen", "Silva", "Tanaka", "Brown", "Dubois",
)  # fmt: skip
COMPANIES = (
    "Summit Builders", "Riverbend Concrete", "Apex Roofing", "Bluestone Electric",
    "Cedar Framing", "Granite Plumbing", "Harbor Steel", "Ironwood HVAC",
)  # fmt: skip
CITIES = (
    ("Austin", "TX", "78701"), ("Denver", "CO", "80202"), ("Portland", "OR", "97201"),
    ("Raleigh", "NC", "27601"), ("Phoenix", "AZ", "85004"), ("Boise", "ID", "83702"),
)  # fmt: skip
TITLES = ("Project Manager", "Estimator", "Site Supervisor", "Controller", "Owner", "Purchasing")
INVALID_KINDS = ("too_long", "missing_key", "unknown_field", "not_json", "unknown_type")


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One Kafka message of the sample feed, and what the demo expects to hear back about it."""

    kind: str
    """``contact``, ``customer``, ``invoice`` or ``invalid:<what is wrong>``."""
    tenant: tuple[str, str]
    key: bytes
    value: bytes
    event_id: str | None
    """``None`` when the value is not JSON: its reply can carry no event_id."""
    headers: tuple[tuple[str, bytes], ...] = ()
    """Kafka headers (a binary-mode CloudEvent's attributes)."""
    note: str = ""
    """What the summary says about it (the Salesforce change events)."""


@dataclass(frozen=True, slots=True)
class _Customer:
    tenant: tuple[str, str]
    number: str
    name: str
    domain: str
    city: tuple[str, str, str]


class _FeedWriter:
    """Builds realistic records from a seeded RNG, so every run sends the same feed."""

    def __init__(self, rng: random.Random, count: int) -> None:
        self.rng = rng
        self.customers = [
            _Customer(
                tenant,
                f"{company.split()[0].upper()[:6]}{index:02d}",
                company,
                company.replace(" ", "").lower() + ".com",
                rng.choice(CITIES),
            )
            for tenant in (ACME, BETA)
            for index, company in enumerate(COMPANIES, start=1)
        ]
        # A bounded pool of people, so some contacts are updated several times (same key).
        self.people = [self._person(n) for n in range(max(20, count // 4))]

    def _person(self, n: int) -> tuple[_Customer, str, str, str]:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        code = f"{first[0]}{last}".upper()[:7] + f"{n % 1000:03d}"
        return self.rng.choice(self.customers), code, first, last

    def contact(self) -> tuple[_Customer, dict[str, Any]]:
        customer, code, first, last = self.rng.choice(self.people)
        city, state, zip_code = customer.city
        return customer, {
            "ARDivisionNo": "01",
            "CustomerNo": customer.number,
            "ContactCode": code,
            "ContactName": f"{first} {last}",
            "ContactTitle": self.rng.choice(TITLES),
            "EmailAddress": f"{first}.{last}@{customer.domain}".lower(),
            "TelephoneNo1": f"({self.rng.randint(201, 989)}) 555-{self.rng.randint(0, 9999):04d}",
            "City": city,
            "State": state,
            "ZipCode": zip_code,
        }

    def customer(self) -> tuple[_Customer, dict[str, Any]]:
        customer = self.rng.choice(self.customers)
        city, state, zip_code = customer.city
        return customer, {
            "ARDivisionNo": "01",
            "CustomerNo": customer.number,
            "CustomerName": customer.name,
            "City": city,
            "State": state,
            "ZipCode": zip_code,
            "EmailAddress": f"accounts@{customer.domain}",
        }

    def invoice(self, n: int) -> tuple[_Customer, dict[str, Any]]:
        customer = self.rng.choice(self.customers)
        amount = round(self.rng.uniform(150, 25_000), 2)
        return customer, {
            "InvoiceNo": f"INV-{n:06d}",
            "Amount": amount,
            "CustomerNo": customer.number,
        }


def sample_feed(count: int, seed: int = 7) -> list[FeedEvent]:
    """``count`` events: ~85% contacts, ~5% customers, ~5% AR invoices, ~5% invalid."""
    rng = random.Random(seed)
    writer = _FeedWriter(rng, count)
    feed = []
    for n in range(1, count + 1):
        roll = rng.random()
        if roll < 0.85:
            feed.append(_record_event(n, "contact", "contact.upsert", *writer.contact(), rng))
        elif roll < 0.90:
            feed.append(_record_event(n, "customer", "customer.upsert", *writer.customer(), rng))
        elif roll < 0.95:
            feed.append(_record_event(n, "invoice", "ar_invoice.create", *writer.invoice(n), rng))
        else:
            feed.append(_invalid_event(n, rng.choice(INVALID_KINDS), writer, rng))
    return feed


def _record_event(
    n: int,
    kind: str,
    event_type: str,
    customer: _Customer,
    data: dict[str, Any],
    rng: random.Random,
) -> FeedEvent:
    """An envelope keyed by the record's identity, so updates to one record keep their order."""
    event_id = f"crm-{n:06d}"
    named: dict[str, Any] = {}
    # Half of the default tenant's events name it; the rest rely on the default.
    if customer.tenant != ACME or rng.random() < 0.5:
        named["tenant"] = tenant(*customer.tenant)
    envelope = event(event_id, data, type=event_type, **named)
    identity = [
        data.get(k) or "" for k in ("InvoiceNo", "ARDivisionNo", "CustomerNo", "ContactCode")
    ]
    key = "/".join([*customer.tenant, event_type, *(str(part) for part in identity if part)])
    return FeedEvent(kind, customer.tenant, key.encode(), orjson.dumps(envelope), event_id)


def _invalid_event(n: int, what: str, writer: _FeedWriter, rng: random.Random) -> FeedEvent:
    """A mistake a real CRM feed makes; the service must answer it ERROR and dead-letter it."""
    customer, data = writer.contact()
    event_type = "contact.upsert"
    if what == "too_long":
        data["ContactName"] = "Maximiliana Alexandrovna Worthington-Smythe"
    elif what == "missing_key":
        del data["ContactCode"]
    elif what == "unknown_field":
        data["Nickname"] = "Max"
    elif what == "unknown_type":
        event_type = "contact.delete"
    event = _record_event(n, f"invalid:{what}", event_type, customer, data, rng)
    if what == "not_json":
        # A producer that cut the message short: not JSON, so no event_id can be read back.
        cut = event.value[: len(event.value) // 2]
        return FeedEvent(event.kind, event.tenant, event.key, cut, None)
    return event
