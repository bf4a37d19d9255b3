"""The console's promises to the people it protects: nothing without signing in, no action from
another site's form, no secret on any page, producers' HTML shown as text, wrong passwords
slowed down, and bad input or a missing Kafka answered with a page, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from selenium.webdriver.common.by import By

from service.answers.outcomes import Origin, Outcome, Stage, Subject, dead_letter_headers
from service.dev.topics import Topics
from tests.conftest import COMPANY, CUSTOMER, TOKEN
from tests.integration.console.conftest import OPERATOR, PASSWORD, start_console
from tests.support.browser import Browser
from tests.support.cli import sagebridge

PAGES = ["/", "/letters", "/letters/0/0", "/in-doubt", "/events", "/events?event_id=x", "/tenants"]
ACTIONS = ["/letters/replay", "/in-doubt/resolve", "/tenants/pause", "/tenants/resume", "/logout"]
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'


async def letter(bootstrap: str, topics: Topics, value: bytes, message: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.dlt,
            value,
            key=b"k",
            headers=dead_letter_headers(
                Subject("ev-1", "ev-1", None),
                Outcome.failure(Stage.VALIDATION, message, attempts=1),
                Origin(topics.events, 0, 0),
            ),
        )
    finally:
        await producer.stop()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has a form token"
    return found.group(1)


async def paused(redis, redis_prefix: str) -> dict[bytes, bytes]:
    return await redis.hgetall(f"{redis_prefix}:paused")


async def test_nothing_without_signing_in(console: str, redis, redis_prefix: str) -> None:
    async with httpx.AsyncClient(base_url=console) as client:
        for path in PAGES:
            answer = await client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        for path in ACTIONS:
            answer = await client.post(
                path, data={"tenant": f"{CUSTOMER}/{COMPANY}", "reason": "x"}
            )
            assert answer.status_code == 303, (path, answer.status_code)
    assert await paused(redis, redis_prefix) == {}


async def test_an_action_needs_the_sessions_form_token(
    signed_in: httpx.AsyncClient, redis, redis_prefix: str
) -> None:
    form = {"tenant": f"{CUSTOMER}/{COMPANY}", "reason": "month-end"}
    for token in ({}, {"csrf": ""}, {"csrf": "forged-token"}):
        answer = await signed_in.post("/tenants/pause", data={**form, **token})
        assert answer.status_code == 403 and "not from this console" in answer.text
    assert await paused(redis, redis_prefix) == {}
    token = csrf_of((await signed_in.get("/tenants")).text)
    answer = await signed_in.post("/tenants/pause", data={**form, "csrf": token})
    assert answer.status_code == 200, answer.text
    assert list(await paused(redis, redis_prefix)) == [f"{CUSTOMER}:{COMPANY}".encode()]


async def test_html_in_an_event_is_shown_as_text(
    browser: Browser, kafka_bootstrap: str, topics: Topics
) -> None:
    value = b'{"event_id": "ev-1", "type": "contact.upsert", "data": {"Name": "%s"}}' % (
        HOSTILE.replace('"', '\\"').encode()
    )
    await letter(kafka_bootstrap, topics, value, HOSTILE)
    await browser.sign_in(OPERATOR, PASSWORD)
    for path in ("/letters", "/letters/0/0", "/events?event_id=ev-1"):
        page = await browser.open(path)
        assert '<script>document.title="pwned"</script>' in page.replace('\\"', '"'), page
        assert browser.driver.title not in {"pwned", "1"}
        assert browser.driver.find_elements(By.CSS_SELECTOR, "main script, main img") == []


async def test_no_secret_in_any_response(
    signed_in: httpx.AsyncClient, kafka_bootstrap: str, topics: Topics, redis_url: str
) -> None:
    # A letter quoting the Connector's token and the console's password, as a careless
    # producer or an error message might: masked on every page that shows it.
    await letter(
        kafka_bootstrap,
        topics,
        b'{"event_id": "ev-1", "type": "contact.upsert", "data": {"Note": "%s %s"}}'
        % (TOKEN.encode(), PASSWORD.encode()),
        f"refused with token {TOKEN}",
    )
    answers = [await signed_in.get(path) for path in [*PAGES, "/letters/0/999", "/nowhere"]]
    answers += [
        await signed_in.get("/letters?stage=" + "x" * 500),
        await signed_in.get("/events?event_id=ev-1"),
        await signed_in.post("/tenants/pause", data={"csrf": "forged"}),
        await signed_in.get("/login"),
    ]
    assert "Note" in answers[2].text, "the letter is shown, masked"
    for answer in answers:
        text = answer.text + str(answer.headers)
        assert TOKEN not in text and PASSWORD not in text and redis_url not in text, answer.url
        assert "Traceback" not in text


async def test_bad_input_gets_a_clear_page(signed_in: httpx.AsyncClient) -> None:
    long = await signed_in.get("/letters?type=" + "x" * 201)
    assert long.status_code == 400 and "at most 200 are taken" in long.text
    when = await signed_in.get("/letters?since=yesterday")
    assert when.status_code == 400 and "not an ISO 8601 time" in when.text
    unknown = await signed_in.get("/events?event_id=never-seen")
    assert unknown.status_code == 404 and "Nothing is known of event_id" in unknown.text
    token = csrf_of((await signed_in.get("/tenants")).text)
    stranger = await signed_in.post(
        "/tenants/pause", data={"csrf": token, "tenant": "9/NOPE", "reason": "x"}
    )
    assert stranger.status_code == 400 and "not a configured tenant" in stranger.text


async def test_wrong_passwords_are_slowed_down(console: str) -> None:
    async with httpx.AsyncClient(base_url=console) as client:
        for _ in range(5):
            wrong = await client.post("/login", data={"name": "eve", "password": "guess"})
            assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        right = await client.post("/login", data={"name": "eve", "password": PASSWORD})
        assert right.status_code == 429 and "wait a minute" in right.text


async def test_kafka_and_redis_away_get_a_page(console_env: dict[str, str], tmp_path: Path) -> None:
    away = {
        **console_env,
        "SAGEBRIDGE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "SAGEBRIDGE_REDIS_URL": "redis://:hunter2-redis@127.0.0.1:1/0",
    }
    url, process = start_console(away, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await client.post("/login", data={"name": OPERATOR, "password": PASSWORD})
            for path in ("/", "/letters", "/in-doubt", "/tenants"):
                answer = await client.get(path)
                assert answer.status_code == 503, (path, answer.status_code)
                assert "cannot reach" in answer.text and "Traceback" not in answer.text
                assert "hunter2-redis" not in answer.text
    finally:
        process.stop()  # type: ignore[attr-defined]


async def test_behind_a_proxy_the_header_names_the_user(
    console_env: dict[str, str], tmp_path: Path, redis, redis_prefix: str
) -> None:
    env = {k: v for k, v in console_env.items() if k != "SAGEBRIDGE_CONSOLE_PASSWORD"}
    env["SAGEBRIDGE_CONSOLE_TRUSTED_PROXY_HEADER"] = "X-Forwarded-User"
    url, process = start_console(env, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            assert (await client.get("/tenants")).status_code == 401
            client.headers["X-Forwarded-User"] = "bob@example.com"
            page = await client.get("/tenants")
            assert page.status_code == 200 and "bob@example.com" in page.text
            answer = await client.post(
                "/tenants/pause",
                data={"csrf": csrf_of(page.text), "tenant": f"{CUSTOMER}/{COMPANY}", "reason": "r"},
            )
            assert answer.status_code == 200 and "done by bob@example.com" in answer.text
    finally:
        process.stop()  # type: ignore[attr-defined]
    assert await paused(redis, redis_prefix) != {}


async def test_without_a_way_to_sign_in_it_refuses_to_start(service_env: dict[str, str]) -> None:
    ran = await sagebridge(
        {
            **service_env,
            "SAGEBRIDGE_CONSOLE_PASSWORD": "",
            "SAGEBRIDGE_CONSOLE_TRUSTED_PROXY_HEADER": "",
        },
        "console",
        ok=False,
    )
    assert ran.code == 2
    assert ran.err.strip().splitlines() == [
        "sagebridge: bad setting: the console needs a way to sign in: set "
        "SAGEBRIDGE_CONSOLE_PASSWORD or SAGEBRIDGE_CONSOLE_TRUSTED_PROXY_HEADER"
    ]
