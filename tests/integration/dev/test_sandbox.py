"""The Cloud Connector sandbox over real HTTP: headers, contracts, all-or-nothing arrays, faults,
transactional overlap detection, record numbers, reset, and that no token ever leaks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.dev.sandbox import SandboxOptions, SandboxThread

TOKEN = "sandbox-token-7f3a"
BOUND_TOKEN = "bound-token-91c2"
HEADERS = {"Auth-Token": TOKEN, "customer": "ACME", "company": "C1"}
CONTACTS = "/customerContacts"
RECEIVABLE = "/accountsReceivable"
DEADLINE_S = 5.0


def contact(code: str = "JSMITH", **changes: Any) -> dict[str, Any]:
    return {
        "ARDivisionNo": "01",
        "CustomerNo": "ABC",
        "ContactCode": code,
        "ContactName": "Jane Smith",
        **changes,
    }


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    options = SandboxOptions(port=0, tokens=(TOKEN, f"{BOUND_TOKEN}=ACME/C1"), seed=7)
    with SandboxThread(options) as running:
        yield running


@pytest.fixture
def client(sandbox: SandboxThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=DEADLINE_S) as http:
        yield http


def stats(client: httpx.Client) -> dict[str, Any]:
    result: dict[str, Any] = client.get("/_sandbox/stats").json()
    return result


def stored(client: httpx.Client, endpoint: str | None = None) -> list[dict[str, Any]]:
    params = {"endpoint": endpoint} if endpoint else {}
    result: list[dict[str, Any]] = client.get("/_sandbox/records", params=params).json()["records"]
    return result


def set_faults(client: httpx.Client, **faults: Any) -> None:
    assert client.post("/_sandbox/faults", json=faults).status_code == 200


async def wait_for_stat(http: httpx.AsyncClient, name: str, value: int) -> None:
    """Poll the sandbox's own counters until ``name`` reaches ``value`` (a condition, no sleep)."""
    deadline = time.monotonic() + DEADLINE_S
    while (await http.get("/_sandbox/stats")).json()[name] != value:
        assert time.monotonic() < deadline, f"stats {name} never reached {value}"


# -- front door ------------------------------------------------------------------------------


def test_unknown_token_is_401(client: httpx.Client) -> None:
    response = client.post(CONTACTS, json=contact(), headers={**HEADERS, "Auth-Token": "nope"})
    assert response.status_code == 401
    assert response.json()["response"] == "ERROR"
    assert stored(client) == []


def test_token_bound_to_another_tenant_is_403(client: httpx.Client) -> None:
    headers = {**HEADERS, "Auth-Token": BOUND_TOKEN, "customer": "OTHER"}
    response = client.post(CONTACTS, json=contact(), headers=headers)
    assert response.status_code == 403
    body = response.json()
    assert body["response"] == "ERROR"
    assert "OTHER" in body["message"] and "ACME" in body["message"]
    assert BOUND_TOKEN not in response.text


def test_bound_token_works_for_its_own_tenant(client: httpx.Client) -> None:
    response = client.post(CONTACTS, json=contact(), headers={**HEADERS, "Auth-Token": BOUND_TOKEN})
    assert response.json() == {"response": "SUCCESS", "records": 1}


@pytest.mark.parametrize(
    ("drop", "extra", "needle"),
    [
        ("customer", {}, "customer"),
        ("company", {}, "company"),
        (None, {"customer": ""}, "customer"),
        (None, {"Content-Type": "text/plain"}, "Content-Type"),
    ],
    ids=["no-customer", "no-company", "empty-customer", "wrong-content-type"],
)
def test_bad_headers_are_400(
    client: httpx.Client, drop: str | None, extra: dict[str, str], needle: str
) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != drop} | {
        "Content-Type": "application/json",
        **extra,
    }
    response = client.post(CONTACTS, content=b'{"ContactCode":"X"}', headers=headers)
    assert response.status_code == 400
    assert response.json()["response"] == "ERROR"
    assert needle in response.json()["message"]


