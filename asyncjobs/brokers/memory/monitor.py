"""The workers' registry and per-minute counters in this process (``memory://``).

The Redis store's semantics (``asyncjobs.brokers.redis.monitor``), each step under the
server's lock: documents expire after their TTL, a minute's counts and backlog sample
after theirs, and a minute's sample is claimed by its first owner. Shared by every store
of the URL and key prefix in the process, like the queues.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from asyncjobs.brokers.memory.server import server_for
from asyncjobs.brokers.stores import BACKLOG, MonitorStore


class MemoryMonitorStore(MonitorStore):
    def __init__(self, url: str, key_prefix: str) -> None:
        self.server = server_for(url, key_prefix)
        self.location = f"the in-process monitor of {url} (key prefix {key_prefix})"

    async def register(self, worker_id: str, document: bytes, ttl_s: float) -> None:
        with self.server.lock:
            self.server.workers.set(worker_id, bytes(document), max(ttl_s, 0.001))

    async def unregister(self, worker_id: str) -> None:
        with self.server.lock:
            self.server.workers.pop(worker_id)

    async def workers(self) -> dict[str, bytes]:
        with self.server.lock:
            return dict(self.server.workers.items())

    async def add_counts(
        self, minute_s: int, counts: Mapping[tuple[str, str], int], ttl_s: int
    ) -> None:
        with self.server.lock:
            for (queue, outcome), n in counts.items():
                fields = self._fields(queue, minute_s, ttl_s)
                fields[outcome] = fields.get(outcome, 0) + n

    async def counts(
        self, queues: Sequence[str], first_minute_s: int, last_minute_s: int
    ) -> dict[str, dict[int, dict[str, int]]]:
        result: dict[str, dict[int, dict[str, int]]] = {queue: {} for queue in queues}
        with self.server.lock:
            for queue in queues:
                for minute in range(first_minute_s, last_minute_s + 1, 60):
                    fields = self.server.minutes.get((queue, minute))
                    if fields:
                        result[queue][minute] = dict(fields)
        return result

    async def claim_sample(self, minute_s: int, owner: str, ttl_s: int) -> bool:
        with self.server.lock:
            if self.server.samples.get(minute_s) is not None:
                return False
            self.server.samples.set(minute_s, owner, ttl_s)
            return True

    async def add_backlog(self, minute_s: int, queue: str, backlog: int, ttl_s: int) -> None:
        with self.server.lock:
            self._fields(queue, minute_s, ttl_s)[BACKLOG] = backlog

    def _fields(self, queue: str, minute_s: int, ttl_s: int) -> dict[str, int]:
        """The minute's fields, their TTL started again (Redis: EXPIRE after each write).
        Hold the lock."""
        key = (queue, minute_s)
        fields = self.server.minutes.get(key) or {}
        self.server.minutes.set(key, fields, ttl_s)
        return fields
