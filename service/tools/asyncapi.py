"""The AsyncAPI document of sagebridge's channels, generated from the real application.

Integration teams wire producers and reply consumers from this document, so it is built from the
same subscriber declaration that ``sagebridge run`` uses (:func:`service.kafka.subscriber.declare`):
the input channel's address, title and description come from the real subscriber, and the reply and
dead-letter publishers are declared on the real broker (for the document only; nothing is started
and nothing connects).

The message shapes are pydantic models of SPEC's input event, reply and dead-letter headers. They
describe the wire format; the service itself parses with :mod:`service.intake.envelope` and writes
with :mod:`service.answers.outcomes`, whose tests hold the behaviour. ``docs/asyncapi.json`` is this
document for the default settings; ``tests/deploy/test_asyncapi.py`` fails when it is stale.
Regenerate with ``sagebridge asyncapi --out docs/asyncapi.json`` (in an environment with no
``SAGEBRIDGE_*`` variables) or ``python -m service.tools.asyncapi docs/asyncapi.json``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.answers.outcomes import Stage
from service.config import Settings
from service.field_errors import ErrorCode

TITLE = "sagebridge"
API_VERSION = "1.0.0"
"""The version of the message contract (SPEC's shapes), not of the package: bump it when a
message shape changes, so the document does not churn with every release."""
DESCRIPTION = (
    "Kafka to Sage 100 Contractor Cloud Connector bridge. Every input event gets exactly one "
    "reply (on its reply_to topic, else the default reply topic); every failure is also a "
    "dead letter."
)


class Tenant(BaseModel):
    """A Sage customer + company; must be configured in the deployment, else stage ``route``."""

    model_config = ConfigDict(title="Tenant")

    customer: str
    company: str


class InputEvent(BaseModel):
    """One CRM record event. Key the Kafka message by the record's identity."""

    model_config = ConfigDict(title="InputEvent")

    event_id: str = Field(min_length=1, max_length=128, description="Unique per event.")
    type: str = Field(
        min_length=1,
        max_length=128,
        description="Route: contact.upsert, customer.upsert, ar_invoice.create, "
        "ap_invoice.create, journal.create, payroll.create (contracts/routes.yaml).",
    )
    tenant: Tenant | None = Field(None, description="Defaults to the default tenant.")
    reply_to: str | None = Field(
        None,
        description="Topic for this event's reply; defaults to SAGEBRIDGE_REPLY_TOPIC. Input "
        "topics, the dead-letter topic, __* topics and topics outside SAGEBRIDGE_REPLY_TOPICS "
        "(or the tenant's reply_topics) are refused: ERROR on the default reply topic.",
    )
    correlation_id: str | None = Field(None, description="Defaults to event_id.")
    data: dict[str, Any] = Field(
        description="The record, keyed by Sage element names, checked against the contract; "
        "for a route with a mapping, the CRM's own payload (see contracts/mappings/)."
    )


class FieldError(BaseModel):
    """One field that broke the Sage table's contract."""

    model_config = ConfigDict(title="FieldError")

    field: str
    code: ErrorCode
    limit: int | None = None
    actual: int | None = None
    detail: str | None = Field(
        None, description="unmapped only: which CRM field or look-up could not fill it."
    )


class Reply(BaseModel):
    """The one result envelope of an event (keyed like the input; header ``correlation_id``)."""

    model_config = ConfigDict(title="Reply")

    response: Literal["SUCCESS", "ERROR"]
    message: str | None = Field(None, description="ERROR only: what went wrong.")
    event_id: str | None = Field(description="null when the value could not be parsed.")
    correlation_id: str | None
    type: str | None
    tenant: Tenant | None = None
    endpoint: str | None = Field(None, description="The Cloud Connector endpoint of the route.")
    stage: Stage | None = Field(None, description="ERROR only: where the event failed.")
    errors: list[FieldError] | None = Field(None, description="ERROR only: bad fields.")
    attempts: int = Field(ge=0, description="Cloud Connector calls that carried the record.")


class DeadLetterHeaders(BaseModel):
    """Headers of a dead letter; ``sagebridge dlt replay`` reads ``x-original-topic``."""

    model_config = ConfigDict(title="DeadLetterHeaders", populate_by_name=True)

    error_stage: Stage = Field(alias="x-error-stage")
    error_message: str = Field(alias="x-error-message", max_length=1000)
    event_id: str = Field(alias="x-event-id", description="Empty when it could not be read.")
    original_topic: str = Field(alias="x-original-topic")
    original_partition: str = Field(alias="x-original-partition", pattern=r"^\d+$")
    original_offset: str = Field(alias="x-original-offset", pattern=r"^\d+$")
    attempts: str = Field(alias="x-attempts", pattern=r"^\d+$")


class ReplyHeaders(BaseModel):
    """Headers of a reply."""

    model_config = ConfigDict(title="ReplyHeaders")

    correlation_id: str
    x_reply_to_failed: str | None = Field(
        None,
        alias="x-reply-to-failed",
        description="Set when the event's reply_to could not be written; names that topic.",
    )


class _Unused:
    """The subscriber is declared for the document only: it never joins a group."""

    async def on_revoked(self, revoked: set[Any]) -> None:  # pragma: no cover
        raise AssertionError("never started")

    async def on_assigned(self, assigned: set[Any]) -> None:  # pragma: no cover
        raise AssertionError("never started")


async def _unused_poll(records: tuple[Any, ...]) -> None:  # pragma: no cover
    raise AssertionError("never started")


async def _build(settings: Settings) -> dict[str, Any]:
    from faststream.specification import AsyncAPI

    from service.kafka import subscriber as input_side
    from service.kafka.consumer import GroupConsumer

    broker = input_side.make_broker(settings)
    input_side.declare(broker, settings, GroupConsumer(), _Unused(), _unused_poll)
    (subscriber,) = broker.subscribers
    real = subscriber.specification
    # The batch handler takes raw records, so FastStream cannot see the event's shape.
    # A documentation twin with the same address, title and description carries it.
    real.config.include_in_schema = False
    twin = broker.subscriber(
        *settings.input_topics,
        group_id=settings.group_id,
        title=real.config.title_,
        description=real.config.description_,
    )

    async def crm_event(event: InputEvent) -> None:  # pragma: no cover - never called
        """Documentation only."""

    twin(crm_event)
    broker.publisher(
        settings.reply_topic,
        title="sage-replies",
        description="Replies for events that name no reply_to, and refusals of events whose "
        "tenant is unknown or whose reply_to is not allowed. An event's allowed reply_to "
        "topic receives the same message.",
        schema=Reply,
    )
    broker.publisher(
        settings.dlt_topic,
        title="sage-dlt",
        description="Dead letters: the original key and value, byte for byte (often not "
        "valid JSON), with the error headers. `sagebridge dlt replay` re-publishes them.",
        schema=bytes,
    )
    document = AsyncAPI(
        broker,
        title=TITLE,
        version=API_VERSION,
        description=DESCRIPTION,
        schema_version="3.0.0",
    ).to_specification()
    doc: dict[str, Any] = json.loads(document.to_json())
    _finish(doc)
    return doc


def _finish(doc: dict[str, Any]) -> None:
    """What FastStream's generator cannot say. Its messages have no ``headers`` (AsyncAPI 3
    has them, and here they are contract: dead-letter headers drive replay), and it assumes a
    ``correlation_id`` header on every message, while input events carry it in the body and
    dead letters not at all."""
    messages = doc["components"]["messages"]
    (event_message,) = (m for name, m in messages.items() if name.startswith("crm-events:"))
    event_message["correlationId"] = {"location": "$message.payload#/correlation_id"}
    _add_headers(doc, messages["sage-replies:Message"], ReplyHeaders)
    dead_letter = messages["sage-dlt:Message"]
    _add_headers(doc, dead_letter, DeadLetterHeaders)
    del dead_letter["correlationId"]
    dead_letter["contentType"] = "application/octet-stream"


def _add_headers(doc: dict[str, Any], message: dict[str, Any], model: type[BaseModel]) -> None:
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    doc["components"]["schemas"].update(schema.pop("$defs", {}))
    message["headers"] = schema


def default_settings() -> Settings:
    """SPEC's defaults, ignoring the environment and ``.env``: the committed document must not
    depend on who generated it."""
    return Settings.model_construct()


def build_document(settings: Settings | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document for ``settings`` (SPEC's defaults when ``None``)."""
    return asyncio.run(_build(settings or default_settings()))


def render(document: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline (diff-friendly)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m service.tools.asyncapi [FILE]``: the document for the default settings."""
    args = sys.argv[1:] if argv is None else argv
    text = render(build_document())
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
