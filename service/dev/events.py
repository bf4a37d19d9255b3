"""The events the tests, the benchmark and the demo send: their JSON, and producing them.

An event is the envelope the service reads from its input topics (``event_id``, ``type``,
``data`` and optionally ``tenant`` and ``reply_to``; see docs/crm-input.md, "Messages by
example").
The builders return plain dicts, so a test can break any field of one on purpose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

Message = tuple[bytes | None, bytes | dict[str, Any] | None]
"""(key, value) as produced; a dict value is encoded as JSON."""
WithHeaders = tuple[bytes | None, bytes | dict[str, Any] | None, list[tuple[str, bytes]]]
"""(key, value, headers): a record whose headers matter (a binary-mode CloudEvent)."""


def event(
    event_id: str, data: dict[str, Any], *, type: str = "contact.upsert", **extra: Any
) -> dict[str, Any]:
    """An event envelope; ``extra`` adds top-level fields such as ``tenant`` or ``reply_to``."""
    return {"event_id": event_id, "type": type, "data": data, **extra}


def journal(n: int, lines: int = 1700) -> dict[str, Any]:
    """A large journal entry, number ``n``: ``lines`` lines, about 140 bytes of JSON each (the
    default makes an event of about 240 KB, a month-end accrual's size)."""
    return {
        "JournalNo": f"JE{n:05d}",
        "Date": "2026-12-01",
        "Lines": [
            {
                "AccountNo": f"{1000 + i % 50}-00",
                "Debit": round(i * 1.37, 2),
                "Credit": 0,
                "Description": f"line {i} of the month-end accrual",
                "JobNo": f"J{i % 97:05d}",
                "CostCode": "01-100",
            }
            for i in range(lines)
        ],
    }


def tenant(customer: str, company: str) -> dict[str, str]:
    """The envelope's ``tenant`` field: which company's Cloud Connector the event is for."""
    return {"customer": customer, "company": company}


def contact(n: int, **fields: Any) -> dict[str, Any]:
    """A valid AR Customer Contact record, number ``n``; ``fields`` are added or replaced."""
    return {
        "ARDivisionNo": "01",
        "CustomerNo": f"C{n % 500:05d}",
        "ContactCode": f"K{n:07d}",
        "ContactName": f"Contact {n}",
        **fields,
    }


async def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[Message | WithHeaders],
    *,
    max_request_size: int = 1_048_576,
) -> int:
    """Send (key, value[, headers]) in order and wait until the broker has them all; the
    count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=max_request_size
    )
    await producer.start()
    count = 0
    try:
        futures = []
        for key, value, *headers in messages:
            raw = orjson.dumps(value) if isinstance(value, dict) else value
            sent = await producer.send(topic, raw, key=key, headers=headers[0] if headers else None)
            futures.append(sent)
            count += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count
