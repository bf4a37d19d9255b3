"""Dead letters as the service writes them (its own header builder), each at a chosen time, for
the tests of ``dlt list`` and ``dlt replay``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer

from service.answers.outcomes import Origin, Outcome, Stage, Subject, dead_letter_headers
from service.dev.events import contact, event, tenant

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
"""The first letter's time; each next one an hour later."""


@dataclass(frozen=True)
class Letter:
    key: bytes
    value: bytes
    event_id: str | None
    stage: Stage
    time: datetime


def sample() -> list[Letter]:
    """Four letters: one per stage, two tenants (one by default), two types, one unparseable."""
    invoice = {"InvoiceNo": "INV000001", "CustomerNo": "ABC", "Amount": 101}
    return [
        Letter(
            b"c-1",
            orjson.dumps(event("c-1", contact(1, ContactName="x" * 41))),
            "c-1",
            Stage.VALIDATION,
            START,
        ),
        Letter(
            b"beta-1",
            orjson.dumps(event("beta-1", contact(2), tenant=tenant("2002", "BETA"))),
            "beta-1",
            Stage.ROUTE,
            START + timedelta(hours=1),
        ),
        Letter(
            b"inv-1",
            orjson.dumps(event("inv-1", invoice, type="ar_invoice.create")),
            "inv-1",
            Stage.UNKNOWN_OUTCOME,
            START + timedelta(hours=2),
        ),
        Letter(b"junk", b"not json", None, Stage.PARSE, START + timedelta(hours=3)),
    ]


async def write(bootstrap: str, dlt: str, events_topic: str, letters: list[Letter]) -> None:
    """Each letter on ``dlt`` as if refused at offset ``i`` of ``events_topic``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for offset, letter in enumerate(letters):
            headers = dead_letter_headers(
                Subject(letter.event_id, letter.event_id, None),
                Outcome.failure(letter.stage, f"refused at {letter.stage}", attempts=1),
                Origin(events_topic, 0, offset),
            )
            await producer.send_and_wait(
                dlt,
                letter.value,
                key=letter.key,
                headers=headers,
                timestamp_ms=int(letter.time.timestamp() * 1000),
            )
    finally:
        await producer.stop()
