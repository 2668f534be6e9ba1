"""The kicker ``fn.kiq()`` and ``fn.kicker()`` use: taskiq's, plus a failure hook and
errors that are asyncjobs' own.

Taskiq calls a middleware's ``pre_send`` before a send and ``post_send`` after it, but
nothing when the send fails: a middleware that started something in ``pre_send`` (a
tracing span) never learns how it ended. ``JobKicker`` calls
``on_send_error(task_id, error)`` on every middleware that has one, then raises
(``task_id``: the failed message's, None when it failed before it had one).

Taskiq wraps every failure of ``broker.kick`` in its ``SendTaskError``, so
``except PayloadTooLargeError`` or ``except AsyncJobsError`` would never match. The
kicker raises the transport's own error instead when it is an ``AsyncJobsError``, and
wraps anything else in a ``BrokerError`` (``BrokerConnectionError`` for connection
failures) that keeps the original as its ``__cause__``. A send whose outcome is unknown
(``SendOutcomeUnknownError``, with the message's task id) reaches the caller as it is.

The handle returned is a ``JobHandle``, whose ``wait_result(timeout=...)`` keeps its
timeout (see ``asyncjobs.handles``).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker
from taskiq.message import TaskiqMessage
from taskiq.utils import maybe_awaitable

from asyncjobs.brokers.errors import AsyncJobsError, BrokerConnectionError, BrokerError
from asyncjobs.handles import JobHandle

logger = logging.getLogger("asyncjobs")

P = ParamSpec("P")
R = TypeVar("R")

# The id of the message this kiq() prepared, in the caller's context; reset when kiq()
# returns, so a send nested in a send (memory:// runs the task inside kick) cannot
# leave its id behind for the outer one.
_preparing: ContextVar[str | None] = ContextVar("asyncjobs_preparing", default=None)


class JobKicker(AsyncKicker[P, R]):
    async def kiq(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        token = _preparing.set(None)
        try:
            sent = await super().kiq(*args, **kwargs)
        except Exception as exc:
            task_id = _preparing.get()
            await self._report(task_id, exc)
            error = send_error(exc, self.task_name, task_id)
            if error is exc:
                raise
            raise error from error.__cause__
        finally:
            _preparing.reset(token)
        return JobHandle(sent.task_id, sent.result_backend, sent.return_type)

    async def _report(self, task_id: str | None, exc: Exception) -> None:
        for middleware in self.broker.middlewares:
            hook = getattr(middleware, "on_send_error", None)
            if hook is None:
                continue
            try:
                await maybe_awaitable(hook(task_id, exc))
            except Exception:  # a hook must not hide the send's own error
                logger.exception("on_send_error of %r failed", middleware)

    def _prepare_message(self, *args: Any, **kwargs: Any) -> TaskiqMessage:
        message = super()._prepare_message(*args, **kwargs)
        _preparing.set(message.task_id)
        return message


def send_error(exc: Exception, task_name: str, task_id: str | None) -> Exception:
    """The error ``kiq()`` raises for ``exc``: always an ``AsyncJobsError``."""
    cause = exc.__cause__ if isinstance(exc, SendTaskError) else exc
    if isinstance(cause, AsyncJobsError):
        return cause
    if cause is None:
        cause = exc
    kind = BrokerConnectionError if isinstance(cause, ConnectionError | OSError) else BrokerError
    error = kind(
        f"sending task {task_name} [{task_id or 'no id'}] failed: "
        f"{type(cause).__qualname__}: {cause}"
    )
    error.__cause__ = cause
    return error
