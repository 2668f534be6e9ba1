"""The operator console in a real browser, on Redis and on RabbitMQ: the example project
under uvicorn with real workers and a real scheduler.

The module's tests share one site per broker and run in order: the overview equals
``asyncjobs inspect --json``; a worker appears and disappears; a dead letter is replayed
and its task runs; a viewer sees no replay button and is refused on POST; a user who is
not staff gets 403; a schedule paused sends no tick for two periods and ticks again once
resumed. Each page is screenshotted on the way (``make screenshots``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from tests.support.browser import login, wait_for
from tests.support.browser import screenshot as save_screenshot
from tests.support.console_site import ConsoleSite

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CONSOLE = "/admin/asyncjobs/console/"
FIGURES = ("waiting", "in_flight", "scheduled", "dead_letters", "consumers", "backlog")
HEARTBEAT = "demo-heartbeat"  # example.shop.tasks.heartbeat: every 2 s
PERIOD_S = 2.0


def screenshot(site: ConsoleSite, browser: WebDriver, name: str) -> None:
    """The README's pictures come from the Redis run (every figure is known there)."""
    if site.broker == "redis":
        save_screenshot(browser, name)


def sign_in(browser: WebDriver, site: ConsoleSite, name: str) -> None:
    user = site.users[name]
    assert login(browser, site.base_url, user.username, user.password), name


def reload_until(
    browser: WebDriver, url: str, found: Callable[[WebDriver], Any], timeout: float = 30
) -> Any:
    """Load ``url`` again and again until ``found(browser)`` is truthy (a page's state)."""

    def loaded(driver: WebDriver) -> Any:
        driver.get(url)
        return found(driver)

    return wait_for(browser, loaded, timeout=timeout)


def shown(browser: WebDriver, element_id: str) -> WebElement:
    """The element once the page that has it loaded (a click's navigation may lag)."""
    return wait_for(browser, lambda d: (d.find_elements(By.ID, element_id) or [None])[0])


def page_figures(browser: WebDriver) -> dict[str, dict[str, int | None]]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#queues tbody tr")
    return {
        row.get_attribute("data-queue") or "": {
            field: None
            if (text := row.find_element(By.CSS_SELECTOR, f'[data-field="{field}"]').text) == "?"
            else int(text)
            for field in FIGURES
        }
        for row in rows
    }


def cli_figures(site: ConsoleSite) -> dict[str, dict[str, int | None]]:
    document = json.loads(site.manage("asyncjobs", "inspect", "--json").stdout)
    return {q["queue"]: {field: q[field] for field in FIGURES} for q in document["queues"]}


def send(site: ConsoleSite, call: str) -> str:
    """Send a task of the example from another process; its task id."""
    code = f"from example.shop import tasks; print(tasks.{call}.task_id)"
    return site.manage("shell", "-c", code).stdout.strip().splitlines()[-1]


def test_the_overview_shows_what_inspect_shows(
    browser: WebDriver, console_site: ConsoleSite
) -> None:
    sign_in(browser, console_site, "admin")

    def same_as_cli(driver: WebDriver) -> bool:
        driver.get(console_site.url(CONSOLE))
        return page_figures(driver) == cli_figures(console_site)

    wait_for(browser, same_as_cli, timeout=30)  # a quiet site: equal at the first look
    assert set(page_figures(browser)) == {"default", "emails"}


def test_a_worker_appears_and_disappears(browser: WebDriver, console_site: ConsoleSite) -> None:
    sign_in(browser, console_site, "admin")
    url = console_site.url(CONSOLE)
    worker = console_site.start_worker()
    [process] = psutil.Process(worker.pid).children()  # taskiq's worker process runs tasks
    row = f'#workers tr[data-pid="{process.pid}"]'
    reload_until(browser, url, lambda d: d.find_elements(By.CSS_SELECTOR, row))
    listed = json.loads(console_site.manage("asyncjobs", "workers", "--json").stdout)
    assert process.pid in {w["pid"] for w in listed["workers"]}
    worker.stop()  # SIGTERM: it drains and leaves the registry at once
    reload_until(browser, url, lambda d: not d.find_elements(By.CSS_SELECTOR, row))


def test_a_replayed_dead_letter_runs(browser: WebDriver, console_site: ConsoleSite) -> None:
    sign_in(browser, console_site, "admin")
    signup_id = 900_000 + int(time.time()) % 10_000
    # No such signup: the task rejects itself, its message is dead-lettered.
    task_id = send(console_site, f"send_welcome_email.kiq_sync({signup_id})")
    letters = console_site.url(f"{CONSOLE}dead-letters/?queue=emails")
    link = f'//table[@id="dead-letters"]//tr[td/a[text()="{task_id}"]]/td[2]/a'
    reload_until(browser, letters, lambda d: d.find_elements(By.XPATH, link))
    screenshot(console_site, browser, "console-dead-letters")
    browser.find_element(By.XPATH, link).click()
    assert shown(browser, "letter-reason").text == "rejected"
    screenshot(console_site, browser, "console-dead-letter")
    create = "from example.shop.models import Signup; Signup.objects.create(pk={}, email='{}')"
    console_site.manage("shell", "-c", create.format(signup_id, "late@example.org"))  # now it runs
    shown(browser, "replay-one").click()
    assert task_id in shown(browser, "confirm-list").text
    screenshot(console_site, browser, "console-replay-confirm")
    shown(browser, "confirm").click()
    assert "Replayed 1 of queue emails" in shown(browser, "done-message").text
    lookup = console_site.url(f"{CONSOLE}tasks/?id={task_id}")
    reload_until(browser, lookup, lambda d: d.find_element(By.ID, "task-state").text == "SUCCEEDED")
    assert '"sent"' in shown(browser, "task-result").text
    screenshot(console_site, browser, "console-task")


