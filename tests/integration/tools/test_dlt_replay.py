"""Fix and replay, against the real broker: an event for a tenant that is not configured yet
is refused (stage ``route``) and dead-lettered; the operator adds the tenant and restarts;
``sagebridge dlt replay`` sends the dead letters back and they are delivered. A second replay
sends nothing: each replayed letter is recorded in Redis (:mod:`service.state.replayed`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import load_settings
from service.dev.events import contact, event, produce
from service.dev.sandbox import SandboxOptions, SandboxThread
from service.dev.sandbox.client import stored_records
from service.dev.topics import Topics
from service.tools.replay import replay_dead_letters
from tests.conftest import TOKEN
from tests.support.cli import sagebridge
from tests.support.kafka import Collector

BETA = {"customer": "2002", "company": "BETA"}
BETA_TOKEN = "beta-token-c41e07"


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    """The default tenant's token, plus one bound to BETA (as a real Connector would)."""
    tokens = (TOKEN, f"{BETA_TOKEN}={BETA['customer']}/{BETA['company']}")
    with SandboxThread(SandboxOptions(port=0, tokens=tokens)) as running:
        yield running


async def cli_replay(env: dict[str, str]) -> str:
    """``python -m service dlt replay`` as an operator runs it."""
    return (await sagebridge(env, "dlt", "replay")).out


async def test_fix_the_configuration_then_replay_delivers(
    running_service,
    service_env: dict[str, str],
    kafka_bootstrap: str,
    topics: Topics,
    collector: Collector,
    sandbox: SandboxThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = [
        (b"beta-1", event("beta-1", contact(1), tenant=BETA)),
        (b"beta-2", event("beta-2", contact(2), tenant=BETA)),
    ]
    async with running_service():
        await produce(kafka_bootstrap, topics.events, events)
        refused = await collector.wait_for(topics.replies, 2)
        dead = await collector.wait_for(topics.dlt, 2)
    assert [r.json()["stage"] for r in refused] == ["route", "route"]
    assert {d.headers["x-event-id"] for d in dead} == {b"beta-1", b"beta-2"}
    assert await stored_records(sandbox, "/customerContacts") == []

    # The fix: BETA is configured (its token stays in the environment, named by the file).
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(
        "tenants:\n  - {customer: '2002', company: BETA, token_env: BETA_SAGE_TOKEN}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("BETA_SAGE_TOKEN", BETA_TOKEN)
    events_seen = await Collector(kafka_bootstrap, [topics.events]).start()
    try:
        async with running_service(tenants_file=tenants):
            settings = load_settings()
            capsys.readouterr()
            assert await replay_dead_letters(settings, limit=1) == 0
            assert "replayed 1 dead letter(s)" in capsys.readouterr().out
            # The rest through the real command line.
            assert "replayed 1 dead letter(s)" in await cli_replay(service_env)

            replies = await collector.wait_for(topics.replies, 4)
            # Nothing left: a second run replays nothing.
            assert await replay_dead_letters(settings) == 0
            assert "replayed 0 dead letter(s)" in capsys.readouterr().out
            assert "replayed 0 dead letter(s)" in await cli_replay(service_env)
        replayed = await events_seen.wait_for(topics.events, 4)
    finally:
        await events_seen.stop()

    answers = {r.json()["event_id"]: r.json() for r in replies[2:]}
    assert set(answers) == {"beta-1", "beta-2"}
    for answer in answers.values():
        assert answer["response"] == "SUCCESS", answer
        assert answer["tenant"] == BETA
    stored = await stored_records(sandbox, "/customerContacts")
    assert sorted(r["record"]["ContactCode"] for r in stored) == ["K0000001", "K0000002"]
    assert {(r["customer"], r["company"]) for r in stored} == {("2002", "BETA")}

    # The replayed messages are the originals byte for byte, marked with where they came from.
    originals, copies = replayed[:2], replayed[2:]
    assert len(replayed) == 4, "a second replay must not re-publish anything"
    assert sorted((c.key, c.value) for c in copies) == sorted((o.key, o.value) for o in originals)
    for copy in copies:
        assert copy.headers["x-replayed-from"].startswith(f"{topics.dlt}@0:".encode())
    assert len(collector.messages[topics.dlt]) == 2, "delivered events make no new dead letters"
