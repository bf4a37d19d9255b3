"""A real headless browser for the console's tests: Debian's chromium through its chromedriver
(``apt-get install chromium chromium-driver``), never a downloaded one.

Selenium's calls block, so each runs in a worker thread: the test's event loop (where the
service may be running) keeps going while the browser waits for a page. Without chromium the
fixture fails (it does not skip): these tests are the console's proof.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DESKTOP, PHONE = (1280, 900), (390, 844)
PAGE_TIMEOUT_S = 60
"""Longest a page may take to answer (a replay reads the whole dead-letter topic)."""
T = TypeVar("T")


def start_chromium() -> WebDriver:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(str(p))]
    assert not missing, (
        f"the console's tests need {missing}: apt-get install chromium chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    return driver


class Browser:
    """The page a person sees, driven by what they read and click."""

    def __init__(self, driver: WebDriver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    async def _run(self, step: Callable[[], T]) -> T:
        return await asyncio.to_thread(step)

    async def open(self, path: str) -> str:
        """Go to ``path``; the page's visible text."""
        await self._run(lambda: self.driver.get(self.base_url + path))
        return await self.text()

    async def text(self) -> str:
        return await self._run(lambda: self.driver.find_element(By.TAG_NAME, "body").text)

    async def fill(self, name: str, value: str, within: str = "") -> None:
        """Type ``value`` into the field ``name`` (of the form matched by CSS ``within``)."""

        def step() -> None:
            field = self.driver.find_element(By.CSS_SELECTOR, f"{within} [name='{name}']".strip())
            field.clear()
            field.send_keys(value)

        await self._run(step)

    async def press(self, label: str, within: str = "") -> str:
        """Click the button whose text starts with ``label``; the next page's text."""

        def step() -> None:
            page = self.driver.find_element(By.TAG_NAME, "html")
            buttons = self.driver.find_elements(By.CSS_SELECTOR, f"{within} button".strip())
            [button] = [b for b in buttons if b.text.startswith(label)][:1]
            button.click()
            # The form's answer is a new document: wait for the old one to go, then for the new.
            wait = WebDriverWait(self.driver, PAGE_TIMEOUT_S)
            wait.until(_gone(page))
            wait.until(expected_conditions.presence_of_element_located((By.TAG_NAME, "body")))

        await self._run(step)
        return await self.text()

    async def sign_in(self, name: str, password: str) -> str:
        await self.open("/login")
        await self.fill("name", name)
        await self.fill("password", password)
        return await self.press("Sign in")

    async def screenshot(self, path: Path, size: tuple[int, int]) -> None:
        def step() -> None:
            self.driver.set_window_size(*size)
            height = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(size[0], max(size[1], min(int(height) + 140, 4000)))
            self.driver.save_screenshot(str(path))
            self.driver.set_window_size(*DESKTOP)

        await self._run(step)


def _gone(element: WebElement) -> Callable[[WebDriver], bool]:
    """Whether ``element``'s document has been replaced. Selenium's ``staleness_of`` expects a
    StaleElementReferenceException; chromium sometimes reports the same fact as "Node with
    given id does not belong to the document"."""

    def check(_: WebDriver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return check
