"""Browser tests: headless Chromium (``browser``, one per session) against the example
project served by uvicorn with a real worker (``console_site``, once per broker and
test module). Helpers: ``tests.support.browser`` (``wait_for``, ``login``,
``screenshot``) and ``tests.support.console_site`` (``ConsoleSite``, ``SiteUser``).

Without Debian's chromium and chromium-driver the tests skip locally and fail under CI.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import AMQP_URL, REDIS_URL, require_server
from tests.support.browser import page_summary, require_chromium, start_browser
from tests.support.console_site import ConsoleSite

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium for the whole session; ``login()`` forgets earlier sessions."""
    require_chromium()
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("rabbitmq", marks=[pytest.mark.redis, pytest.mark.rabbitmq]),
    ],
)
def console_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleSite]:
    """The example project on one broker, shared by the module's tests: its users
    ``admin`` (superuser), ``viewer`` (staff, ``asyncjobs.view_console`` once it exists),
    ``plain`` (not staff), passwords ``pw-<name>-1234``. Workers a test starts with
    ``start_worker()`` are stopped at the end too."""
    require_server(REDIS_URL, "Redis")
    broker_url = REDIS_URL
    if request.param == "rabbitmq":
        require_server(AMQP_URL, "RabbitMQ")
        broker_url = AMQP_URL
    site = ConsoleSite(
        broker=request.param,
        broker_url=broker_url,
        result_backend_url=REDIS_URL,
        key_prefix=f"b{uuid.uuid4().hex[:10]}",
        work_dir=tmp_path_factory.mktemp(f"site-{request.param}"),
    )
    try:
        site.start()
        yield site
    finally:
        site.close()
        # Shown by pytest when the module's last test failed (its teardown's output).
        print(site.describe(lines=80))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed browser test's report shows the page the browser was on."""
    report = yield
    driver = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and driver is not None:
        report.sections.append(("browser", page_summary(driver)))
    return report