def test_body_that_is_not_an_object_or_array_of_objects_is_400(client: httpx.Client) -> None:
    for body in ("[]", "[1]", '"text"', "{not json"):
        response = client.post(
            CONTACTS, content=body, headers={**HEADERS, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, body
        assert response.json()["response"] == "ERROR"


def test_unknown_endpoint_is_404(client: httpx.Client) -> None:
    response = client.post("/noSuchTable", json=contact(), headers=HEADERS)
    assert response.status_code == 404
    assert response.json()["response"] == "ERROR"


# -- contracts and arrays --------------------------------------------------------------------


def test_over_long_field_is_refused_naming_record_and_field(client: httpx.Client) -> None:
    response = client.post(CONTACTS, json=contact(ContactName="x" * 31), headers=HEADERS)
    assert response.status_code == 200
    body = response.json()
    assert body["response"] == "ERROR"
    assert body["message"] == "record 0: ContactName: at most 30 characters, got 31"
    assert stored(client) == []
    assert stats(client)["records"] == 0


def test_array_of_100_valid_contacts_is_one_successful_batch_call(client: httpx.Client) -> None:
    records = [contact(f"C{i:03d}") for i in range(100)]
    response = client.post(CONTACTS, json=records, headers=HEADERS)
    assert response.json() == {"response": "SUCCESS", "records": 100}
    counters = stats(client)
    assert (counters["calls"], counters["batch_calls"], counters["records"]) == (1, 1, 100)
    kept = stored(client, CONTACTS)
    assert [r["record"] for r in kept] == records
    assert {(r["customer"], r["company"], r["call"]) for r in kept} == {("ACME", "C1", 1)}
    assert stored(client, RECEIVABLE) == []


def test_array_is_all_or_nothing(client: httpx.Client) -> None:
    records = [contact(f"C{i:03d}") for i in range(10)]
    records[7]["City"] = "x" * 21
    response = client.post(CONTACTS, json=records, headers=HEADERS)
    body = response.json()
    assert body["response"] == "ERROR"
    assert body["message"].startswith("record 7: City:")
    assert stored(client) == []
    assert stats(client)["rejected_records"] == 1


def test_partial_arrays_keep_the_records_before_the_bad_one(client: httpx.Client) -> None:
    """A Connector that writes an array row by row: a refused array has stored part of it."""
    set_faults(client, partial_arrays=True, reject_marker="REJECT-ME")
    records = [{"InvoiceNo": f"I{n}", "Memo": "REJECT-ME" if n == 3 else ""} for n in range(6)]
    body = client.post(RECEIVABLE, json=records, headers=HEADERS).json()
    assert body == {"response": "ERROR", "message": "record 3: Memo: rejected by Sage"}
    kept = stored(client, RECEIVABLE)
    assert [r["record"]["InvoiceNo"] for r in kept] == ["I0", "I1", "I2"]
    assert [r["record_number"] for r in kept] == [1, 2, 3]


def test_reject_marker_refuses_a_record_the_contract_accepts(client: httpx.Client) -> None:
    set_faults(client, reject_marker="REJECT-ME")
    records = [contact("A"), contact("B", City="REJECT-ME")]
    body = client.post(CONTACTS, json=records, headers=HEADERS).json()
    assert body == {"response": "ERROR", "message": "record 1: City: rejected by Sage"}
    assert stored(client) == []


# -- injected faults -------------------------------------------------------------------------


def test_fail_rate_one_answers_500(client: httpx.Client) -> None:
    set_faults(client, fail_rate=1.0)
    response = client.post(CONTACTS, json=contact(), headers=HEADERS)
    assert response.status_code == 500
    assert response.json() == {"response": "ERROR", "message": "sandbox: injected server error"}
    assert stored(client) == []


def test_error_rate_one_answers_200_with_error_envelope(client: httpx.Client) -> None:
    set_faults(client, error_rate=1.0)
    response = client.post(CONTACTS, json=contact(), headers=HEADERS)
    assert response.status_code == 200
    assert response.json() == {"response": "ERROR", "message": "sandbox: injected ERROR envelope"}
    assert stored(client) == []


def test_down_answers_503(client: httpx.Client) -> None:
    set_faults(client, down=True)
    response = client.post(CONTACTS, json=contact(), headers=HEADERS)
    assert response.status_code == 503
    assert response.json()["response"] == "ERROR"


def test_a_gateway_refuses_the_next_calls_in_plain_text_before_the_connector(
    client: httpx.Client,
) -> None:
    set_faults(client, gateway_401=2)
    answers = [client.post(CONTACTS, json=contact(), headers=HEADERS) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 200]
    assert answers[0].headers["content-type"].startswith("text/plain")
    assert not answers[0].text.startswith("{")
    assert len(stored(client)) == 1 and stats(client)["injected"]["gateway_401"] == 2


@pytest.mark.parametrize("status", [429, 503])
def test_a_throttled_call_says_when_to_come_back(client: httpx.Client, status: int) -> None:
    when = "Mon, 07 Dec 2026 08:00:12 GMT"
    set_faults(client, throttle_count=1, throttle_status=status, retry_after=when)
    first = client.post(CONTACTS, json=contact(), headers=HEADERS)
    second = client.post(CONTACTS, json=contact(), headers=HEADERS)
    assert (first.status_code, first.headers["retry-after"]) == (status, when)
    assert first.json()["response"] == "ERROR"
    assert second.status_code == 200 and "retry-after" not in second.headers
    logged = client.get("/_sandbox/calls").json()["calls"]
    assert logged[0]["received_s"] <= logged[1]["received_s"]


def test_a_refused_record_can_be_answered_with_a_4xx(client: httpx.Client) -> None:
    set_faults(client, reject_marker="REJECT-ME", refusal_status=422)
    response = client.post(
        CONTACTS, json=[contact(), contact(ContactName="REJECT-ME")], headers=HEADERS
    )
    assert response.status_code == 422
    assert response.json()["message"].startswith("record 1: ")


@pytest.mark.parametrize(
    "faults",
    [{"gateway_401": -1}, {"throttle_status": 500}, {"refusal_status": 500}, {"retry_after": 3}],
)
def test_new_faults_refuse_bad_values(client: httpx.Client, faults: dict[str, Any]) -> None:
    assert client.post("/_sandbox/faults", json=faults).status_code == 400


def test_faults_update_rejects_unknown_keys_and_changes_nothing(client: httpx.Client) -> None:
    before = client.get("/_sandbox/faults").json()
    response = client.post("/_sandbox/faults", json={"fail_rate": 1.0, "fial_rate": 1.0})
    assert response.status_code == 400
    assert "fial_rate" in response.json()["message"]
    assert client.get("/_sandbox/faults").json() == before


async def test_hung_request_is_released_by_a_faults_update(sandbox: SandboxThread) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=DEADLINE_S) as http:
        await http.post("/_sandbox/faults", json={"hang_rate": 1.0})
        hung = asyncio.create_task(http.post(RECEIVABLE, json={"Amount": 1}, headers=HEADERS))
        await wait_for_stat(http, "in_progress_transactional", 1)
        await http.post("/_sandbox/faults", json={"hang_rate": 0.0})
        response = await hung
    assert response.status_code == 503
    assert response.json()["message"] == "sandbox: hung request released"


async def test_a_hung_request_outlives_its_client_and_keeps_the_tenant_occupied(
    sandbox: SandboxThread,
) -> None:
    """Like a real server, the sandbox does not notice a client that gave up: the call stays in
    progress until released, and a second call for the tenant meanwhile is a violation."""
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=DEADLINE_S) as http:
        await http.post("/_sandbox/faults", json={"hang_rate": 1.0})
        for amount in (1, 2):  # the second arrives while the first, given up on, still runs
            with pytest.raises(httpx.ReadTimeout):
                await http.post(RECEIVABLE, json={"Amount": amount}, headers=HEADERS, timeout=0.2)
        occupied = (await http.get("/_sandbox/stats")).json()
        await http.post("/_sandbox/faults", json={"hang_rate": 0.0})  # releases both
        await wait_for_stat(http, "in_progress_transactional", 0)
    assert occupied["in_progress_transactional"] == 2
    assert occupied["in_progress_tenants"] == ["ACME/C1"]
    assert occupied["violations"] == 1 and occupied["max_concurrent_transactional"] == 2
    assert occupied["injected"]["hang"] == 2


