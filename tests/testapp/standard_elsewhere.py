"""A Django Task in a module no ``tasks.py`` imports: a worker does not know it."""

from __future__ import annotations

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef,assignment]


@task
def nowhere() -> None: ...
