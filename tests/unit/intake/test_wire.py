"""Value formats into one document: Connect JSON with schemas, the Schema Registry wire format
(Avro and JSON Schema, encoded here by hand the way the wire format is documented: magic byte
0, 4-byte big-endian id, body), and the refusals for each way they can be wrong."""

from __future__ import annotations

import io
import struct

import fastavro
import orjson

from service.intake.envelope import Event, ParseFailure, parse_event
from service.intake.wire import (
    RegisteredSchema,
    Undecodable,
    UnusableSchema,
    decode,
    parse_schema,
    schema_ids,
)

AVRO = {
    "type": "record",
    "name": "Envelope",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "type", "type": "string"},
        {"name": "data", "type": {"type": "map", "values": "string"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
BOOK = {
    7: parse_schema(7, "AVRO", orjson.dumps(AVRO).decode()),
    8: parse_schema(8, "JSON", '{"type": "object"}'),
    9: UnusableSchema(9, "the Schema Registry does not know this id"),
}


def wire(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + body


def avro_body(record: dict[str, object]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(AVRO), record)
    return out.getvalue()


def test_connect_json_with_schemas_is_its_payload() -> None:
    value = orjson.dumps(
        {"schema": {"type": "struct"}, "payload": {"event_id": "e1", "type": "t", "data": {}}}
    )
    assert parse_event(value, 10_000) == Event("e1", "t", {}, "e1")


def test_a_connect_payload_that_is_not_an_object_is_a_parse_failure() -> None:
    found = decode(orjson.dumps({"schema": None, "payload": [1]}), BOOK)
    assert found == Undecodable(
        "Kafka Connect JSON with schemas: the payload must be a JSON object, got an array"
    )


def test_an_object_with_more_than_schema_and_payload_is_read_as_itself() -> None:
    doc = {"schema": 1, "payload": 2, "event_id": "x"}
    assert decode(orjson.dumps(doc), BOOK) == doc


def test_avro_through_the_registry_with_its_timestamps_as_iso_text() -> None:
    record = {"event_id": "e2", "type": "t", "data": {"a": "b"}, "at": 1596116025000}
    parsed = parse_event(wire(7, avro_body(record)), 10_000, BOOK)
    assert isinstance(parsed, Event) and parsed.data == {"a": "b"}
    assert decode(wire(7, avro_body(record)), BOOK)["at"] == "2020-07-30T13:33:45Z"  # type: ignore[index]


def test_json_schema_through_the_registry() -> None:
    assert decode(wire(8, b'{"a": 1}'), BOOK) == {"a": 1}


def test_an_unknown_schema_id_names_the_id() -> None:
    failure = parse_event(wire(9, b"xx"), 10_000, BOOK)
    assert isinstance(failure, ParseFailure)
    assert failure.reason == (
        "Schema Registry wire format: schema id 9: the Schema Registry does not know this id"
    )


def test_without_a_registry_the_setting_is_named() -> None:
    failure = parse_event(wire(12, b"xx"), 10_000)
    assert isinstance(failure, ParseFailure)
    assert "schema id 12 is unknown" in failure.reason
    assert "SAGEBRIDGE_SCHEMA_REGISTRY_URL" in failure.reason


def test_corrupt_and_trailing_avro_bodies_are_refused() -> None:
    good = avro_body({"event_id": "e", "type": "t", "data": {}, "at": 1})
    truncated = decode(wire(7, good[:3]), BOOK)
    trailing = decode(wire(7, good + b"\x00"), BOOK)
    assert isinstance(truncated, Undecodable) and "is corrupt" in truncated.reason
    assert trailing == Undecodable("Avro value (schema id 7) is corrupt: 1 bytes after the record")


def test_a_header_shorter_than_five_bytes_is_refused() -> None:
    assert decode(b"\x00\x00\x01", BOOK) == Undecodable(
        "Schema Registry wire format: 3 bytes, shorter than its 5-byte header"
    )


def test_protobuf_is_refused_by_name() -> None:
    assert parse_schema(3, "PROTOBUF", "syntax = 'proto3';") == UnusableSchema(
        3, "Protobuf values are not read; use Avro or JSON Schema"
    )


def test_schema_ids_are_found_by_the_first_byte_only() -> None:
    values = [wire(7, b""), b'{"a": 1}', None, wire(8, b"{}"), b"\x00\x00"]
    assert schema_ids(values) == {7, 8}
    assert isinstance(BOOK[7], RegisteredSchema)
