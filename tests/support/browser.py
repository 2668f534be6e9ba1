"""A real browser for the operator console's tests (tests/browser): headless Chromium
from Debian (``chromium``, ``chromium-driver``) driven by Selenium.

Selenium is given both paths, so Selenium Manager never runs (it would download a
driver, which CI cannot); ``SE_OFFLINE`` makes sure of it should anything call it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tests.support.helpers import unavailable

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH, HEIGHT = 1400, 1000
PAGE_LOAD_TIMEOUT_S = 30
SCREENSHOTS_ENV = "ASYNCJOBS_SCREENSHOTS"

T = TypeVar("T")


def require_chromium() -> None:
    """Skip (locally) or fail (under CI) when Chromium, its driver or Selenium is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        unavailable(
            f"the browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} "
            "missing: apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        unavailable("the browser tests need selenium (the dev extra: pip install -e '.[dev]')")


def start_browser() -> WebDriver:
    """Headless Chromium, 1400x1000, no implicit wait, 30 s to load a page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",  # containers' /dev/shm is small
        "--disable-gpu",
        f"--window-size={WIDTH},{HEIGHT}",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_window_size(WIDTH, HEIGHT)
    driver.implicitly_wait(0)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    return driver


def wait_for(browser: WebDriver, condition: Callable[[WebDriver], T], timeout: float = 15) -> T:
    """``condition``'s first truthy value (Selenium's ``expected_conditions`` or any
    callable taking the driver), polled until ``timeout`` seconds have passed."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition)


def forget_sessions(browser: WebDriver) -> None:
    """Log out of every site: cookies belong to a host, not to a port, so two sites on
    127.0.0.1 would otherwise overwrite each other's session cookie."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})


def login(browser: WebDriver, base_url: str, username: str, password: str) -> bool:
    """Log in through ``/admin/login/`` (after forgetting any session); True once the
    admin let the user in, False when the login page answered with its error."""
    from selenium.webdriver.common.by import By

    forget_sessions(browser)
    browser.get(f"{base_url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    wait_for(browser, lambda b: replaced(page, b))
    wait_for(browser, lambda b: b.execute_script("return document.readyState") == "complete")
    return not browser.find_elements(By.CSS_SELECTOR, "#login-form")


def replaced(element: WebElement, browser: WebDriver) -> bool:
    """Whether ``element``'s page was replaced by the next one. Chromium sometimes says
    so as "Node with given id does not belong to the document" instead of Selenium's
    stale-element error: that is an answer too."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support import expected_conditions as ec

    try:
        return bool(ec.staleness_of(element)(browser))
    except WebDriverException:
        return True


def screenshot(browser: WebDriver, name: str) -> Path | None:
    """Save the page as ``$ASYNCJOBS_SCREENSHOTS/<name>.png`` (`make screenshots`), the
    window stretched to the document's height; nothing when the variable is unset."""
    directory = os.environ.get(SCREENSHOTS_ENV)
    if not directory:
        return None
    path = Path(directory) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The window's size includes the browser's own bars: add them to the page's height.
    height = browser.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
        " + window.outerHeight - window.innerHeight"
    )
    browser.set_window_size(WIDTH, max(HEIGHT, int(height)))
    try:
        browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(WIDTH, HEIGHT)
    return path


def page_summary(browser: WebDriver, chars: int = 2000) -> str:
    """Where the browser is and what it shows, for a failed test's report."""
    from selenium.webdriver.common.by import By

    try:
        text = browser.find_element(By.TAG_NAME, "body").text
    except Exception as exc:  # a page that did not load, a closed window
        text = f"(no body: {type(exc).__name__}: {exc})"
    return f"--- browser at {browser.current_url} ({browser.title!r}):\n{text[:chars]}"
