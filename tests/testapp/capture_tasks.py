"""Tasks for the capture tests: their side effects stay in this process."""

from __future__ import annotations

import threading
from collections import Counter

from asyncjobs import Backoff, current_attempt, task

calls: list[tuple[str, object, int, str]] = []  # (task, argument, attempt, thread name)
failures_left: Counter[str] = Counter()


@task
async def double(x: int) -> int:
    calls.append(("double", x, current_attempt(), threading.current_thread().name))
    return x * 2


@task(queue="other")
def sync_double(x: int) -> int:
    calls.append(("sync_double", x, current_attempt(), threading.current_thread().name))
    return x * 2


@task(max_attempts=3, backoff=Backoff(base_s=30, factor=1, max_s=30))
async def flaky(tag: str) -> str:
    """Fails while ``failures_left[tag]`` lasts (backoff 30 s: a test must not wait)."""
    calls.append(("flaky", tag, current_attempt(), threading.current_thread().name))
    if failures_left[tag] > 0:
        failures_left[tag] -= 1
        raise ValueError(f"{tag} failed on attempt {current_attempt()}")
    return tag


@task
async def chain(x: int) -> int:
    """Sends another task while it runs."""
    await double.kiq(x + 1)
    return x


@task
def sync_chain(x: int) -> int:
    double.kiq_sync(x + 100)
    return x
