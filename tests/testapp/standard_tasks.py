"""Tasks declared with Django's own ``@task`` (``django.tasks``, or the backport on
Django 5.2), for the conformance tests of the asyncjobs backend. Imported by
``tasks.py``, so a worker knows them as it knows every installed app's tasks."""

from __future__ import annotations

import asyncio
from typing import Any

from asyncjobs import Backoff

try:
    from django.tasks import TaskContext, task
except ImportError:  # Django 5.2: the backport
    from django_tasks import TaskContext, task  # type: ignore[no-redef,assignment]

FAST = Backoff(base_s=0.05, factor=1.0, max_s=0.05)


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def async_add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": args, "kwargs": kwargs}


@task(max_attempts=1)
def explode(message: str) -> None:
    raise KeyError(message)


@task(timeout=0.3, max_attempts=1)
async def sleeps() -> None:
    await asyncio.sleep(30)


@task(max_attempts=1)
def returns_a_set() -> set[int]:
    return {1, 2}


@task(takes_context=True, max_attempts=3, backoff=FAST)
def attempts_until(context: TaskContext, succeed_on: int) -> int:
    """Fails until attempt ``succeed_on``, then returns the attempt number."""
    if context.attempt < succeed_on:
        raise ValueError(f"attempt {context.attempt}")
    return context.attempt


@task(takes_context=True)
async def context_of(context: TaskContext) -> dict[str, Any]:
    result = context.task_result
    return {"attempt": context.attempt, "id": result.id, "status": str(result.status)}


@task(queue_name="other")
def on_other_queue() -> str:
    return "other"
