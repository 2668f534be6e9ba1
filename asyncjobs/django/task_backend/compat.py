"""Django's Tasks API under its two names: ``django.tasks`` (Django 6.0 and later) and
the ``django-tasks`` backport package (``django_tasks``, on Django 5.2).

Everything the backend uses comes from here, so no other module knows which one is
installed. Where both are (the backport on Django 6), Django's own wins: it is the one
``settings.TASKS`` configures for ``django.tasks.task``. The backport names two
exceptions differently (``InvalidTaskError``; ``InvalidTaskBackendError``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    from django.tasks import signals
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        DEFAULT_TASK_PRIORITY,
        Task,
        TaskContext,
        TaskError,
        TaskResult,
        TaskResultStatus,
    )
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.utils.json import normalize_json

    SOURCE = "django.tasks"
except ImportError:  # Django < 6.0: the backport
    # Type-checked against django-stubs' django.tasks on every line (the backport's API
    # is the same; it is not installed on the newer line, so mypy must not read it).
    if not TYPE_CHECKING:
        from django_tasks import signals
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import (
            DEFAULT_TASK_PRIORITY,
            Task,
            TaskContext,
            TaskError,
            TaskResult,
            TaskResultStatus,
        )
        from django_tasks.exceptions import InvalidTaskError as InvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.utils import normalize_json

    SOURCE = "django_tasks"


def task_backends() -> Any:
    """The ``TASKS`` connection handler of the API in use."""
    if SOURCE == "django_tasks" and not TYPE_CHECKING:
        from django_tasks import task_backends as backport_handler

        return backport_handler
    from django.tasks import task_backends

    return task_backends


__all__ = [
    "DEFAULT_TASK_PRIORITY",
    "SOURCE",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "signals",
    "task_backends",
]
