"""The value formats a record may arrive in, decoded into one JSON-like document. Pure.

Kafka Connect's words: this is the converter. Each record says its own format, and the cheap
test comes first so that our own JSON envelope pays for one byte comparison and one dict
lookup more than before:

- **Schema Registry wire format**: byte 0 is the magic byte ``0``, then a 4-byte big-endian
  schema id, then the body (Avro binary, or JSON for JSON Schema). A JSON text never starts
  with a NUL byte, so the first byte alone tells the formats apart.
- **JSON**, and in it **Kafka Connect's JSON with schemas** (JsonConverter's default,
  ``schemas.enable=true``): an object of exactly ``schema`` and ``payload``; the payload is the
  value.

The schema a wire-format value names is fetched before intake decides (an I/O step, in
:mod:`service.registry`), so decoding here only looks it up in the :data:`SchemaBook` it is
handed: a schema id the book lacks means the registry does not know it (a ``parse`` refusal
naming the id), never "not fetched yet".
"""

from __future__ import annotations

import datetime
import decimal
import io
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import fastavro
import fastavro.types
import orjson

MAGIC = 0
HEADER = struct.Struct(">bI")
"""Magic byte, then the schema id (Confluent's wire format)."""


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema the registry gave for an id, ready to decode with."""

    id: int
    kind: Literal["AVRO", "JSON"]
    parsed: Any
    """fastavro's parsed schema for Avro; the JSON Schema document for JSON (not enforced:
    the producer's serializer validated it, and the route's contract checks the fields)."""


@dataclass(frozen=True, slots=True)
class UnusableSchema:
    """An id the registry does not know, or a schema sagebridge cannot read (Protobuf, a
    schema with references): every value naming it is refused at ``parse`` with ``reason``."""

    id: int
    reason: str


SchemaBook = Mapping[int, RegisteredSchema | UnusableSchema]
"""Schemas by id, as fetched so far (see :mod:`service.registry.cache`)."""


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Why a value could not be decoded (the caller words it as a ``parse`` refusal)."""

    reason: str


def schema_id_of(value: bytes | None) -> int | None:
    """The schema id a wire-format value names, or ``None`` for any other value."""
    if value is None or len(value) < HEADER.size or value[0] != MAGIC:
        return None
    return int(HEADER.unpack_from(value)[1])


def schema_ids(values: Iterable[bytes | None]) -> set[int]:
    """The schema ids a poll's values name: what must be fetched before intake reads them."""
    found: set[int] = set()
    for value in values:
        if value and value[0] == MAGIC and (schema_id := schema_id_of(value)) is not None:
            found.add(schema_id)
    return found


def decode(value: bytes, schemas: SchemaBook) -> Any | Undecodable:
    """The document a value holds: wire format decoded with its schema, JSON parsed, and a
    Kafka Connect ``{"schema", "payload"}`` wrapper taken off."""
    if value and value[0] == MAGIC:
        return _wire(value, schemas)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Undecodable(f"not valid UTF-8 JSON: {_first_line(exc)}")
    if type(doc) is dict and "payload" in doc and len(doc) == 2 and "schema" in doc:
        payload = doc["payload"]
        if type(payload) is not dict:
            return Undecodable(
                "Kafka Connect JSON with schemas: the payload must be a JSON object, "
                f"got {json_kind(payload)}"
            )
        return payload
    return doc


def _wire(value: bytes, schemas: SchemaBook) -> Any | Undecodable:
    schema_id = schema_id_of(value)
    if schema_id is None:
        return Undecodable(
            f"Schema Registry wire format: {len(value)} bytes, shorter than its 5-byte header"
        )
    schema = schemas.get(schema_id)
    if schema is None:
        return Undecodable(
            f"Schema Registry wire format: schema id {schema_id} is unknown "
            "(no Schema Registry is configured: set SAGEBRIDGE_SCHEMA_REGISTRY_URL)"
        )
    if isinstance(schema, UnusableSchema):
        return Undecodable(f"Schema Registry wire format: schema id {schema_id}: {schema.reason}")
    body = value[HEADER.size :]
    if schema.kind == "JSON":
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return Undecodable(
                f"JSON Schema value (schema id {schema_id}) is not valid JSON: {_first_line(exc)}"
            )
    stream = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(stream, schema.parsed, None)
    # A corrupt body can fail anywhere in fastavro's reader: it reads lengths, indexes and
    # UTF-8 from bytes the producer chose.
    except (EOFError, ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
        return Undecodable(
            f"Avro value (schema id {schema_id}) is corrupt: {_first_line(exc) or 'truncated'}"
        )
    if (left := len(body) - stream.tell()) > 0:
        return Undecodable(
            f"Avro value (schema id {schema_id}) is corrupt: {left} bytes after the record"
        )
    return as_json(record)


def as_json(value: Any) -> Any:
    """Avro's logical types as JSON would carry them: timestamps and dates as ISO 8601 text,
    decimals and UUIDs as text, bytes as Latin-1 text, so every later stage sees JSON only."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def parse_schema(schema_id: int, kind: str, text: str) -> RegisteredSchema | UnusableSchema:
    """A registry's answer for ``schema_id`` made ready to decode with."""
    if kind == "PROTOBUF":
        return UnusableSchema(schema_id, "Protobuf values are not read; use Avro or JSON Schema")
    if kind not in ("AVRO", "JSON"):
        return UnusableSchema(schema_id, f"schema type {kind!r} is not read")
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return UnusableSchema(schema_id, f"the registry's {kind} schema is not valid JSON")
    if kind == "JSON":
        return RegisteredSchema(schema_id, "JSON", document)
    try:
        parsed = fastavro.parse_schema(document)
    except (fastavro.schema.SchemaParseException, fastavro.schema.UnknownType, ValueError) as exc:
        return UnusableSchema(schema_id, f"the Avro schema cannot be used: {_first_line(exc)}")
    return RegisteredSchema(schema_id, "AVRO", parsed)


def json_kind(doc: Any) -> str:
    """What a JSON value is, in words for an error message."""
    if doc is None:
        return "null"
    return {list: "an array", str: "a string", bool: "a boolean", dict: "an object"}.get(
        type(doc), "a number"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__
