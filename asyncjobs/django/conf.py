"""Settings -> config -> broker, at start-up (and whenever the settings change).

A bad setting does not stop Django: ``start()`` (from ``AppConfig.ready()``) records it
and leaves the process without a current app, so that commands that send nothing
(``migrate``, ``collectstatic`` in a Docker build without runtime secrets, ``shell``)
still run. ``manage.py check`` reports it (a warning; an error with ``--deploy``: see
``checks``), the first send raises it, and the worker, the scheduler and the
``asyncjobs`` command refuse to start with it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.utils.module_loading import autodiscover_modules

from asyncjobs.app import App, configure, unconfigure
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.django.db import DatabaseHygiene
from asyncjobs.django.errors import AsyncJobsImproperlyConfigured
from asyncjobs.django.task_backend.hooks import TaskStatusHooks
from asyncjobs.django.tracing import setup_tracing
from asyncjobs.django.transactions import DjangoTransactions
from asyncjobs.errors import ConfigurationError

logger = logging.getLogger("asyncjobs.django")
# The one line a bad setting logs at start-up (a logger of its own, so that the worker
# and the `asyncjobs` command can leave it out: they report the error themselves).
start_logger = logging.getLogger("asyncjobs.django.startup")


def config_from_settings() -> AsyncJobsConfig:
    raw: Any = getattr(settings, "ASYNCJOBS", None)
    try:
        return load_config(raw)
    except ConfigurationError as exc:
        raise AsyncJobsImproperlyConfigured(str(exc)) from None


def setup() -> App:
    """(Re)configure from the current settings: validate them, build the app (broker,
    hooks: the database hygiene around every task first), discover every installed
    app's ``tasks.py``; the app, now current. A bad setting raises
    ``AsyncJobsImproperlyConfigured`` and is recorded: the process is left without a
    current app, and every send raises the same error."""
    try:
        return _configure(config_from_settings())
    except ConfigurationError as exc:
        error = AsyncJobsImproperlyConfigured(str(exc))
        unconfigure(error)
        raise error from None


def _configure(config: AsyncJobsConfig) -> App:
    setup_tracing(config)  # before configure(): its service name knows the project
    app = configure(config, hooks=[DatabaseHygiene(), TaskStatusHooks()])
    app.transactions = DjangoTransactions()  # kiq_on_commit waits for the commit
    autodiscover_modules("tasks")
    app.check()
    logger.debug("asyncjobs configured: %r", config)
    return app


def start() -> None:
    """``setup()`` at start-up, where a bad setting must not stop Django: it is recorded
    (see ``setup``) and logged once, at WARNING. A web server runs no system checks, so
    without that line nothing would say why until the first send failed; a command that
    sends nothing (collectstatic in a build) prints one line."""
    try:
        setup()
    except AsyncJobsImproperlyConfigured as exc:
        start_logger.warning(
            "asyncjobs is not configured, so sending tasks will fail and the worker will "
            "not start: %s",
            exc,
        )


@contextlib.contextmanager
def reporting_start_errors() -> Iterator[None]:
    """Within the block, ``start()`` records a bad setting without logging it: for the
    worker and the ``asyncjobs`` command, which report it themselves and stop."""
    quiet = _DropAll()
    start_logger.addFilter(quiet)
    try:
        yield
    finally:
        start_logger.removeFilter(quiet)


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False
