"""Django tests that never touch a real broker.

- ``TEST_RUNNER = "asyncjobs.django.testing.TestRunner"``: the whole ``manage.py test``
  run sends to an in-process ``memory://`` copy of the configured settings (a send no
  test captured waits there and is dropped at the end; none reaches Redis or RabbitMQ).
- ``CaptureTasks``, a ``TestCase`` mixin: ``self.jobs`` records each test's sends and
  runs them on the test's database connection (``asyncjobs.testing``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.test.runner import DiscoverRunner

from asyncjobs.testing import TaskCapture, capture


class TestRunner(DiscoverRunner):
    """Django's runner, with asyncjobs on ``memory://`` from set-up to tear-down."""

    __test__ = False  # not a test class, for pytest's collector

    _asyncjobs: TaskCapture | None = None

    def setup_test_environment(self, **kwargs: Any) -> None:
        super().setup_test_environment(**kwargs)
        self._asyncjobs = capture().start()

    def teardown_test_environment(self, **kwargs: Any) -> None:
        if self._asyncjobs is not None:
            self._asyncjobs.stop()
            self._asyncjobs = None
        super().teardown_test_environment(**kwargs)


class CaptureTasks:
    """Mix into a ``TestCase``: ``self.jobs`` is a fresh ``TaskCapture`` per test.

    ``capture_eager = True`` runs each send before ``kiq()`` returns;
    ``capture_retries = True`` runs failed attempts again per the task's policy."""

    jobs: TaskCapture
    capture_eager: ClassVar[bool] = False
    capture_retries: ClassVar[bool] = False

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.jobs = capture(eager=self.capture_eager, retries=self.capture_retries).start()
        self.addCleanup(self.jobs.stop)  # type: ignore[attr-defined]
