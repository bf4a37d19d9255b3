"""docs/asyncapi.json is the document the app generates today, and it says what SPEC says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.answers.outcomes import Origin, Outcome, Stage, Subject, dead_letter_headers
from service.config import ENV_PREFIX, Settings
from service.tools.asyncapi import build_document, render

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
STALE = "docs/asyncapi.json is stale: run `python -m service.tools.asyncapi docs/asyncapi.json`"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def test_committed_document_is_current(document: dict[str, Any]) -> None:
    assert render(document) == COMMITTED.read_text(encoding="utf-8"), STALE


def test_generation_is_deterministic(document: dict[str, Any]) -> None:
    assert render(build_document()) == render(document)


def test_cli_writes_the_same_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.cli import main

    for name in Settings.model_fields:
        monkeypatch.delenv(ENV_PREFIX + name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    out = tmp_path / "asyncapi.json"
    assert main(["asyncapi", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def test_cli_documents_the_configured_topics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGEBRIDGE_INPUT_TOPICS", "crm.contacts")
    monkeypatch.setenv("SAGEBRIDGE_DLT_TOPIC", "ops.dead")
    assert main(["asyncapi"]) == 0
    doc = json.loads(capsys.readouterr().out)
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"crm.contacts", "ops.dead"} <= addresses


def channel(doc: dict[str, Any], address: str) -> dict[str, Any]:
    [found] = [c for c in doc["channels"].values() if c["address"] == address]
    return found


def message(doc: dict[str, Any], address: str) -> dict[str, Any]:
    [ref] = [m["$ref"] for m in channel(doc, address)["messages"].values()]
    return dict(doc["components"]["messages"][ref.rsplit("/", 1)[1]])


def schema(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    return dict(doc["components"]["schemas"][ref.rsplit("/", 1)[1]])


def test_channels_and_directions(document: dict[str, Any]) -> None:
    actions = {
        document["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"]: op["action"]
        for op in document["operations"].values()
    }
    assert actions == {"crm.events": "receive", "sage.replies": "send", "sage.dlt": "send"}
    assert document["servers"]["development"]["protocol"] == "kafka"


def test_input_event_schema_follows_spec(document: dict[str, Any]) -> None:
    event = schema(document, message(document, "crm.events")["payload"]["$ref"])
    assert set(event["required"]) == {"event_id", "type", "data"}
    assert event["properties"]["event_id"]["maxLength"] == 128
    assert {"tenant", "reply_to", "correlation_id"} <= set(event["properties"])


def test_reply_schema_follows_spec(document: dict[str, Any]) -> None:
    reply_message = message(document, "sage.replies")
    assert reply_message["correlationId"]["location"] == "$message.header#/correlation_id"
    reply = schema(document, reply_message["payload"]["$ref"])
    assert reply["properties"]["response"]["enum"] == ["SUCCESS", "ERROR"]
    stages = document["components"]["schemas"]["Stage"]["enum"]
    assert stages == ["parse", "validation", "route", "connector", "unknown_outcome"]


def test_dead_letter_headers_follow_spec(document: dict[str, Any]) -> None:
    dead = message(document, "sage.dlt")
    assert dead["contentType"] == "application/octet-stream", "the original bytes"
    written = dead_letter_headers(
        Subject("e-1", "e-1", "contact.upsert"),
        Outcome.failure(Stage.VALIDATION, "ContactName: too long"),
        Origin("crm.events", 0, 7),
    )
    assert (
        set(dead["headers"]["required"])
        == {name for name, _ in written}
        == {
            "x-error-stage",
            "x-error-message",
            "x-event-id",
            "x-original-topic",
            "x-original-partition",
            "x-original-offset",
            "x-attempts",
        }
    )
    # Every $ref in the document resolves.
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        node: Any = document
        for key in ref.removeprefix("#/").split("/"):
            node = node[key]
