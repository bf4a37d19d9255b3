"""The ``reply_to`` rules, decided without Kafka: which topics a tenant's events may name, and
how the global allow-list and a tenant's own list combine."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from service.config import load_settings
from service.errors import SettingsError
from service.intake.topics import ReplyTopics
from service.tenants import Tenant, TenantDirectory
from service.topic_names import TopicPatterns

ACME = Tenant("1001", "ACME", SecretStr("t"))
BETA = Tenant("2002", "BETA", SecretStr("t"), TopicPatterns.of(["beta.replies", "beta.*.out"]))
MUTE = Tenant("3003", "MUTE", SecretStr("t"), TopicPatterns.of([]))


def rules(**settings: object) -> ReplyTopics:
    base: dict[str, object] = {
        "input_topics": "crm.events,crm.more",
        "reply_topic": "sage.replies",
        "dlt_topic": "sage.dlt",
    }
    return ReplyTopics.from_settings(load_settings(**{**base, **settings}))


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("crm.events", "input topic"),
        ("crm.more", "input topic"),
        ("sage.dlt", "dead-letter topic"),
        ("sage.dlt.replayed", "records the dead letters replayed"),
        ("__consumer_offsets", "Kafka's own"),
        ("__transaction_state", "Kafka's own"),
    ],
)
@pytest.mark.parametrize("tenant", [ACME, BETA], ids=["global-rule", "own-list"])
def test_always_refused_whatever_the_lists_say(topic: str, reason: str, tenant: Tenant) -> None:
    everything = rules(reply_topics="*")
    refusal = everything.refusal(topic, tenant)
    assert refusal is not None and reason in refusal


def test_without_any_list_every_other_topic_is_allowed() -> None:
    assert rules().refusal("anything.at-all", ACME) is None


def test_the_global_list_allows_only_what_it_names_with_wildcards() -> None:
    listed = rules(reply_topics="crm.replies, crm.*.replies")
    assert listed.refusal("crm.replies", ACME) is None
    assert listed.refusal("crm.eu.replies", ACME) is None
    assert listed.refusal("crm.replies.extra", ACME) == "not among SAGEBRIDGE_REPLY_TOPICS"
    assert listed.refusal("CRM.REPLIES", ACME) is not None, "topic names are case-sensitive"


def test_a_tenants_own_list_replaces_the_global_one() -> None:
    listed = rules(reply_topics="crm.*")
    assert listed.refusal("beta.replies", BETA) is None
    assert listed.refusal("beta.eu.out", BETA) is None
    refusal = listed.refusal("crm.replies", BETA)
    assert refusal == "not among the reply_topics of tenant 2002/BETA"
    assert listed.refusal("crm.replies", ACME) is None, "other tenants keep the global list"
    assert listed.refusal("beta.replies", ACME) is not None


def test_the_default_reply_topic_is_always_allowed() -> None:
    assert rules(reply_topics="crm.only").refusal("sage.replies", ACME) is None
    assert rules().refusal("sage.replies", MUTE) is None
    assert rules().refusal("mute.replies", MUTE) is not None, "an empty own list allows none"


def test_reply_topics_setting_is_a_comma_separated_list_of_patterns() -> None:
    assert load_settings(reply_topics=" a.b , c.* ,,").reply_topics == ("a.b", "c.*")
    assert load_settings(reply_topics="").reply_topics is None


@pytest.mark.parametrize("bad", ["crm replies", "crm.?", "crm.[ab]", "ü.replies"])
def test_a_bad_pattern_stops_start_up_naming_the_variable(bad: str) -> None:
    with pytest.raises(SettingsError, match=r"^SAGEBRIDGE_REPLY_TOPICS: "):
        load_settings(reply_topics=f"ok.topic,{bad}")


def test_tenants_file_carries_reply_topics(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BETA_TOKEN", "beta-token")
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n"
        "  - {customer: '2002', company: BETA, token_env: BETA_TOKEN,"
        " reply_topics: [beta.replies, 'beta.*']}\n"
        "  - {customer: '3003', company: GAMMA, token_env: BETA_TOKEN}\n",
        encoding="utf-8",
    )
    directory = TenantDirectory.from_settings(load_settings(tenants_file=path))
    beta, gamma = directory.resolve("2002", "BETA"), directory.resolve("3003", "GAMMA")
    assert beta is not None and beta.reply_topics is not None
    assert beta.reply_topics.patterns == ("beta.replies", "beta.*")
    assert gamma is not None and gamma.reply_topics is None


@pytest.mark.parametrize("value", ["beta.replies", "[1, 2]", "['bad topic']"])
def test_malformed_tenant_reply_topics_name_the_file_and_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("BETA_TOKEN", "beta-token")
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n"
        f"  - {{customer: '2002', company: BETA, token_env: BETA_TOKEN, reply_topics: {value}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(SettingsError, match=r"^SAGEBRIDGE_TENANTS_FILE .*entry 0: reply_topics"):
        TenantDirectory.from_settings(load_settings(tenants_file=path))
