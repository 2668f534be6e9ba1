"""``AsyncJobsTask``: Django's ``Task`` with asyncjobs' per-task options.

Django 6.1 (and the backport) hand ``@task``'s extra keyword arguments to the backend's
``task_class``: ``@task(max_attempts=5, timeout=30, retry_on=..., no_retry_on=...,
backoff=Backoff(...), enqueue_on_commit=True)``. ``None`` means the backend's
``OPTIONS`` (``MAX_ATTEMPTS``, ``TIMEOUT``, ``ON_COMMIT``), else asyncjobs' settings.
``task.on_commit(using=...)`` is the same Task sent once that database's transaction
commits, for one call: ``send_email.on_commit().enqueue(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Self

from asyncjobs.django.task_backend import compat
from asyncjobs.errors import AsyncJobsError
from asyncjobs.retries import Backoff


class InvalidTask(compat.InvalidTask, AsyncJobsError):
    """Django's error for a Task the backend cannot run, and one of asyncjobs' own."""


class TaskResultDoesNotExist(compat.TaskResultDoesNotExist, AsyncJobsError):
    """Django's error for a result id nobody knows (or expired); asyncjobs' too."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AsyncJobsTask(compat.Task):  # type: ignore[type-arg]
    max_attempts: int | None = None
    timeout: float | timedelta | None = None
    retry_on: Any = None  # an exception class or classes (default: any Exception)
    no_retry_on: Any = None
    backoff: Backoff | None = None
    enqueue_on_commit: bool | None = None  # None: the backend's ON_COMMIT
    on_commit_using: str | None = None  # the database alias whose commit it waits for

    def on_commit(self, using: str | None = None) -> Self:
        """This Task, sent when the transaction on ``using`` commits (sync ``enqueue``;
        at once outside a transaction and from ``aenqueue``)."""
        return replace(self, enqueue_on_commit=True, on_commit_using=using)

    def job_options(self) -> dict[str, Any]:
        """The options set on this Task, as ``@asyncjobs.task`` takes them."""
        given = {
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "retry_on": self.retry_on,
            "no_retry_on": self.no_retry_on,
            "backoff": self.backoff,
        }
        return {name: value for name, value in given.items() if value is not None}