def test_without_the_replay_permission_no_button_and_a_refused_post(
    browser: WebDriver, console_site: ConsoleSite
) -> None:
    task_id = send(console_site, "send_welcome_email.kiq_sync(1_999_999)")  # rejected
    sign_in(browser, console_site, "viewer")
    letters = console_site.url(f"{CONSOLE}dead-letters/?queue=emails")
    row = f'//table[@id="dead-letters"]//tr[td/a[text()="{task_id}"]]'
    reload_until(browser, letters, lambda d: d.find_elements(By.XPATH, row))
    assert not browser.find_elements(By.ID, "replay-selected")
    assert not browser.find_elements(By.ID, "purge")
    letter_id = browser.find_element(By.XPATH, row).get_attribute("data-letter")
    status = browser.execute_async_script(
        """const [url, id, done] = arguments;
        const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken='))
            .split('=')[1];
        const body = new URLSearchParams({queue: 'emails', ids: id, confirm: 'yes'});
        fetch(url, {method: 'POST', body, headers: {'X-CSRFToken': token}})
            .then(r => done(r.status));""",
        console_site.url(f"{CONSOLE}dead-letters/replay/"),
        letter_id,
    )
    assert status == 403
    browser.get(letters)
    assert browser.find_elements(By.XPATH, row)  # still there: nothing was sent


def test_a_signed_in_user_who_is_not_staff_gets_403(
    browser: WebDriver, console_site: ConsoleSite
) -> None:
    user = console_site.users["plain"]
    # Signed in as the site's own login views would (the admin's refuses non-staff).
    code = (
        "from django.contrib import auth;"
        "from django.contrib.sessions.backends.db import SessionStore;"
        f"u = auth.get_user_model().objects.get(username='{user.username}'); s = SessionStore();"
        "s[auth.SESSION_KEY] = str(u.pk);"
        "s[auth.BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend';"
        "s[auth.HASH_SESSION_KEY] = u.get_session_auth_hash(); s.create(); print(s.session_key)"
    )
    session_key = console_site.manage("shell", "-c", code).stdout.strip().splitlines()[-1]
    browser.delete_all_cookies()
    browser.get(console_site.url("/healthz"))
    browser.add_cookie({"name": "sessionid", "value": session_key, "path": "/"})
    status = browser.execute_async_script(
        "const [url, done] = arguments; fetch(url).then(r => done(r.status));",
        console_site.url(CONSOLE),
    )
    assert status == 403


def state_of(browser: WebDriver, row: str) -> str | None:
    """The schedule's state cell, None while the page after a click is still loading."""
    try:
        return browser.find_element(By.CSS_SELECTOR, f'{row} [data-field="state"]').text
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def last_tick(browser: WebDriver) -> str:
    row = browser.find_element(By.CSS_SELECTOR, f'#schedules tr[data-schedule="{HEARTBEAT}"]')
    return row.find_elements(By.TAG_NAME, "td")[5].text


def test_a_paused_schedule_sends_no_tick_until_resumed(
    browser: WebDriver, console_site: ConsoleSite
) -> None:
    sign_in(browser, console_site, "admin")
    url = console_site.url(f"{CONSOLE}schedules/")
    scheduler = console_site.start_scheduler()
    try:
        first = reload_until(browser, url, lambda d: last_tick(d) not in ("", "-") and last_tick(d))
        reload_until(browser, url, lambda d: last_tick(d) != first)  # ticking
        row = f'#schedules tr[data-schedule="{HEARTBEAT}"]'
        browser.find_element(By.CSS_SELECTOR, f'{row} input[data-action="pause"]').click()
        wait_for(browser, lambda d: state_of(d, row) == "paused")
        screenshot(console_site, browser, "console-schedules")
        quiet_since = _quiet_for(browser, url, 2 * PERIOD_S + 0.5, within_s=25)
        assert time.monotonic() - quiet_since >= 2 * PERIOD_S
        paused_at = last_tick(browser)
        browser.find_element(By.CSS_SELECTOR, f'{row} input[data-action="resume"]').click()
        reload_until(browser, url, lambda d: last_tick(d) != paused_at, timeout=25)
    finally:
        scheduler.stop()


def _quiet_for(browser: WebDriver, url: str, quiet_s: float, within_s: float) -> float:
    """Reload until the last tick has not changed for ``quiet_s`` (the scheduler read the
    pause: it does within its 10 s refresh); when that quiet began."""
    seen, since = None, time.monotonic()

    def quiet(driver: WebDriver) -> bool:
        nonlocal seen, since
        driver.get(url)
        tick = last_tick(driver)
        if tick != seen:
            seen, since = tick, time.monotonic()
        return time.monotonic() - since >= quiet_s

    wait_for(browser, quiet, timeout=within_s)
    return since


def test_the_overview_last(browser: WebDriver, console_site: ConsoleSite) -> None:
    """After the module's work, the charts have counts to draw: the overview's picture."""
    sign_in(browser, console_site, "admin")
    url = console_site.url(CONSOLE)
    chart = 'figure[data-queue="emails"] polyline[data-series="dead_lettered"]'
    reload_until(browser, url, lambda d: d.find_elements(By.CSS_SELECTOR, chart))
    caption = browser.find_element(By.CSS_SELECTOR, 'figure[data-queue="emails"] figcaption').text
    assert "dead-lettered" in caption and not caption.startswith("emails: 0 succeeded")
    screenshot(console_site, browser, "console-overview")
