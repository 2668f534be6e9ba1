"""The asyncjobs side of the benchmark: the same three tasks as ``bench.raw_app``.

Every task reports itself to ``bench.recorder`` (batched), so a phase can check that each
of its N tasks ran exactly once. ``key`` names the phase's ledger in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from django.conf import settings

from asyncjobs import task
from bench import recorder


@task(task_name="bench:noop")
async def noop(key: str, i: int) -> None:
    recorder.record(key, i, time.time())


@task(task_name="bench:sleep")
async def sleep(key: str, i: int) -> None:
    started = time.time()
    await asyncio.sleep(0.05)
    recorder.record(key, i, started)


@task(task_name="bench:latency")
async def latency(key: str, i: int, sent: float) -> None:
    recorder.record(key, i, time.time(), sent)


# Django's Tasks API no-op (bench.task_backend sends it), in a Django process (the
# worker) where Django has the API; the bench's own producer is no Django process.
if settings.configured:
    with contextlib.suppress(ImportError):
        from bench.tasksapp import standard  # noqa: F401
