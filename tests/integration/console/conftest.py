"""The console as operators run it: ``sagebridge console`` as its own process, on the test's
topics, Redis prefix and audit topic, and a headless chromium to use it."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from service.dev.processes import REPO, free_port, spawn, wait_for_port
from tests.support.browser import Browser, start_chromium

PASSWORD = "console-pass-8c1e"  # distinctive, so leak checks can grep for it
OPERATOR = "ann"


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def audit_topic() -> str:
    return f"audit-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def console_env(
    service_env: dict[str, str], audit_topic: str, request: pytest.FixtureRequest
) -> dict[str, str]:
    """The console's environment; a test adds settings with
    ``@pytest.mark.parametrize("console_env", [{NAME: value}], indirect=True)``."""
    return {
        **service_env,
        "SAGEBRIDGE_AUDIT_TOPIC": audit_topic,
        "SAGEBRIDGE_CONSOLE_PASSWORD": PASSWORD,
        **getattr(request, "param", {}),
    }


def start_console(env: dict[str, str], log_dir: Path) -> tuple[str, object]:
    port = free_port()
    process = spawn(
        "console",
        [sys.executable, "-m", "service", "console"],
        log_dir / f"console-{port}.log",
        port=port,
        env={**env, "SAGEBRIDGE_CONSOLE_PORT": str(port)},
        cwd=REPO,
    )
    try:
        wait_for_port(port, 30, process.popen, "console")
    except BaseException:
        process.stop()
        raise
    return f"http://127.0.0.1:{port}", process


@pytest.fixture
def console(console_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """The console's base URL."""
    url, process = start_console(console_env, tmp_path)
    yield url
    process.stop()  # type: ignore[attr-defined]


@pytest.fixture
def browser(chromium: WebDriver, console: str) -> Browser:
    """One tab, no cookies: each test starts signed out."""
    for extra in chromium.window_handles[1:]:
        chromium.switch_to.window(extra)
        chromium.close()
    chromium.switch_to.window(chromium.window_handles[0])
    chromium.delete_all_cookies()
    return Browser(chromium, console)


@pytest.fixture
async def signed_in(console: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client signed in as :data:`OPERATOR` (for the checks a browser adds nothing to)."""
    async with httpx.AsyncClient(base_url=console, timeout=30) as client:
        answer = await client.post(
            "/login", data={"name": OPERATOR, "password": PASSWORD, "next": "/"}
        )
        assert answer.status_code == 303, answer.text
        yield client