async def test_a_slow_call_abandoned_by_its_client_still_stores_and_counts_overlaps(
    sandbox: SandboxThread,
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=DEADLINE_S) as http:
        await http.post("/_sandbox/faults", json={"slow_rate": 1.0, "slow_ms": 600})
        with pytest.raises(httpx.ReadTimeout):
            await http.post(RECEIVABLE, json={"Amount": 1}, headers=HEADERS, timeout=0.2)
        await http.post("/_sandbox/faults", json={"slow_rate": 0.0})
        second = await http.post(RECEIVABLE, json={"Amount": 2}, headers=HEADERS)
        await wait_for_stat(http, "abandoned", 1)  # the first one ended, for nobody
        counters = (await http.get("/_sandbox/stats")).json()
        records = (await http.get("/_sandbox/records")).json()["records"]
    assert second.json()["message"] == "sandbox: concurrent call to a transactional endpoint"
    assert counters["violations"] == 1 and counters["injected"]["slow"] == 1
    assert [r["record"]["Amount"] for r in records] == [1]  # stored though nobody heard


@pytest.mark.parametrize(
    ("status", "envelope"), [(500, True), (502, False), (504, False)], ids=["500", "502", "504"]
)
def test_store_then_fail_stores_the_record_and_answers_a_failure(
    client: httpx.Client, status: int, envelope: bool
) -> None:
    set_faults(client, store_then_fail_rate=1.0, store_then_fail_status=status)
    response = client.post(RECEIVABLE, json={"Amount": 1}, headers=HEADERS)
    assert response.status_code == status
    assert (response.headers["content-type"] == "application/json") is envelope
    assert [r["record"] for r in stored(client, RECEIVABLE)] == [{"Amount": 1}]
    assert stats(client)["injected"]["store_then_fail"] == 1


