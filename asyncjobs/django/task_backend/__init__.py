"""Django's Tasks API on asyncjobs:
``TASKS = {"default": {"BACKEND": "asyncjobs.django.task_backend.AsyncJobsBackend"}}``.

How a Django ``Task`` reaches a worker: each one is registered as an asyncjobs task of
its own (``registration``) when the backend validates it, i.e. when ``@task`` decorates
the function at import. The alternative, one generic "runner" task that receives the
module path and imports the Task in the worker, would find Tasks in any module, but
every Django task would then share one asyncjobs task's limits: ``max_attempts`` and
``timeout`` are the registered task's and a message's labels may only lower them (a
sender must not buy itself more attempts), ``retry_on`` and ``backoff`` live only in
the worker's task definition, and the metrics, traces and dead-letter listings would all
name the runner. Registered one by one, a Django task is an asyncjobs task like any
other: its own limits and retry policy, its name (``module:function``) in logs,
metrics, spans and ``asyncjobs dlq``, and arguments checked against its signature when
sent. What it asks of a project is what Django's own database backend asks: the worker
imports the module that defines the Task, which every installed app's ``tasks.py`` is
(asyncjobs imports them at start-up); a message for a Task the worker never imported is
dead-lettered as ``unknown_task`` (replayable once the module is imported).

Modules: ``compat`` (``django.tasks`` or the backport), ``task`` (the Task class with
asyncjobs' options), ``registration``, ``records`` (the status document behind
``TaskResult``), ``hooks`` (status tracking and the worker's signals), ``backend``.
Names are imported lazily: ``hooks`` is loaded at Django start-up, where neither
``django.tasks`` nor the backport need exist.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AsyncJobsBackend",
    "AsyncJobsTask",
    "InvalidTask",
    "NeverRan",
    "TaskResultDoesNotExist",
]


def __getattr__(name: str) -> Any:
    if name == "AsyncJobsBackend":
        from asyncjobs.django.task_backend.backend import AsyncJobsBackend

        return AsyncJobsBackend
    if name in ("AsyncJobsTask", "InvalidTask", "TaskResultDoesNotExist"):
        from asyncjobs.django.task_backend import task

        return getattr(task, name)
    if name == "NeverRan":
        from asyncjobs.django.task_backend.state import NeverRan

        return NeverRan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
