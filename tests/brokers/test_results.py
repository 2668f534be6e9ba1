"""Results are JSON: a pickle planted in Redis is never unpickled."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from redis.asyncio import Redis
from taskiq.result import TaskiqResult

from asyncjobs.brokers.redis.results import JsonRedisResultBackend, results_prefix

pytestmark = pytest.mark.redis


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "pwned"))  # type: ignore[return-value]


async def test_results_round_trip_as_json_with_a_ttl(redis_url: str, prefix: str) -> None:
    backend = JsonRedisResultBackend(redis_url, ttl_s=60, key_prefix=prefix)
    task_id = f"{prefix}-ok"
    conn = Redis.from_url(redis_url)
    try:
        await backend.set_result(
            task_id, TaskiqResult(is_err=False, return_value={"a": 1}, execution_time=0.1)
        )
        raw = await conn.get(f"{results_prefix(prefix)}:{task_id}")
        assert raw is not None and raw.startswith(b"{")
        assert 0 < await conn.ttl(f"{results_prefix(prefix)}:{task_id}") <= 60
        assert (await backend.get_result(task_id)).return_value == {"a": 1}
    finally:
        await conn.delete(f"{results_prefix(prefix)}:{task_id}")
        await conn.aclose()
        await backend.shutdown()


async def test_a_planted_pickle_is_never_unpickled(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    task_id = f"{prefix}-evil"
    conn = Redis.from_url(redis_url)
    backend = JsonRedisResultBackend(redis_url, ttl_s=60, key_prefix=prefix)
    try:
        await conn.set(f"{results_prefix(prefix)}:{task_id}", pickle.dumps(Exploit(marker)))
        # Refused as text before any decoding: a pickle is not even UTF-8.
        with pytest.raises(UnicodeDecodeError, match="can't decode byte 0x80 in position 0"):
            await backend.get_result(task_id)
        assert not marker.exists()
    finally:
        await conn.delete(f"{results_prefix(prefix)}:{task_id}")
        await conn.aclose()
        await backend.shutdown()


async def test_a_status_document_is_kept_with_a_ttl_and_if_absent_never_overwrites(
    redis_url: str, prefix: str
) -> None:
    """What the django.tasks backend keeps beside a result (``ResultStore.set_status``)."""
    backend = JsonRedisResultBackend(redis_url, ttl_s=60, key_prefix=prefix)
    key = f"{results_prefix(prefix)}:t1:status"
    conn = Redis.from_url(redis_url)
    try:
        assert await backend.get_status("t1") is None
        await backend.set_status("t1", b'{"status": "RUNNING"}')
        await backend.set_status("t1", b'{"status": "READY"}', if_absent=True)  # too late
        assert await backend.get_status("t1") == b'{"status": "RUNNING"}'
        assert 0 < await conn.ttl(key) <= 60
        await backend.set_status("t1", b'{"status": "SUCCESSFUL"}')
        assert await backend.get_status("t1") == b'{"status": "SUCCESSFUL"}'
    finally:
        await conn.delete(key)
        await conn.aclose()
        await backend.shutdown()
