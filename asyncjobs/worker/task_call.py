"""Calling a task function: taskiq's ``Receiver.run_task``, with a short way for the
common case.

taskiq's ``run_task`` builds a dependency-resolution context for every message (also
for a task that has no dependency), enters an anyio cancel scope for the ``timeout``
label, and logs each exception of a task before anyone knows what becomes of it (the
worker drops that record again: ``task_log.reporting_task_errors``). For a no-op task
that was a fifth of a worker's CPU (bench/README.md, "Worker hot path").

An ``async def`` task without dependencies (no ``TaskiqDepends`` parameter) is called
here directly, under ``asyncio.timeout`` for its limit, and its outcome is the same
``TaskiqResult`` taskiq builds (return value, error, execution time rounded to 10 ms,
the message's labels), after the same middlewares' ``on_error``. Every other task (sync
functions, which run in the thread pool, and tasks with dependencies) goes through
taskiq's ``run_task`` unchanged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.exceptions import NoResultError
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult
from taskiq.utils import maybe_awaitable

from asyncjobs.codec import plain_constructor
from asyncjobs.worker import task_log

if TYPE_CHECKING:
    from taskiq.receiver import Receiver

logger = logging.getLogger("asyncjobs.worker")
_succeeded = plain_constructor(TaskiqResult)


def is_direct(receiver: Receiver, name: str, target: Callable[..., Any]) -> bool:
    """Whether ``target`` (the task ``name``'s function, as wrapped by the hooks) can be
    called directly: a coroutine function whose task has no dependencies."""
    graph = receiver.dependency_graphs.get(name)
    return (
        inspect.iscoroutinefunction(target)
        and not receiver.validate_params
        and (graph is None or graph.is_empty())
    )


async def call_task(
    receiver: Receiver, target: Callable[..., Any], message: TaskiqMessage, direct: bool
) -> TaskiqResult[Any]:
    """Run the task; its outcome as taskiq's ``run_task`` reports it."""
    if not direct:
        with task_log.reporting_task_errors():
            return await receiver.run_task(target=target, message=message)
    returned: Any = None
    error: BaseException | None = None
    began = time.time()
    try:
        returned = await _awaited(target, message)
    except NoResultError:
        logger.warning("task %s [%s] skipped setting its result", *_named(message))
    except BaseException as exc:  # what taskiq catches too: the outcome reports it
        error = exc
    execution_time = round(time.time() - began, 2)
    if error is None:  # nothing to validate: taskiq's validator only converts errors
        return _succeeded(
            {
                "is_err": False,
                "log": None,
                "return_value": returned,
                "execution_time": execution_time,
                "labels": message.labels,
                "error": None,
            }
        )
    result: TaskiqResult[Any] = TaskiqResult(
        is_err=True,
        log=None,
        return_value=None,
        execution_time=execution_time,
        error=error,
        labels=message.labels,
    )
    await _on_error(receiver, message, result, error)
    return result


async def _awaited(target: Callable[..., Any], message: TaskiqMessage) -> Any:
    timeout = message.labels.get("timeout")
    if timeout is None:
        return await _called(target, message)
    async with asyncio.timeout(float(timeout)):
        return await _called(target, message)


async def _called(target: Callable[..., Any], message: TaskiqMessage) -> Any:
    returned = await target(*message.args, **message.kwargs)
    if inspect.isawaitable(returned):  # as taskiq: a coroutine returned is awaited too
        returned = await returned
    return returned


async def _on_error(
    receiver: Receiver, message: TaskiqMessage, result: TaskiqResult[Any], error: BaseException
) -> None:
    for middleware in reversed(receiver.broker.middlewares):
        if type(middleware).on_error is not TaskiqMiddleware.on_error:
            await maybe_awaitable(middleware.on_error(message, result, error))


def _named(message: TaskiqMessage) -> tuple[str, str]:
    return message.task_name, message.task_id
