"""Task results in Redis as JSON with a TTL.

taskiq-redis's result backend pickles by default: anyone who can write to Redis could run
code in every process that reads a result. This one only ever decodes JSON.
"""

from __future__ import annotations

from typing import Any

from taskiq.serializers import JSONSerializer
from taskiq_redis import RedisAsyncResultBackend

from brokers.redis_connection import connection_pool

KEY_PREFIX = "asyncjobs:result"


class JsonRedisResultBackend(RedisAsyncResultBackend[Any]):
    """``RedisAsyncResultBackend`` pinned to JSON, with expiring keys."""

    def __init__(self, url: str, ttl_s: int) -> None:
        self._url = url
        self._pool_kwargs: dict[str, Any] = {"socket_connect_timeout": 5, "socket_timeout": 10}
        super().__init__(
            url,
            serializer=JSONSerializer(),
            result_ex_time=ttl_s,
            prefix_str=KEY_PREFIX,
            **self._pool_kwargs,
        )
        self.redis_pool = connection_pool(url, **self._pool_kwargs)

    def forget_connections(self) -> None:
        """Drop a pool bound to an event loop that has ended (see ReliableBroker)."""
        self.redis_pool = connection_pool(self._url, **self._pool_kwargs)
