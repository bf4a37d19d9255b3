"""Values in the Schema Registry wire format, encoded by Confluent's own serializers against
the development registry (:mod:`service.dev.registry`) over HTTP, and the Avro schema the
Confluent Avro converter writes for a Kafka Connect schema."""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

CONNECT_LOGICAL = {
    "org.apache.kafka.connect.data.Timestamp": "timestamp-millis",
    "org.apache.kafka.connect.data.Date": "date",
}
CONNECT_PRIMITIVES = {
    "string": "string",
    "int32": "int",
    "int64": "long",
    "double": "double",
    "float": "float",
    "boolean": "boolean",
    "bytes": "bytes",
}


def avro_of_connect(schema: dict[str, Any], defined: set[str] | None = None) -> Any:
    """The Avro schema Confluent's AvroConverter (``AvroData.fromConnectSchema``) writes for a
    Connect schema: a struct is a record named by the Connect name, an optional field a union
    with ``null`` first and a ``null`` default, a logical type carries ``connect.name``, and a
    record name met again is referred to by name."""
    defined = set() if defined is None else defined
    kind = schema["type"]
    if kind == "struct":
        name = schema.get("name", "ConnectDefault")
        if name in defined:
            avro: Any = name
        else:
            defined.add(name)
            fields = []
            for field in schema["fields"]:
                inner = avro_of_connect(field, defined)
                entry: dict[str, Any] = {"name": field["field"], "type": inner}
                if field.get("optional"):
                    entry = {"name": field["field"], "type": ["null", inner], "default": None}
                fields.append(entry)
            namespace, _, short = name.rpartition(".")
            avro = {"type": "record", "name": short, "fields": fields}
            if namespace:
                avro["namespace"] = namespace
        return avro
    if kind == "array":
        return {"type": "array", "items": avro_of_connect(schema["items"], defined)}
    primitive = CONNECT_PRIMITIVES[kind]
    logical = CONNECT_LOGICAL.get(schema.get("name", ""))
    if logical is None:
        return primitive
    return {
        "type": primitive,
        "connect.version": schema.get("version", 1),
        "connect.name": schema["name"],
        "logicalType": logical,
    }


def _context(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def avro_value(registry_url: str, topic: str, avro_schema: Any, record: dict[str, Any]) -> bytes:
    """``record`` as the Confluent AvroSerializer writes it (registering the schema under the
    topic's value subject, as producers do by default)."""
    client = SchemaRegistryClient({"url": registry_url})
    serializer = AvroSerializer(client, orjson.dumps(avro_schema).decode())
    value: bytes = serializer(record, _context(topic))
    return value


def json_schema_value(
    registry_url: str, topic: str, json_schema: dict[str, Any], record: dict[str, Any]
) -> bytes:
    """``record`` as the Confluent JSONSerializer (JSON Schema) writes it."""
    client = SchemaRegistryClient({"url": registry_url})
    serializer = JSONSerializer(orjson.dumps(json_schema).decode(), client)
    value: bytes = serializer(record, _context(topic))
    return value
