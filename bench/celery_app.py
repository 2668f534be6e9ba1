"""Celery, one of the seeds' queues: the same three tasks as ``bench.raw_app``.

    BENCH_RAW_BROKER_URL=redis://... BENCH_RAW_QUEUE=name \
        celery -A bench.celery_app worker --pool threads --concurrency 100 \
        --without-gossip --without-mingle --without-heartbeat

Celery's defaults otherwise (bench/README.md "Celery and Dramatiq" says why this pool and what its
defaults guarantee): JSON messages, early acks, a classic queue on RabbitMQ, no result
backend (``task_ignore_result``). ``BENCH_RAW_QUEUE`` names the queue and the exchange,
and on Redis kombu's keys of unacked messages.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

from bench import recorder
from bench.raw_app import QUEUE_ENV, URL_ENV
from bench.sync_tasks import TASKS


def make_app(url: str, queue: str) -> Celery:
    app = Celery("bench", broker=url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_default_exchange=queue,
        task_default_routing_key=queue,
        task_ignore_result=True,
        worker_enable_remote_control=False,  # no pidbox queue per worker
        broker_connection_retry_on_startup=True,  # the default; says so to silence a warning
    )
    if not url.startswith(("amqp://", "amqps://")):
        # The queue's own names for kombu's bookkeeping of unacked messages (shared
        # "unacked" keys by default); not global_keyprefix, which costs a fifth more CPU
        # per message. Its binding set, "_kombu.binding.<queue>", is deleted after.
        app.conf.broker_transport_options = {
            f"{name}_key": f"{queue}:{name}"
            for name in ("unacked", "unacked_index", "unacked_mutex")
        }
    return app


def register(on: Celery) -> dict[str, Any]:
    """The bench tasks as ``on``'s tasks, named as the asyncjobs ones."""
    return {name: on.task(name=f"bench:{name}")(fn) for name, fn in TASKS.items()}


app = make_app(
    os.environ.get(URL_ENV, recorder.DEFAULT_REDIS_URL), os.environ.get(QUEUE_ENV, "bench-celery")
)
tasks = register(app)
