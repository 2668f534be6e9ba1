"""Regression: a cancellation while redis-py sends a command must reach the task.

On Python 3.11 redis-py's ``asyncio.wait_for`` around socket writes swallows it, and the
task carries on (this is what made stopping workers hang).
"""

from __future__ import annotations

import asyncio
import sys

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from asyncjobs.brokers.redis.connection import connection_pool

pytestmark = pytest.mark.redis


async def swallowed_cancellations(pool: BlockingConnectionPool) -> list[int]:
    """Cancel a task at each of the first loop steps of a command; which ones were lost?"""
    async with Redis(connection_pool=pool) as conn:
        await conn.ping()
    lost = []
    for steps in range(8):
        gone_on = asyncio.Event()

        async def command(gone_on: asyncio.Event = gone_on) -> None:
            async with Redis(connection_pool=pool) as conn:
                await conn.ping()
            gone_on.set()  # reached only if the cancellation was lost
            await asyncio.Event().wait()

        task = asyncio.create_task(command())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait({task}, timeout=1)
        if gone_on.is_set():
            lost.append(steps)
            task.cancel()
            await asyncio.wait({task}, timeout=1)
    await pool.disconnect()
    return lost


async def test_our_connections_never_lose_a_cancellation(redis_url: str) -> None:
    assert await swallowed_cancellations(connection_pool(redis_url, socket_timeout=10)) == []


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="asyncio.wait_for was fixed in 3.12")
async def test_stock_redis_py_loses_cancellations_on_python_311(redis_url: str) -> None:
    stock = BlockingConnectionPool.from_url(redis_url, socket_timeout=10)
    assert await swallowed_cancellations(stock) != []
