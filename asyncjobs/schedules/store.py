"""Dynamic schedules: added and removed at run time (``asyncjobs schedules add|remove``),
kept in Redis as JSON in one hash, ``{prefix}:schedules``, field = schedule id.

Entries are only ever read with a JSON parser, never unpickled: anything else found in
the hash (a planted pickle, a hand-edited entry whose cron or task is invalid) is skipped
with a warning naming its id and the reason, so one bad entry cannot stop the scheduler
or the listing. Every replica reads the same hash, so they all agree on the schedules.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Collection
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.client import NEVER_DECODE

from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.brokers.redis.connection import connection_pool
from asyncjobs.schedules.definitions import Schedule

logger = logging.getLogger("asyncjobs.scheduler")

MAX_REASON_CHARS = 200  # a reason may quote the entry: keep logs short


def store_key(key_prefix: str) -> str:
    return f"{key_prefix}:schedules"


class InvalidEntry(ValueError):
    """A stored entry that is not a valid schedule (internal: it is skipped)."""


class ScheduleStore:
    def __init__(self, redis: Callable[[], Redis], key_prefix: str) -> None:
        """``redis()`` returns a client used as ``async with redis() as conn:``."""
        self._redis = redis
        self.key = store_key(key_prefix)
        self._pool: BlockingConnectionPool | None = None

    @classmethod
    def from_url(cls, url: str, key_prefix: str) -> ScheduleStore:
        """A store with a connection pool of its own; ``aclose()`` it when done."""
        pool = connection_pool(url)
        store = cls(lambda: Redis(connection_pool=pool), key_prefix)
        store._pool = pool
        return store

    async def aclose(self) -> None:
        """Close the pool ``from_url`` made (nothing to do with a caller's factory)."""
        if self._pool is not None:
            await self._pool.disconnect()

    async def add(self, schedule: Schedule, known_tasks: Collection[str] | None = None) -> Schedule:
        """Store ``schedule`` under its id (replacing one with the same id); the schedule
        as ``list()`` will return it. With ``known_tasks``, its task must be one of them."""
        if not schedule.task_name:
            raise ConfigurationError(f"schedule {schedule.id}: a task name is required")
        if known_tasks is not None and schedule.task_name not in known_tasks:
            raise ConfigurationError(unknown_task_message(schedule.task_name, known_tasks))
        # Re-read what will be stored: what add accepts, list() accepts too (kwargs is a
        # dict, which could have been changed since the schedule was validated).
        try:
            body = orjson.dumps(schedule.to_dict())
            stored = _decode(schedule.id, body)
        except (TypeError, InvalidEntry) as exc:
            raise ConfigurationError(f"schedule of {schedule.task_name}: {exc}") from None
        async with self._redis() as conn:
            await conn.hset(self.key, schedule.id, body)
        return stored

    async def remove(self, schedule_id: str) -> bool:
        """Delete the entry (valid or not); whether it existed."""
        async with self._redis() as conn:
            return bool(await conn.hdel(self.key, schedule_id))

    async def get(self, schedule_id: str) -> Schedule | None:
        """The schedule, or None when there is none (or it is invalid: logged)."""
        async with self._redis() as conn:
            body = await _raw(conn, "HGET", self.key, schedule_id)
        if body is None:
            return None
        return _valid_or_none(schedule_id, body, self.key)

    async def list(self) -> list[Schedule]:
        """Every valid schedule, sorted by id; invalid entries are logged and skipped."""
        async with self._redis() as conn:
            entries: dict[bytes, bytes] = await _raw(conn, "HGETALL", self.key)
        found = []
        for field, body in entries.items():
            schedule_id = field.decode(errors="replace")
            schedule = _valid_or_none(schedule_id, body, self.key)
            if schedule is not None:
                found.append(schedule)
        return sorted(found, key=lambda s: s.id)


async def _raw(conn: Redis, *command: str) -> Any:
    """The reply as bytes even from a client that decodes responses: one entry that is not
    UTF-8 (a pickle) would otherwise fail the whole HGETALL inside redis-py."""
    options = {NEVER_DECODE: True}
    return await conn.execute_command(*command, **options)  # type: ignore[no-untyped-call]


def unknown_task_message(task_name: str, known_tasks: Collection[str]) -> str:
    close = difflib.get_close_matches(task_name, list(known_tasks), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    if not known_tasks:
        hint = " (no task is registered in this process)"
    return f"unknown task {task_name!r}: give a registered task's full name (module:function){hint}"


def _valid_or_none(schedule_id: str, body: bytes, key: str) -> Schedule | None:
    try:
        return _decode(schedule_id, body)
    except InvalidEntry as exc:
        reason = str(exc)[:MAX_REASON_CHARS]
        logger.warning("skipping stored schedule %r in %s: %s", schedule_id, key, reason)
        return None


def _decode(schedule_id: str, body: bytes) -> Schedule:
    """JSON only: whatever else the bytes are (a pickle included) fails to parse here."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidEntry("not JSON (never unpickled)") from None
    if not isinstance(data, dict):
        raise InvalidEntry(f"not a JSON object but a {type(data).__name__}")
    try:
        schedule = Schedule.from_dict(data)
    # from_dict raises ConfigurationError; the rest is a safety net: one odd entry must
    # not stop the listing (nor the scheduler).
    except (ConfigurationError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEntry(f"not a valid schedule: {exc}") from None
    if schedule.id != schedule_id:
        raise InvalidEntry(f"stored under this id, but its id is {schedule.id!r}")
    return schedule
