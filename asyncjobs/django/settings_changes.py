"""``override_settings(ASYNCJOBS=...)`` takes effect: the app is rebuilt from the new
settings (in a test's capture, still on its ``memory://`` server)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from typing import Any

from django.core.signals import setting_changed

from asyncjobs.app import App, current_app
from asyncjobs.errors import AsyncJobsError, ConfigurationError

logger = logging.getLogger("asyncjobs.django")
CLOSE_WAIT_S = 10.0


def on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting != "ASYNCJOBS":
        return
    from asyncjobs.django import conf

    # Here, not at the top: settings change in tests; every process that sets Django up
    # (a worker too) would otherwise import the whole test kit (issue 22: a worker's RSS).
    from asyncjobs.testing import TaskCapture

    previous = None
    with contextlib.suppress(AsyncJobsError):
        previous = current_app()
    try:
        if previous is not None and isinstance(previous.local, TaskCapture):
            previous.local.reconfigure(conf.config_from_settings())
            return
        conf.setup()
    except ConfigurationError as exc:  # `manage.py check` reports it; sends raise it
        logger.warning("ASYNCJOBS changed to settings that do not work: %s", exc)
        return
    if previous is not None and previous.broker.started:
        _close(previous)


def _close(app: App) -> None:
    """Close ``app``'s connections (in the loop they belong to: ``close`` goes there)
    from a thread of its own, so this works whether or not a loop runs here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, app.close()).result(CLOSE_WAIT_S)
        except Exception as exc:
            logger.warning("closing the app of the previous ASYNCJOBS failed: %s", exc)


def connect() -> None:
    setting_changed.connect(on_setting_changed, dispatch_uid="asyncjobs-settings")
