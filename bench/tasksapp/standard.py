"""The benchmark's no-op task declared with Django's own ``@task`` (``django.tasks``, or
the django-tasks backport), sent by ``bench.task_backend`` through the asyncjobs backend."""

from __future__ import annotations

import time

from bench import recorder

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef,assignment]


@task
async def dj_noop(key: str, i: int) -> None:
    recorder.record(key, i, time.time())
