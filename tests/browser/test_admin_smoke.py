"""The example's Django admin in a real browser, on both brokers: styled (its static
files served under uvicorn), a superuser gets in, a user who is not staff does not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from selenium.webdriver.common.by import By

from tests.support.browser import CHROMEDRIVER, login, screenshot
from tests.support.console_site import ConsoleSite

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_the_browser_is_debians_chromium(browser: WebDriver) -> None:
    # The paths given, never a driver Selenium Manager would have had to download.
    assert browser.service.path == str(CHROMEDRIVER)
    assert browser.capabilities["browserName"] == "chrome"


def test_admin_logs_in_and_sees_the_admin_index(
    browser: WebDriver, console_site: ConsoleSite
) -> None:
    user = console_site.users["admin"]

    assert login(browser, console_site.base_url, user.username, user.password)

    assert browser.current_url == console_site.url("/admin/")
    assert browser.find_element(By.CSS_SELECTOR, "#content h1").text == "Site administration"
    models = {link.text for link in browser.find_elements(By.CSS_SELECTOR, "#content th a")}
    assert {"Users", "Groups", "Signups", "Visits"} <= models
    # The admin's stylesheet arrived (example/asgi.py serves STATIC_URL under uvicorn).
    header = browser.find_element(By.ID, "header")
    assert header.value_of_css_property("background-color") not in ("", "rgba(0, 0, 0, 0)")
    assert browser.find_element(By.ID, "user-tools").text.upper().startswith("WELCOME, ADMIN")
    screenshot(browser, "admin-index")


def test_a_user_who_is_not_staff_cannot_log_in(
    browser: WebDriver, console_site: ConsoleSite
) -> None:
    user = console_site.users["plain"]

    assert not login(browser, console_site.base_url, user.username, user.password)

    error = browser.find_element(By.CSS_SELECTOR, "#content .errornote").text
    assert "correct username and password for a staff account" in error
    browser.get(console_site.url("/admin/"))
    assert "/admin/login/" in browser.current_url


def test_the_users_are_created_as_asked(console_site: ConsoleSite) -> None:
    viewer = console_site.users["viewer"]
    # The console's permissions come with its model (migrated like any other).
    assert viewer.granted == ("asyncjobs.view_console",) and viewer.missing == ()
    assert console_site.worker.alive() and console_site.web.alive()
