"""Producers and clean-up for the two sync sides, Celery and Dramatiq (the seeds' queues).

Both send with a blocking call (``task.delay()`` / ``actor.send()``), so the bench's
phases map onto them as:

- one at a time: a plain loop of sends, in the bench's loop thread (it has nothing else
  to do meanwhile; no thread hop per send);
- concurrently: ``THREADS`` threads of one pool each sending its share in a loop, the
  sync analogue of asyncjobs' gather of 100 (bench/README.md "Celery and Dramatiq" says
  why 16). Their connections are opened before the clock starts, as the async sides'
  are (``broker.startup()``): Celery's connection pool (``broker_pool_limit``, 10 by
  default: threads beyond it wait for a connection, as they would in an application),
  Dramatiq's per-thread RabbitMQ channels / its Redis client's pool.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CELERY = "celery"
DRAMATIQ = "dramatiq"
THREADS = 16  # senders of the concurrent phase

# The workers' options after ``celery -A bench.celery_app worker`` / ``dramatiq
# bench.dramatiq_app`` (bench/README.md "Celery and Dramatiq" says why these);
# BENCH_CELERY_ARGS / BENCH_DRAMATIQ_ARGS replace them (to compare other settings).
WORKER_ARGS = {
    # No worker-to-worker chatter (gossip, mingle) or event heartbeats: nothing here
    # uses them, and each costs a round trip or a message now and then.
    CELERY: "--pool threads --concurrency 100 --without-gossip --without-mingle "
    "--without-heartbeat",
    DRAMATIQ: "--processes 1 --threads 100",
}


def worker_args(kind: str) -> list[str]:
    return shlex.split(os.environ.get(f"BENCH_{kind.upper()}_ARGS", WORKER_ARGS[kind]))


class SyncSender:
    """Blocking sends of one sync side to one queue, from the bench process."""

    def __init__(self, kind: str, url: str, queue: str, threads: int = THREADS) -> None:
        self.kind, self.url, self.queue, self.threads = kind, url, queue, threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"bench-{kind}")
        self._close: Callable[[], None] = lambda: None
        if kind == CELERY:
            from bench.celery_app import make_app
            from bench.celery_app import register as register_celery

            app = make_app(url, queue)
            found = register_celery(app)
            self._send = {name: task.delay for name, task in found.items()}
            self._warm: Callable[[], None] = lambda: _warm_celery(app, threads)
            self._close = app.close
        else:
            from bench.dramatiq_app import make_broker
            from bench.dramatiq_app import register as register_dramatiq

            broker = make_broker(url, queue)
            found = register_dramatiq(broker, queue)
            self._send = {name: actor.send for name, actor in found.items()}
            self._warm = lambda: self._each_thread(lambda: _warm_dramatiq(broker))
            self._close = broker.close

    def send(self, task: str, *args: Any) -> None:
        self._send[task](*args)

    def send_each(self, task: str, key: str, indices: Sequence[int]) -> None:
        send = self._send[task]
        for i in indices:
            send(key, i)

    def send_threaded(self, task: str, key: str, indices: Sequence[int]) -> None:
        """``indices`` split over the pool's threads, each sending its share in a loop."""
        shares = [indices[n :: self.threads] for n in range(self.threads)]
        for done in [self._pool.submit(self.send_each, task, key, s) for s in shares]:
            done.result()

    def warm(self) -> None:
        """Open the connections the sends will use, before any is timed."""
        self._warm()

    def _each_thread(self, fn: Callable[[], None]) -> None:
        """``fn`` once in each of the pool's threads (a barrier keeps each busy until
        all have started, so that no thread runs it twice)."""
        barrier = threading.Barrier(self.threads)

        def once() -> None:
            fn()
            barrier.wait(timeout=60)

        for done in [self._pool.submit(once) for _ in range(self.threads)]:
            done.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._close()


def _warm_celery(app: Any, threads: int) -> None:
    """As many pooled connections as the sending threads can hold at once, each with
    its channel open."""
    limit = min(threads, app.conf.broker_pool_limit or threads)
    with contextlib.ExitStack() as held:
        for _ in range(limit):
            conn = held.enter_context(app.pool.acquire(block=True))
            conn.ensure_connection(max_retries=3)
            conn.default_channel  # noqa: B018 - opens the channel


def _warm_dramatiq(broker: Any) -> None:
    if hasattr(broker, "channel"):  # RabbitmqBroker: a connection and channel per thread
        broker.channel  # noqa: B018 - opens them
    else:  # RedisBroker: one client, a connection per concurrent caller
        broker.client.ping()


def stray_redis_keys(kind: str, queue: str) -> list[str]:
    """A side's Redis keys that do not start with its name (the run's prefix deletes
    the rest): kombu's binding sets of Celery's exchange."""
    if kind != CELERY:
        return []
    return [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]


async def delete_amqp(kind: str, url: str, queue: str) -> None:
    """Delete the queues and exchanges a sync side declared on RabbitMQ under ``queue``."""
    import aio_pika

    queues = [queue] if kind == CELERY else [queue, f"{queue}.DQ", f"{queue}.XQ"]
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)
        if kind == CELERY:
            await channel.exchange_delete(queue)
    finally:
        await connection.close()
