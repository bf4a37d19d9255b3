"""The console's sign-in pieces: the password kept only as a hash, wrong guesses limited per
client, sessions that end, and the settings that refuse a console anyone could use."""

from __future__ import annotations

import pytest

from service.console.auth import FailedSignIns, PasswordCheck, Sessions, same_token
from service.console.settings import load_console_settings
from service.errors import SettingsError


def test_the_password_is_checked_against_its_hash_only() -> None:
    check = PasswordCheck("s3cret-pass")
    assert check.matches("s3cret-pass")
    assert not check.matches("s3cret-pasS") and not check.matches("")
    assert "s3cret-pass" not in repr(vars(check))


def test_a_client_with_too_many_wrong_passwords_waits_others_do_not() -> None:
    failures = FailedSignIns(limit=3, window_s=60)
    for _ in range(3):
        assert not failures.blocked("10.0.0.1")
        failures.failed("10.0.0.1")
    assert failures.blocked("10.0.0.1")
    assert not failures.blocked("10.0.0.2")


def test_failures_older_than_the_window_are_forgotten() -> None:
    failures = FailedSignIns(limit=1, window_s=0)
    failures.failed("10.0.0.1")
    assert not failures.blocked("10.0.0.1")


def test_a_session_is_found_by_its_id_until_closed_or_expired() -> None:
    sessions = Sessions(lifetime_s=60)
    sid, session = sessions.open("ann")
    found = sessions.find(sid)
    assert found is not None and (found.user, found.csrf) == ("ann", session.csrf)
    assert sessions.find("guessed") is None and sessions.find(None) is None
    sessions.close(sid)
    assert sessions.find(sid) is None
    expired = Sessions(lifetime_s=-1)
    old, _ = expired.open("ann")
    assert expired.find(old) is None


def test_a_form_token_must_be_the_sessions_own() -> None:
    assert same_token("abc", "abc")
    assert (
        not same_token("abd", "abc") and not same_token("", "abc") and not same_token(None, "abc")
    )


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({}, "the console needs a way to sign in"),
        ({"password": "", "trusted_proxy_header": ""}, "the console needs a way to sign in"),
        ({"password": "p", "trusted_proxy_header": "X-User"}, "set only one of"),
        ({"password": "p", "port": 70000}, "SAGEBRIDGE_CONSOLE_PORT"),
    ],
)
def test_the_settings_refuse_a_console_without_one_way_to_sign_in(
    given: dict[str, object], says: str
) -> None:
    with pytest.raises(SettingsError, match=says) as raised:
        load_console_settings(**given)
    assert "\\n" not in str(raised.value)


@pytest.mark.usefixtures("clean_env")
def test_the_audit_topic_is_read_from_its_shared_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEBRIDGE_AUDIT_TOPIC", "ops.audit")
    assert load_console_settings(password="p").audit_topic == "ops.audit"
