"""What the registration, the hooks and the runners share, importable without Django's
Tasks API (the hooks are added at every Django start-up, with or without it)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asyncjobs.errors import AsyncJobsError

if TYPE_CHECKING:
    from asyncjobs.django.task_backend.records import Status
    from asyncjobs.tasks import JobTask


class NeverRan(AsyncJobsError):
    """The ``TaskError`` class of a task dead-lettered before it ran (arguments that do
    not fit, too many deliveries, a Task the worker does not know)."""


@dataclass(slots=True, eq=False)
class CurrentRun:
    """One run of a Django task in a worker, shared by the hooks and the runner (set in
    ``before_run``; the runner, in the same context or a copy of it, fills in the value)."""

    task: Any  # the Django Task
    status: Status
    return_value: Any = None


current_run: ContextVar[CurrentRun | None] = ContextVar("asyncjobs_django_task", default=None)

tasks: dict[str, Any] = {}  # asyncjobs name -> the Django Task it was registered for
jobs: dict[str, JobTask[Any, Any]] = {}


def job_name(task: Any) -> str:
    return f"{task.func.__module__}:{task.func.__qualname__}"


def django_task(name: str) -> Any | None:
    """The Django Task registered under the asyncjobs name ``name`` (None: not one)."""
    return tasks.get(name)
