"""Tasks the worker tests run. Each records what it did in a Redis ledger list under the
configured key prefix, so in-process and subprocess workers report the same way."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from asyncjobs import Reject, current_config, task


def ledger_key() -> str:
    return f"{current_config().key_prefix}:ledger"


async def record(event: str) -> None:
    config = current_config()
    url = config.effective_result_backend_url or config.broker_url
    async with Redis.from_url(url) as conn:
        await conn.rpush(ledger_key(), event)


@task
async def add(a: int, b: int) -> int:
    await record(f"add:{a}:{b}")
    return a + b


@task(queue="other")
async def on_other_queue(tag: str) -> str:
    await record(f"other:{tag}")
    return tag


@task
def sync_multiply(a: int, b: int) -> int:
    return a * b


@task(max_attempts=3)
async def always_fails(tag: str) -> None:
    await record(f"fail:{tag}")
    raise RuntimeError(f"boom {tag}")


@task
async def rejects(tag: str) -> None:
    await record(f"reject:{tag}")
    raise Reject("not retryable")


@task
async def sleeps(tag: str, seconds: float) -> str:
    await record(f"start:{tag}")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        await asyncio.shield(record(f"cancelled:{tag}"))
        raise
    await record(f"end:{tag}")
    return tag


@task
async def crashes(tag: str) -> None:
    """Kills its worker process outright (a segfault, an OOM kill): never settles."""
    import os

    await record(f"crash:{tag}")
    os._exit(1)
