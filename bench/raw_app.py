"""Raw taskiq, as its documentation sets it up: the baseline of every ratio.

    BENCH_RAW_BROKER_URL=redis://... BENCH_RAW_QUEUE=name \
        python -m taskiq worker bench.raw_app:broker --workers 1

Redis: taskiq-redis ``RedisStreamBroker`` (stream ``BENCH_RAW_QUEUE``); RabbitMQ:
taskiq-aio-pika ``AioPikaBroker`` (exchange and quorum queue named ``BENCH_RAW_QUEUE``).
Both with their defaults and no result backend; the tasks are the same as
``bench.tasksapp.tasks``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from taskiq import AsyncBroker
from taskiq.decor import AsyncTaskiqDecoratedTask

from bench import recorder

URL_ENV = "BENCH_RAW_BROKER_URL"
QUEUE_ENV = "BENCH_RAW_QUEUE"


def make_broker(url: str, queue: str) -> AsyncBroker:
    if url.startswith(("amqp://", "amqps://")):
        from taskiq_aio_pika import AioPikaBroker, Exchange, Queue

        return AioPikaBroker(
            url,
            exchange=Exchange(name=queue),
            task_queues=[Queue(name=queue)],
            dead_letter_queue=Queue(name=f"{queue}.dead_letter"),
        )
    from taskiq_redis import RedisStreamBroker

    return RedisStreamBroker(url, queue_name=queue)


async def noop(key: str, i: int) -> None:
    recorder.record(key, i, time.time())


async def sleep(key: str, i: int) -> None:
    started = time.time()
    await asyncio.sleep(0.05)
    recorder.record(key, i, started)


async def latency(key: str, i: int, sent: float) -> None:
    recorder.record(key, i, time.time(), sent)


TASKS: dict[str, Callable[..., Awaitable[None]]] = {
    "noop": noop,
    "sleep": sleep,
    "latency": latency,
}


def register(on: AsyncBroker) -> dict[str, AsyncTaskiqDecoratedTask[Any, Any]]:
    """The bench tasks as ``on``'s tasks, named as the asyncjobs ones."""
    return {name: on.task(task_name=f"bench:{name}")(fn) for name, fn in TASKS.items()}


broker = make_broker(
    os.environ.get(URL_ENV, recorder.DEFAULT_REDIS_URL), os.environ.get(QUEUE_ENV, "bench-raw")
)
tasks = register(broker)
