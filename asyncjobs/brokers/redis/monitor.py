"""The workers' registry and per-minute counters in Redis (``brokers.stores.MonitorStore``).

Keys, all under ``{KEY_PREFIX}:monitor:`` and all expiring:

- ``worker:{id}``: a worker's JSON document, ``SET ... PX`` at every heartbeat (its TTL is
  the worker's life once it stops); ``workers``: the set of registered ids, pruned of
  ids whose document expired whenever it is read (one script), expiring an hour after
  the last registration.
- ``minute:{queue}:{minute_s}``: a hash of the minute's counts (``HINCRBY`` per
  outcome) and its ``backlog`` sample (``HSET``); ``sample:{minute_s}``: who samples the
  backlog that minute (``SET NX``).

Every write is one round trip (a ``MULTI`` pipeline). Connections belong to the event
loop that opened them: the store uses one pool per loop, replaced when another loop
calls it (a worker's loop, the broker's home loop, a command's ``asyncio.run``), as the
result store does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from asyncjobs.brokers.failures import translating
from asyncjobs.brokers.redis.connection import connection_pool
from asyncjobs.brokers.stores import BACKLOG, MonitorStore
from asyncjobs.brokers.urls import redact_url

INDEX_TTL_MS = 3_600_000  # the set of ids outlives every document registered in it

# KEYS[1] the set of ids; ARGV[1] the documents' key prefix. Returns id, document, id,
# document...; ids whose document expired are removed from the set.
LIVE = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local doc = redis.call('GET', ARGV[1] .. id)
  if doc then
    out[#out + 1] = id
    out[#out + 1] = doc
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
"""


class RedisMonitorStore(MonitorStore):
    def __init__(self, url: str, key_prefix: str) -> None:
        self.url = url
        self.prefix = f"{key_prefix}:monitor"
        self.index = f"{self.prefix}:workers"
        self.location = f"Redis keys {self.prefix}:* at {redact_url(url)}"
        self._pool_kwargs: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": 10}
        self._pool = connection_pool(url, **self._pool_kwargs)
        self._client = Redis(connection_pool=self._pool)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _here(self) -> Redis:
        """The client of the running loop's pool: a new pool when another loop calls.
        The old one is closed in its loop if that still runs (else its connections
        went with their loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            old, old_loop = self._pool, self._loop
            if old_loop is not None:
                if old_loop.is_running():
                    asyncio.run_coroutine_threadsafe(old.disconnect(), old_loop)
                self._pool = connection_pool(self.url, **self._pool_kwargs)
                self._client = Redis(connection_pool=self._pool)
            self._loop = loop
        return self._client

    def worker_key(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def minute_key(self, queue: str, minute_s: int) -> str:
        return f"{self.prefix}:minute:{queue}:{minute_s}"

    # -- registry -------------------------------------------------------------------
    @translating("registering a worker")
    async def register(self, worker_id: str, document: bytes, ttl_s: float) -> None:
        ttl_ms = max(1, round(ttl_s * 1000))
        async with self._here().pipeline(transaction=True) as pipe:
            pipe.set(self.worker_key(worker_id), document, px=ttl_ms)
            pipe.sadd(self.index, worker_id)
            pipe.pexpire(self.index, max(ttl_ms, INDEX_TTL_MS))
            await pipe.execute()

    @translating("unregistering a worker")
    async def unregister(self, worker_id: str) -> None:
        async with self._here().pipeline(transaction=True) as pipe:
            pipe.delete(self.worker_key(worker_id))
            pipe.srem(self.index, worker_id)
            await pipe.execute()

    @translating("reading the workers")
    async def workers(self) -> dict[str, bytes]:
        options = {NEVER_DECODE: True}  # a document that is not UTF-8 must not fail the read
        flat: list[bytes] = await self._here().execute_command(  # type: ignore[no-untyped-call]
            "EVAL", LIVE, 1, self.index, f"{self.prefix}:worker:", **options
        )
        pairs = zip(flat[::2], flat[1::2], strict=True)
        return {worker_id.decode(errors="replace"): doc for worker_id, doc in pairs}

    # -- counters -------------------------------------------------------------------
    @translating("adding to the per-minute counts")
    async def add_counts(
        self, minute_s: int, counts: Mapping[tuple[str, str], int], ttl_s: int
    ) -> None:
        if not counts:
            return
        keys: set[str] = set()
        async with self._here().pipeline(transaction=True) as pipe:
            for (queue, outcome), n in counts.items():
                key = self.minute_key(queue, minute_s)
                pipe.hincrby(key, outcome, n)
                keys.add(key)
            for key in keys:
                pipe.expire(key, ttl_s)
            await pipe.execute()

    @translating("reading the per-minute counts")
    async def counts(
        self, queues: Sequence[str], first_minute_s: int, last_minute_s: int
    ) -> dict[str, dict[int, dict[str, int]]]:
        minutes = range(first_minute_s, last_minute_s + 1, 60)
        wanted = [(queue, minute) for queue in queues for minute in minutes]
        async with self._here().pipeline(transaction=False) as pipe:
            for queue, minute in wanted:
                pipe.hgetall(self.minute_key(queue, minute))
            found: list[dict[Any, Any]] = await pipe.execute()
        result: dict[str, dict[int, dict[str, int]]] = {queue: {} for queue in queues}
        for (queue, minute), fields in zip(wanted, found, strict=True):
            numbers = _numbers(fields)
            if numbers:
                result[queue][minute] = numbers
        return result

    @translating("claiming the backlog sample")
    async def claim_sample(self, minute_s: int, owner: str, ttl_s: int) -> bool:
        key = f"{self.prefix}:sample:{minute_s}"
        return bool(await self._here().set(key, owner, nx=True, ex=ttl_s))

    @translating("storing a backlog sample")
    async def add_backlog(self, minute_s: int, queue: str, backlog: int, ttl_s: int) -> None:
        key = self.minute_key(queue, minute_s)
        async with self._here().pipeline(transaction=True) as pipe:
            pipe.hset(key, BACKLOG, backlog)
            pipe.expire(key, ttl_s)
            await pipe.execute()

    async def aclose(self) -> None:
        await self._pool.disconnect()


def _numbers(fields: Mapping[Any, Any]) -> dict[str, int]:
    """A hash's fields that are whole numbers (anything else was not written by us)."""
    out: dict[str, int] = {}
    for name, value in fields.items():
        try:
            out[name.decode() if isinstance(name, bytes) else str(name)] = int(value)
        except (ValueError, TypeError, UnicodeDecodeError):
            continue
    return out