def test_fencing_headers_are_ignored_unless_checking_is_asked_for(client: httpx.Client) -> None:
    """The real Cloud Connector ignores X-Fencing-Token: a stale holder's call goes through."""
    newer, stale = {**HEADERS, "X-Fencing-Token": "9"}, {**HEADERS, "X-Fencing-Token": "3"}
    client.post(RECEIVABLE, json={"Amount": 1}, headers=newer)
    assert client.post(RECEIVABLE, json={"Amount": 2}, headers=stale).json()["response"] == (
        "SUCCESS"
    )
    set_faults(client, check_fencing=True)
    refused = client.post(RECEIVABLE, json={"Amount": 3}, headers=stale).json()
    assert refused["message"] == "sandbox: stale fencing token (a newer lock holder exists)"
    assert stats(client)["stale_fences"] == 2  # observed both times, refused once
    assert [r["record"]["Amount"] for r in stored(client, RECEIVABLE)] == [1, 2]


# -- transactional endpoints -----------------------------------------------------------------


async def test_overlapping_transactional_calls_for_one_tenant_are_a_violation(
    sandbox: SandboxThread,
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=DEADLINE_S) as http:
        await http.post("/_sandbox/faults", json={"latency_ms": 500})
        first = asyncio.create_task(http.post(RECEIVABLE, json={"Amount": 1}, headers=HEADERS))
        await wait_for_stat(http, "in_progress_transactional", 1)
        second = await http.post(RECEIVABLE, json={"Amount": 2}, headers=HEADERS)
        first_body = (await first).json()
        counters = (await http.get("/_sandbox/stats")).json()
    assert first_body == {"response": "SUCCESS", "records": 1, "record_numbers": [1]}
    assert second.json() == {
        "response": "ERROR",
        "message": "sandbox: concurrent call to a transactional endpoint",
    }
    assert counters["violations"] == 1
    assert counters["max_concurrent_transactional"] == 2
    assert counters["records"] == 1


async def test_overlapping_transactional_calls_for_different_tenants_are_fine(
    sandbox: SandboxThread,
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=DEADLINE_S) as http:
        await http.post("/_sandbox/faults", json={"latency_ms": 500})
        calls = [
            asyncio.create_task(
                http.post(RECEIVABLE, json={"Amount": 1}, headers={**HEADERS, "company": company})
            )
            for company in ("C1", "C2")
        ]
        await wait_for_stat(http, "in_progress_transactional", 2)  # they really overlap
        bodies = [(await call).json() for call in calls]
        counters = (await http.get("/_sandbox/stats")).json()
    assert bodies == [{"response": "SUCCESS", "records": 1, "record_numbers": [1]}] * 2
    assert counters["violations"] == 0
    assert counters["max_concurrent_transactional"] == 1


