"""The kicker ``fn.kiq()`` and ``fn.kicker()`` use: taskiq's, plus a failure hook and
errors that are asyncjobs' own.

Taskiq calls a middleware's ``pre_send`` before a send and ``post_send`` after it (the
app's ``HookBridge`` turns them into the ``on_send``/``on_sent`` hooks), but nothing
when the send fails: a hook that started something in ``on_send`` (a tracing span) would
never learn how it ended. ``JobKicker`` calls the ``on_send_error`` hooks, then raises
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

from asyncjobs.brokers.errors import AsyncJobsError, BrokerConnectionError, BrokerError
from asyncjobs.handles import JobHandle
from asyncjobs.hooks import HookSet

logger = logging.getLogger("asyncjobs")

P = ParamSpec("P")
R = TypeVar("R")

# The id of the message this kiq() prepared, in the caller's context; reset when kiq()
# returns, so a send nested in a send (a hook that sends, inside on_send) cannot
# leave its id behind for the outer one.
_preparing: ContextVar[str | None] = ContextVar("asyncjobs_preparing", default=None)


class JobKicker(AsyncKicker[P, R]):
    def __init__(self, *args: Any, hooks: HookSet, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hooks = hooks

    async def kiq(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        token = _preparing.set(None)
        try:
            sent = await super().kiq(*args, **kwargs)
        except Exception as exc:
            task_id = _preparing.get()
            await self.hooks.on_send_error(task_id, exc)
            error = send_error(exc, self.task_name, task_id)
            if error is exc:
                raise
            raise error from error.__cause__
        finally:
            _preparing.reset(token)
        return JobHandle(sent.task_id, sent.result_backend, sent.return_type)

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
