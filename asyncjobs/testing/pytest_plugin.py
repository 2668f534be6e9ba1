"""pytest (with pytest-django or any set-up that configures asyncjobs before the tests):

    # conftest.py at the root of the tests
    pytest_plugins = ["asyncjobs.testing.pytest_plugin"]

The whole session sends to an in-process ``memory://`` copy of the configured settings
(what ``TEST_RUNNER = "asyncjobs.django.testing.TestRunner"`` does for ``manage.py
test``), so a test that sends without capturing never reaches the broker; the ``jobs``
fixture is a fresh ``TaskCapture`` per test (``asyncjobs.testing``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asyncjobs.testing.capture import TaskCapture, capture


@pytest.fixture(scope="session", autouse=True)
def asyncjobs_test_mode() -> Iterator[TaskCapture]:
    """The session's capture: what no test captured waits there, dropped at the end."""
    session = capture().start()
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def jobs(asyncjobs_test_mode: TaskCapture) -> Iterator[TaskCapture]:
    """This test's sends, run with ``jobs.run_pending()`` / ``await jobs.arun_pending()``."""
    with capture() as captured:
        yield captured
