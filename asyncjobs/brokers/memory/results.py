"""Task results in this process (``memory://``), kept as the Redis store keeps them.

A result is stored as its JSON (never the object the task returned): what a test reads
back is what a real deployment would read from Redis, a value that is not JSON fails the
same way, and a caller cannot change a stored result by mutating what it got. Results,
their progress and the record of failed attempts expire after the TTL, checked when
read. They live in the ``MemoryServer`` of the URL and key prefix, so every store and
broker built for them in the process shares them.
"""

from __future__ import annotations

from typing import Any

import orjson
from taskiq.depends.progress_tracker import TaskProgress
from taskiq.result import TaskiqResult
from taskiq.serializers import JSONSerializer

from asyncjobs.brokers.errors import ResultMissingError
from asyncjobs.brokers.memory.server import server_for
from asyncjobs.brokers.stores import ResultStore, ResultStoreOptions

MAX_ATTEMPT_RECORDS = 100  # as on Redis: a task retried more often keeps its last 100


class MemoryResultStore(ResultStore):
    def __init__(self, url: str, options: ResultStoreOptions) -> None:
        self.server = server_for(url, options.key_prefix)
        self.ttl_s = options.ttl_s

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        value = _json(result.model_dump(mode="json"))
        with self.server.lock:
            self.server.results.set(task_id, value, self.ttl_s)

    async def is_result_ready(self, task_id: str) -> bool:
        with self.server.lock:
            return self.server.results.get(task_id) is not None

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[Any]:
        """Raises ``ResultMissingError`` when there is none (a handle's ``get_result``
        raises taskiq's ``ResultGetError`` from it, as from Redis's)."""
        with self.server.lock:
            raw = self.server.results.get(task_id)
        if raw is None:
            raise ResultMissingError(f"no result for task {task_id} (not finished, or expired)")
        result = TaskiqResult[Any].model_validate(orjson.loads(raw))
        if not with_logs:
            result.log = None
        return result

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        value = _json(progress.model_dump(mode="json"))
        with self.server.lock:
            self.server.progress.set(task_id, value, self.ttl_s)

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        with self.server.lock:
            raw = self.server.progress.get(task_id)
        return None if raw is None else TaskProgress[Any].model_validate(orjson.loads(raw))

    async def set_status(self, task_id: str, body: bytes, *, if_absent: bool = False) -> None:
        with self.server.lock:
            if not (if_absent and self.server.statuses.get(task_id) is not None):
                self.server.statuses.set(task_id, bytes(body), self.ttl_s)

    async def get_status(self, task_id: str) -> bytes | None:
        with self.server.lock:
            return self.server.statuses.get(task_id)

    async def record_attempt(self, task_id: str, entry: dict[str, Any]) -> None:
        value = _json(entry)
        with self.server.lock:
            kept = self.server.attempts.get(task_id) or []
            # The TTL starts again with each failure (Redis: EXPIRE after RPUSH).
            self.server.attempts.set(task_id, [*kept, value][-MAX_ATTEMPT_RECORDS:], self.ttl_s)

    async def attempts(self, task_id: str) -> list[dict[str, Any]]:
        with self.server.lock:
            kept = list(self.server.attempts.get(task_id) or [])
        return [entry for entry in map(orjson.loads, kept) if isinstance(entry, dict)]


def _json(data: Any) -> bytes:
    """orjson, or json for what orjson refuses (integers beyond 64 bits), as on Redis."""
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:
        return JSONSerializer().dumpb(data)
