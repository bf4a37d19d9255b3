"""What each Cloud Connector answer means: only what proves nothing was processed is retryable;
any other failure after sending is an unknown outcome (never resent on the serial lane)."""

from __future__ import annotations

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
        (401, b"<html>401</html>"),
        (500, body("SUCCESS")),
    ],
    ids=[
        "500",
        "502-page",
        "504-page",
        "502-envelope",
        "503-page",
        "200-no-envelope",
        "401-no-envelope",
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


def test_an_error_envelope_with_a_4xx_refuses_the_whole_call() -> None:
    result = classify(400, body("ERROR", "missing header: customer"))
    assert result == Rejected("HTTP 400: missing header: customer", whole_call=True)


def test_a_refused_token_is_retryable_and_says_so() -> None:
    result = classify(401, body("ERROR", "missing or unknown Auth-Token"))
    assert result == Retryable("HTTP 401: missing or unknown Auth-Token", token_refused=True)
