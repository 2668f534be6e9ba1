"""Task results in Redis as JSON with a TTL.

taskiq-redis's result backend pickles by default: anyone who can write to Redis could run
code in every process that reads a result. This one only ever decodes JSON. Beside each
result, ``{KEY_PREFIX}:result:{task_id}:attempts`` lists the task's failed attempts and
``...:status`` keeps its status document (``ResultStore.set_status``).

Storing a result survives a dropped connection or a Redis restart: it is retried for up
to ``retry_for_s`` (the lease), as acknowledging the message is. Otherwise a task that
finished during a short outage was acknowledged once Redis was back, its result lost.
The SETs of the results finished in one event-loop step go out as one pipeline
(``asyncjobs.brokers.redis.batch``); each ``set_result`` still returns only once Redis has its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from redis.asyncio import Redis
from taskiq.result import TaskiqResult
from taskiq.serializers import JSONSerializer
from taskiq_redis import RedisAsyncResultBackend

from asyncjobs.brokers.redis.batch import PipelineBatcher
from asyncjobs.brokers.redis.connection import connection_pool
from asyncjobs.brokers.redis.pipelining import PipelinedConnection
from asyncjobs.brokers.stores import ResultStore

MAX_ATTEMPT_RECORDS = 100  # a task retried more often keeps its last 100 failures


def results_prefix(key_prefix: str) -> str:
    """Results live under ``{KEY_PREFIX}:result:{task_id}``, beside the project's streams."""
    return f"{key_prefix}:result"


class JsonRedisResultBackend(RedisAsyncResultBackend[Any], ResultStore):
    """``RedisAsyncResultBackend`` pinned to JSON, with expiring keys."""

    def __init__(
        self, url: str, ttl_s: int, key_prefix: str = "asyncjobs", *, retry_for_s: float = 15.0
    ) -> None:
        self._url = url
        self.retry_for_s = retry_for_s
        self._pool_kwargs: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": 10}
        super().__init__(
            url,
            serializer=JSONSerializer(),
            result_ex_time=ttl_s,
            prefix_str=results_prefix(key_prefix),
            **self._pool_kwargs,
        )
        self.redis_pool = connection_pool(url, **self._pool_kwargs)
        self._client: Redis | None = None
        self._writes = PipelineBatcher(self.client, retry_for_s)
        # Status documents are written as a task is sent: auto-pipelined, as sends are,
        # they cost a fraction of a pooled command's Python and overlap the send.
        self._statuses = PipelinedConnection(self.redis_pool)
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> Redis:
        """One long-lived client on the current pool (see ``RedisStreamsBroker.redis``)."""
        client = self._client
        if client is None or client.connection_pool is not self.redis_pool:
            client = self._client = Redis(connection_pool=self.redis_pool)
        return client

    def forget_connections(self) -> None:
        """Drop a pool bound to an event loop that has ended (see ReliableBroker)."""
        self.redis_pool = connection_pool(self._url, **self._pool_kwargs)
        self._statuses = PipelinedConnection(self.redis_pool)

    def _on_this_loop(self) -> None:
        # A pool's connections belong to the loop that opened them: a web process's
        # first loop may be gone (asyncio.run per shell command) when results are read.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                self.forget_connections()
            self._loop = loop

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        self._on_this_loop()
        # taskiq-redis's set_result, as JSON: orjson is several times faster; json (the
        # serializer's) also takes what orjson refuses (integers beyond 64 bits).
        payload = result.model_dump(mode="json")
        try:
            value = orjson.dumps(payload)
        except orjson.JSONEncodeError:
            value = self.serializer.dumpb(payload)
        ttl = ("EX", self.result_ex_time) if self.result_ex_time else ()
        await self._writes.execute(("SET", self._task_name(task_id), value, *ttl))

    def attempts_key(self, task_id: str) -> str:
        return f"{self._task_name(task_id)}:attempts"

    async def record_attempt(self, task_id: str, entry: dict[str, Any]) -> None:
        """Append a failed attempt (``{"attempt", "error_type", "error_message", "at"}``) to
        the task's attempt record, kept as long as results; once, not retried (the worker
        is about to schedule the next attempt and must not wait for this)."""
        self._on_this_loop()
        key = self.attempts_key(task_id)
        async with self.client().pipeline(transaction=True) as pipe:
            pipe.rpush(key, orjson.dumps(entry))
            pipe.ltrim(key, -MAX_ATTEMPT_RECORDS, -1)
            if self.result_ex_time:
                pipe.expire(key, self.result_ex_time)
            await pipe.execute()

    async def attempts(self, task_id: str) -> list[dict[str, Any]]:
        """The task's failed attempts so far, oldest first (empty when none failed)."""
        self._on_this_loop()
        raw = await self.client().lrange(self.attempts_key(task_id), 0, -1)
        return [entry for entry in map(orjson.loads, raw) if isinstance(entry, dict)]

    def status_key(self, task_id: str) -> str:
        return f"{self._task_name(task_id)}:status"

    async def set_status(self, task_id: str, body: bytes, *, if_absent: bool = False) -> None:
        self._on_this_loop()
        command: list[Any] = ["SET", self.status_key(task_id), body]
        if self.result_ex_time:
            command += ["EX", self.result_ex_time]
        if if_absent:
            command.append("NX")
        await self._statuses.execute(*command)

    async def get_status(self, task_id: str) -> bytes | None:
        self._on_this_loop()
        raw: bytes | str | None = await self._statuses.execute("GET", self.status_key(task_id))
        return raw.encode() if isinstance(raw, str) else raw

    async def shutdown(self) -> None:
        await self._statuses.close(1.0)  # its connection is not the pool's to close
        await self._writes.close(1.0)  # nor is the batcher's
        await super().shutdown()

    async def is_result_ready(self, task_id: str) -> bool:
        self._on_this_loop()
        return await super().is_result_ready(task_id)

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[Any]:
        self._on_this_loop()
        return await super().get_result(task_id, with_logs)
