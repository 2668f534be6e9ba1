"""Run the kernel's coroutines from the admin's sync views, and turn a broker that is
down into a banner instead of an error page.

The admin's views are sync (``AdminSite.admin_view``); the broker's client lives in one
event loop per process (``asyncjobs.brokers.home``). ``run`` hands the coroutine to that
loop and waits at most ``TIMEOUT_S``, under runserver, gunicorn or an ASGI server alike.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from asyncjobs.app import App, current_app
from asyncjobs.errors import AsyncJobsError, BrokerError

logger = logging.getLogger("asyncjobs.console")

T = TypeVar("T")

TIMEOUT_S = 10.0  # below the usual load-balancer timeouts: a banner, not a 504


class Unavailable(AsyncJobsError):
    """The broker (or the store a page needs) cannot answer: the page shows a banner."""


def app() -> App:
    """The configured app; a configuration error is a banner too (the rest of the admin
    keeps working, as it does without a broker)."""
    try:
        return current_app()
    except AsyncJobsError as exc:
        raise Unavailable(f"asyncjobs is not configured: {exc}") from None


def run(make: Callable[[], Coroutine[Any, Any, T]], timeout_s: float = TIMEOUT_S) -> T:
    """``await make()`` in the broker's loop; ``Unavailable`` when the broker cannot be
    reached or does not answer in time. Other ``AsyncJobsError``s (a letter gone, an
    unknown schedule) are the caller's to show."""
    configured = app()
    try:
        return configured.broker.home.run_sync(make(), timeout_s)
    except concurrent.futures.TimeoutError:
        raise Unavailable(f"the broker did not answer within {timeout_s:g} s") from None
    except AsyncJobsError as exc:
        if is_outage(exc):
            logger.warning("console: %s", exc)
            raise Unavailable(str(exc)) from None
        raise


def is_outage(exc: AsyncJobsError) -> bool:
    """The broker failed (unreachable, lost, or its library raised): not an answer such
    as "no such letter" or "no such queue" (messages never carry a password)."""
    return isinstance(exc, BrokerError) and not isinstance(exc, LookupError)
