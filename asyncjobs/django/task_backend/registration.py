"""Each Django Task becomes one asyncjobs task, registered when the backend validates it.

Django calls ``validate_task`` when ``@task`` decorates a function (at import), so a
worker that imports the module (every installed app's ``tasks.py`` is imported at
start-up) knows the task before a message names it. Its asyncjobs name is
``module:function``, as for ``@asyncjobs.task``; its function is a *runner* with the
Django function's parameters (so arguments that do not bind fail at ``enqueue``, and a
message whose arguments do not fit is dead-lettered before running, as for any asyncjobs
task), which passes the ``TaskContext`` when the Task takes one and normalises the
return value to JSON as Django does. The runner keeps the function's kind: an
``async def`` runs in the worker's loop, a ``def`` in its thread pool.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

from asyncjobs.django.task_backend import compat
from asyncjobs.django.task_backend.records import Status
from asyncjobs.django.task_backend.state import current_run, job_name, jobs, tasks
from asyncjobs.retries import current_attempt
from asyncjobs.tasks import JobTask
from asyncjobs.tasks import task as job_task_decorator


def job_for(task: Any) -> JobTask[Any, Any] | None:
    return jobs.get(job_name(task))


def register(task: Any, options: dict[str, Any]) -> JobTask[Any, Any]:
    """The asyncjobs task that runs ``task`` (registered on first sight; ``options``:
    ``@asyncjobs.task``'s keyword arguments). Raises ``ConfigurationError`` for bad ones."""
    name = job_name(task)
    found = jobs.get(name)
    if found is not None and tasks[name].func is task.func:
        return found
    job = job_task_decorator(task_name=name, **options)(runner(task))
    tasks[name], jobs[name] = task, job
    return job


def runner(task: Any) -> Callable[..., Any]:
    """The function the worker calls for ``task``: see the module docstring."""
    func, takes_context = task.func, task.takes_context

    def arguments(args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (context(task), *args) if takes_context else args

    run: Callable[..., Any]
    if inspect.iscoroutinefunction(func):

        async def run(*args: Any, **kwargs: Any) -> Any:
            return finished(await func(*arguments(args), **kwargs))

    else:

        def run(*args: Any, **kwargs: Any) -> Any:
            return finished(func(*arguments(args), **kwargs))

    run.__name__, run.__qualname__ = func.__name__, func.__qualname__
    run.__module__, run.__doc__ = func.__module__, func.__doc__
    cast(Any, run).__signature__ = bare_signature(func, takes_context)
    run.__annotations__ = {}  # Django passes JSON values as they are: no conversion
    return run


def bare_signature(func: Callable[..., Any], takes_context: bool) -> inspect.Signature:
    """``func``'s parameters without their annotations (and without ``context``)."""
    params = list(inspect.signature(func).parameters.values())
    if takes_context:
        params = params[1:]
    plain = [p.replace(annotation=inspect.Parameter.empty) for p in params]
    return inspect.Signature(plain)


def finished(value: Any) -> Any:
    """The return value as Django keeps it (JSON types; a value that is not JSON fails
    the attempt, as on Django's own backends)."""
    normalized = compat.normalize_json(value)
    run = current_run.get()
    if run is not None:
        run.return_value = normalized
    return normalized


def context(task: Any) -> Any:
    """The ``TaskContext`` of the running attempt (``context.attempt``: 1 on the first)."""
    run = current_run.get()
    if run is not None:
        return compat.TaskContext(task_result=run.status.task_result(run.task))
    # No status hook around this run (a bare receiver): the attempt is still known.
    status = Status(id="", task=task.module_path, backend=task.backend, queue_name="")
    status.worker_ids = [""] * max(1, current_attempt())
    return compat.TaskContext(task_result=status.task_result(task))