def test_sequential_transactional_calls_get_increasing_record_numbers(
    client: httpx.Client,
) -> None:
    numbers = [
        client.post(RECEIVABLE, json={"Amount": n}, headers=HEADERS).json()["record_numbers"]
        for n in range(3)
    ]
    batch = client.post(RECEIVABLE, json=[{"Amount": 3}, {"Amount": 4}], headers=HEADERS)
    other = client.post(RECEIVABLE, json={"Amount": 5}, headers={**HEADERS, "company": "C2"})
    assert numbers == [[1], [2], [3]]
    assert batch.json()["record_numbers"] == [4, 5]
    assert other.json()["record_numbers"] == [1]
    assert [r["record_number"] for r in stored(client, RECEIVABLE)] == [1, 2, 3, 4, 5, 1]
    assert stats(client)["violations"] == 0


# -- reset and secrecy -----------------------------------------------------------------------


def test_reset_clears_records_stats_calls_and_numbers_but_keeps_faults(
    client: httpx.Client,
) -> None:
    client.post(CONTACTS, json=[contact("A"), contact("B")], headers=HEADERS)
    client.post(RECEIVABLE, json={"Amount": 1}, headers=HEADERS)
    set_faults(client, reject_marker="NOPE")
    assert client.post("/_sandbox/reset").status_code == 200
    assert stored(client) == []
    assert client.get("/_sandbox/calls").json() == {"calls": []}
    counters = stats(client)
    assert (counters["calls"], counters["batch_calls"], counters["records"]) == (0, 0, 0)
    assert client.get("/_sandbox/faults").json()["reject_marker"] == "NOPE"
    again = client.post(RECEIVABLE, json={"Amount": 2}, headers=HEADERS).json()
    assert again["record_numbers"] == [1]


def test_reset_with_faults_true_restores_start_up_faults(client: httpx.Client) -> None:
    set_faults(client, fail_rate=1.0)
    client.post("/_sandbox/reset", json={"faults": True})
    assert client.get("/_sandbox/faults").json()["fail_rate"] == 0.0
    assert client.post(CONTACTS, json=contact(), headers=HEADERS).status_code == 200


def test_no_response_or_call_log_contains_a_token(client: httpx.Client) -> None:
    set_faults(client, reject_marker="BAD")
    texts = [
        client.post(CONTACTS, json=contact(), headers=HEADERS).text,
        client.post(CONTACTS, json=contact(City="BAD"), headers=HEADERS).text,
        client.post(CONTACTS, json=contact(ContactName="x" * 40), headers=HEADERS).text,
        client.post(CONTACTS, json=contact(), headers={**HEADERS, "Auth-Token": TOKEN + "x"}).text,
        client.post(
            CONTACTS, json=contact(), headers={**HEADERS, "Auth-Token": BOUND_TOKEN, "company": "Z"}
        ).text,
        client.post(RECEIVABLE, json={"Amount": 1}, headers={**HEADERS, "company": ""}).text,
        client.post("/noSuchTable", json=contact(), headers=HEADERS).text,
    ]
    texts += [client.get(f"/_sandbox/{name}").text for name in ("calls", "stats", "records")]
    for text in texts:
        assert TOKEN not in text and BOUND_TOKEN not in text, text
    calls = client.get("/_sandbox/calls").json()["calls"]
    assert len(calls) == 7
    assert {call["token"] for call in calls} == {"token#1", "token#2", None}


def test_a_lookup_by_the_key_answers_the_current_row_only(client: httpx.Client) -> None:
    """The Connector's list GET, as reconciliation uses it: the latest write of the row with
    those keys, for this company only (a lookup by fewer elements still works, by scanning)."""
    client.post(CONTACTS, json=[contact("A", ContactName="Old"), contact("B")], headers=HEADERS)
    client.post(CONTACTS, json=contact("A", ContactName="New"), headers=HEADERS)
    client.post(
        CONTACTS, json=contact("A", ContactName="Other"), headers={**HEADERS, "company": "C2"}
    )
    keys = {"arDivisionNo": "01", "customerNo": "ABC", "contactCode": "A"}
    found = client.get(CONTACTS, params=keys, headers=HEADERS).json()
    assert [row["ContactName"] for row in found["records"]] == ["New"]
    missing = client.get(CONTACTS, params={**keys, "contactCode": "Z"}, headers=HEADERS).json()
    assert missing["records"] == []
    by_customer = client.get(CONTACTS, params={"customerNo": "ABC"}, headers=HEADERS).json()
    assert sorted(row["ContactCode"] for row in by_customer["records"]) == ["A", "B"]
    assert stats(client)["lookups"] == 3
