"""Exactly-once ledger shared by the bench tasks of every side (asyncjobs, raw taskiq,
Celery, Dramatiq).

Inside a worker, ``record()`` only appends to a buffer; one background task flushes it to
Redis every ``FLUSH_S`` in a single pipeline (SADD ids, INCRBY count, first start / last
finish, latencies). A per-task Redis round trip would dominate a no-op task and hide the
difference between the workers, so the bookkeeping is batched for all alike. Thread-pool
workers (Celery, Dramatiq) call ``record_threaded()``: the same buffer behind a lock,
flushed by a daemon thread on the same period (one per process: started on first use,
again in a forked child).

In Redis, under ``{key}``: ``:ids`` (set: duplicates collapse), ``:count`` (counter:
duplicates add up), ``:times`` (zset, ``first`` = earliest start, ``last`` = latest
finish, unix s) and ``:lat`` (list of enqueue-to-start latencies, s). A phase is exactly
once when count == set size == N.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass, field

import redis
from redis.asyncio import Redis

FLUSH_S = 0.02
REDIS_URL_ENV = "BENCH_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class _Pending:
    ids: list[int] = field(default_factory=list)
    first: float = math.inf
    last: float = 0.0
    latencies: list[float] = field(default_factory=list)


_pending: dict[str, _Pending] = {}
_flusher: asyncio.Task[None] | None = None


def record(key: str, i: int, started: float, sent: float = 0.0) -> None:
    """Count task ``i`` of phase ``key`` as run (``started``/``sent``: ``time.time()``);
    from a task on an asyncio loop."""
    global _flusher
    _add(key, i, started, sent)
    if _flusher is None or _flusher.done():
        _flusher = asyncio.get_running_loop().create_task(_flush_forever())


_lock = threading.Lock()
_thread_started = False


def record_threaded(key: str, i: int, started: float, sent: float = 0.0) -> None:
    """``record()`` from a worker thread with no loop (Celery, Dramatiq)."""
    global _thread_started
    with _lock:
        _add(key, i, started, sent)
        if not _thread_started:
            _thread_started = True
            threading.Thread(target=_flush_thread, name="bench-recorder", daemon=True).start()


def _forked() -> None:
    global _lock, _thread_started, _pending
    _lock, _thread_started, _pending = threading.Lock(), False, {}


os.register_at_fork(after_in_child=_forked)  # a prefork child has no flusher thread


def _add(key: str, i: int, started: float, sent: float) -> None:
    entry = _pending.get(key)
    if entry is None:
        entry = _pending[key] = _Pending()
    entry.ids.append(i)
    entry.first = min(entry.first, started)
    entry.last = max(entry.last, time.time())
    if sent:
        entry.latencies.append(started - sent)


def _take() -> dict[str, _Pending]:
    global _pending
    batch, _pending = _pending, {}
    return batch


def _write(
    pipe: redis.client.Pipeline | redis.asyncio.client.Pipeline, batch: dict[str, _Pending]
) -> None:
    for key, entry in batch.items():
        pipe.sadd(f"{key}:ids", *entry.ids)
        pipe.incrby(f"{key}:count", len(entry.ids))
        pipe.zadd(f"{key}:times", {"first": entry.first}, lt=True)
        pipe.zadd(f"{key}:times", {"last": entry.last}, gt=True)
        if entry.latencies:
            pipe.rpush(f"{key}:lat", *entry.latencies)


async def _flush_forever() -> None:
    conn = Redis.from_url(os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL))
    try:
        while True:
            await asyncio.sleep(FLUSH_S)
            if not _pending:
                continue
            pipe = conn.pipeline(transaction=False)
            _write(pipe, _take())
            await pipe.execute()
    finally:
        with contextlib.suppress(Exception):
            await conn.aclose()


def _flush_thread() -> None:
    global _thread_started
    conn = redis.Redis.from_url(os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL))
    try:
        while True:
            time.sleep(FLUSH_S)  # the flush period, as the asyncio flusher's
            if not _pending:
                continue
            with _lock:
                batch = _take()
            pipe = conn.pipeline(transaction=False)
            _write(pipe, batch)
            pipe.execute()
    finally:  # as the asyncio flusher: the next record() starts another
        _thread_started = False
        conn.close()


@dataclass
class Tally:
    count: int
    distinct: int
    first: float  # earliest task start (unix s)
    last: float  # latest task finish (unix s)
    latencies: list[float]

    def exactly_once(self, expected: int) -> bool:
        return self.count == expected and self.distinct == expected

    @property
    def span_s(self) -> float:
        return self.last - self.first


class Ledger:
    """The orchestrator's side: read and wait for what the workers recorded."""

    def __init__(self, url: str) -> None:
        self.conn = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)

    async def tally(self, key: str, with_latencies: bool = False) -> Tally:
        pipe = self.conn.pipeline(transaction=False)
        pipe.get(f"{key}:count")
        pipe.scard(f"{key}:ids")
        pipe.zscore(f"{key}:times", "first")
        pipe.zscore(f"{key}:times", "last")
        pipe.lrange(f"{key}:lat", 0, -1 if with_latencies else 0)
        count, distinct, first, last, lat = await pipe.execute()
        latencies = [float(x) for x in lat] if with_latencies else []
        return Tally(int(count or 0), int(distinct), first or 0.0, last or 0.0, latencies)

    async def wait(self, key: str, expected: int, stall_s: float = 30.0) -> Tally:
        """Poll until ``expected`` tasks ran or nothing moved for ``stall_s``; then give
        late duplicates a moment to show up before the final count."""
        seen, moved = -1, time.monotonic()
        while True:
            got = await self.tally(key)
            if got.count >= expected:
                break
            if got.count != seen:
                seen, moved = got.count, time.monotonic()
            elif time.monotonic() - moved > stall_s:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        return await self.tally(key, with_latencies=True)

    async def delete_prefix(self, prefix: str) -> None:
        keys = [k async for k in self.conn.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await self.conn.delete(*keys[start : start + 1000])

    async def close(self) -> None:
        await self.conn.aclose()
