"""An asyncjobs receiver running in the test's event loop against the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from asyncjobs import current_broker
from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.worker import AsyncJobsReceiver, WorkerSettings


@dataclass
class Worker:
    receiver: AsyncJobsReceiver
    finish: asyncio.Event
    task: asyncio.Task[None]
    conn: Redis
    prefix: str

    async def ledger(self) -> list[str]:
        return [e.decode() for e in await self.conn.lrange(f"{self.prefix}:ledger", 0, -1)]

    async def dead(self, queue: str = "default") -> list[DeadLetter]:
        broker = self.receiver.reliable
        await broker.ensure_started()
        return await broker.dead_letters(queue)

    async def stop(self, timeout: float = 15) -> None:
        """Drain, then close the broker's worker side, as ``taskiq worker`` does after its
        receiver returns: its lease and delay loops must not outlive the worker (they
        would share the broker's connections with a later event loop, e.g. a CLI run in
        a thread). Later calls start the client side again on demand."""
        self.finish.set()
        await asyncio.wait_for(self.task, timeout)
        broker = self.receiver.reliable
        await broker.shutdown()
        broker.is_worker_process = False


@pytest.fixture
async def start_worker(
    configured: AsyncJobsConfig, redis_url: str
) -> AsyncIterator[Callable[..., object]]:
    async for start in _starter(configured, redis_url):
        yield start


@pytest.fixture
async def start_any_worker(
    configured_any: AsyncJobsConfig, redis_url: str
) -> AsyncIterator[Callable[..., object]]:
    """Like ``start_worker``, once on Redis Streams and once on RabbitMQ."""
    async for start in _starter(configured_any, redis_url):
        yield start


async def _starter(
    configured: AsyncJobsConfig, redis_url: str
) -> AsyncIterator[Callable[..., object]]:
    workers: list[Worker] = []
    conn = Redis.from_url(redis_url)
    pool = ThreadPoolExecutor(4)

    async def start(**overrides: object) -> Worker:
        broker = current_broker()
        assert isinstance(broker, ReliableBroker)
        # This loop holds the client before anything is sent, as in a worker process
        # (taskiq starts the broker before the receiver runs).
        await broker.home.claim()
        broker.is_worker_process = True
        settings = WorkerSettings(
            **{
                "concurrency": 10,
                "drain_timeout_s": 5.0,
                "fetch_block_s": 0.2,
                "owns_process": False,
                **overrides,
            }  # type: ignore[arg-type]
        )
        receiver = AsyncJobsReceiver(broker, executor=pool, settings=settings)
        finish = asyncio.Event()
        worker = Worker(
            receiver,
            finish,
            asyncio.create_task(receiver.listen(finish)),
            conn,
            configured.key_prefix,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if not worker.task.done():
            await worker.stop()
    pool.shutdown(wait=False)
    await conn.aclose()
