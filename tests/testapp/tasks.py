"""Tasks the worker tests run; effects are recorded in a Redis ledger (LEDGER_URL)."""

from __future__ import annotations

import asyncio
import os

from redis.asyncio import Redis

from asyncjobs import Reject, task

LEDGER_URL = os.environ.get("LEDGER_URL", "redis://127.0.0.1:6379/0")
LEDGER_KEY = os.environ.get("LEDGER_KEY", "ledger")


async def record(event: str) -> None:
    async with Redis.from_url(LEDGER_URL) as conn:
        await conn.rpush(LEDGER_KEY, event)


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
    await asyncio.sleep(seconds)
    await record(f"end:{tag}")
    return tag
