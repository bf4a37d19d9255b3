"""What each Cloud Connector answer means: only what proves nothing was processed is retryable;
any other failure after sending is an unknown outcome (never resent on the serial lane)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from service.connector.results import Delivered, Rejected, Retryable, Unknown, classify


def body(response: str, message: str | None = None) -> bytes:
    doc = {"response": response} if message is None else {"response": response, "message": message}
    return orjson.dumps(doc)


PROXY_PAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def test_success_is_delivered() -> None:
    assert classify(200, body("SUCCESS")) == Delivered({"response": "SUCCESS"})


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (429, body("ERROR", "slow down")),
        (429, b"Too Many Requests"),
        (503, body("ERROR", "Sage server unreachable")),
    ],
    ids=["429-envelope", "429-page", "503-envelope"],
)
def test_only_what_proves_nothing_was_processed_is_retryable(status: int, content: bytes) -> None:
    assert isinstance(classify(status, content), Retryable)


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (500, body("ERROR", "server error")),
        (502, PROXY_PAGE),
        (504, PROXY_PAGE),
        (502, body("ERROR", "bad gateway")),
        (503, b"Service Unavailable"),
        (200, b"OK"),
        (500, body("SUCCESS")),
    ],
    ids=[
        "500",
        "502-page",
        "504-page",
        "502-envelope",
        "503-page",
        "200-no-envelope",
        "500-success",
    ],
)
def test_any_other_failure_after_sending_is_an_unknown_outcome(status: int, content: bytes) -> None:
    result = classify(status, content)
    assert isinstance(result, Unknown), result
    assert f"HTTP {status}" in result.reason


def test_an_error_envelope_names_the_bad_record_of_an_array() -> None:
    result = classify(200, body("ERROR", "record 7: ContactName: at most 30 characters, got 41"))
    assert result == Rejected(
        "record 7: ContactName: at most 30 characters, got 41", record_index=7
    )


@pytest.mark.parametrize("status", [401, 403, 404, 405, 413, 415])
def test_an_error_envelope_from_the_front_door_refuses_the_whole_call(status: int) -> None:
    """Token, endpoint, method, size, media type: refused before any record was looked at."""
    result = classify(status, body("ERROR", "not here"))
    if status == 401:  # the Connector's own refusal of the token: see below
        assert isinstance(result, Retryable) and result.token_refused
    else:
        assert result == Rejected(f"HTTP {status}: not here", whole_call=True)


@pytest.mark.parametrize("status", [400, 409, 422])
def test_any_other_4xx_error_envelope_is_a_refusal_of_records(status: int) -> None:
    """Not of the call: an array the Connector does not store all or nothing may have had rows
    stored before the bad one, which only the array's ``atomic_arrays`` can rule out."""
    result = classify(status, body("ERROR", "record 3: Amount: not numeric"))
    assert result == Rejected(f"HTTP {status}: record 3: Amount: not numeric", record_index=3)
    unnamed = classify(status, body("ERROR", "Sage refused the batch"))
    assert unnamed == Rejected(f"HTTP {status}: Sage refused the batch")


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (401, b"Unauthorized"),
        (401, b"<html><body><h1>401 Authorization Required</h1></body></html>"),
        (403, b"Forbidden"),
        (403, b'{"error": "invalid api key"}'),
    ],
    ids=["401-text", "401-html", "403-text", "403-json-not-envelope"],
)
def test_a_gateway_refusing_the_token_opens_the_breaker_with_nothing_in_doubt(
    status: int, content: bytes
) -> None:
    """A 401/403 without the Connector's envelope came from a gateway in front of it: nothing
    was processed, so it is a refused token (the breaker opens, records wait), not a doubt."""
    result = classify(status, content)
    assert isinstance(result, Retryable), result
    assert result.token_refused and result.gateway
    assert result.reason.startswith(f"HTTP {status} without a response envelope")


NOW = datetime(2026, 12, 7, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("Mon, 07 Dec 2026 08:00:12 GMT", 12.0),  # IMF-fixdate
        ("Mon, 07 Dec 2026 07:59:00 GMT", 0.0),  # already past: no wait
        ("600", 60.0),  # capped
        ("Tue, 08 Dec 2026 08:00:00 GMT", 60.0),  # a day away: capped
        ("soon", None),
        ("-5", None),
        ("1.5", None),  # delay-seconds is whole digits only
        (None, None),
    ],
)
@pytest.mark.parametrize(("status", "content"), [(429, b"slow down"), (503, None)])
def test_retry_after_is_read_in_both_forms_and_capped(
    header: str | None, expected: float | None, status: int, content: bytes | None
) -> None:
    content = content if content is not None else body("ERROR", "try later")
    result = classify(status, content, retry_after=header, retry_after_max_s=60.0, now=NOW)
    assert isinstance(result, Retryable) and result.retry_after_s == expected, result


def test_retry_after_on_an_unknown_outcome_or_a_refusal_changes_nothing() -> None:
    """A 503 page may come after the record was processed; it stays in doubt, whatever it says."""
    assert classify(503, b"Service Unavailable", retry_after="3") == Unknown(
        "HTTP 503 without a response envelope"
    )
    assert classify(200, body("ERROR", "bad"), retry_after="3") == Rejected("bad")


def test_a_refused_token_is_retryable_and_says_so() -> None:
    result = classify(401, body("ERROR", "missing or unknown Auth-Token"))
    assert result == Retryable("HTTP 401: missing or unknown Auth-Token", token_refused=True)
