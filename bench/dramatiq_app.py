"""Dramatiq, one of the seeds' queues: the same three tasks as ``bench.raw_app``.

    BENCH_RAW_BROKER_URL=redis://... BENCH_RAW_QUEUE=name \
        dramatiq bench.dramatiq_app --processes 1 --threads 100

``RedisBroker`` (namespace ``BENCH_RAW_QUEUE``: every key it writes starts with it) or
``RabbitmqBroker`` (queues ``BENCH_RAW_QUEUE`` and its ``.DQ`` / ``.XQ``), with their
defaults otherwise: default middleware (age and time limits, retries, ...), no result
backend, acks after the actor returned, no publisher confirms on RabbitMQ
(bench/README.md "Celery and Dramatiq" says what differs).
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.broker import Broker

from bench import recorder
from bench.raw_app import QUEUE_ENV, URL_ENV
from bench.sync_tasks import TASKS


def make_broker(url: str, queue: str) -> Broker:
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=url, namespace=queue)  # type: ignore[no-untyped-call]


def register(on: Broker, queue: str) -> dict[str, Any]:
    """The bench tasks as actors of ``on`` on ``queue``, named as the asyncjobs ones."""
    return {
        name: dramatiq.actor(actor_name=f"bench:{name}", queue_name=queue, broker=on)(fn)
        for name, fn in TASKS.items()
    }


_queue = os.environ.get(QUEUE_ENV, "bench-dramatiq")
broker = make_broker(os.environ.get(URL_ENV, recorder.DEFAULT_REDIS_URL), _queue)
dramatiq.set_broker(broker)
tasks = register(broker, _queue)
