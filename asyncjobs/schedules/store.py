"""Dynamic schedules: added and removed at run time (``asyncjobs schedules add|remove``),
kept as JSON by id in the schedule storage (Redis: one hash, ``{prefix}:schedules``).

Entries are only ever read with a JSON parser, never unpickled: anything else found in
the storage (a planted pickle, a hand-edited entry whose cron or task is invalid) is skipped
with a warning naming its id and the reason, so one bad entry cannot stop the scheduler
or the listing. Every replica reads the same hash, so they all agree on the schedules.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Collection

import orjson

from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.brokers.stores import ScheduleStorage
from asyncjobs.brokers.transport import transport_for
from asyncjobs.schedules.definitions import Schedule

logger = logging.getLogger("asyncjobs.scheduler")

MAX_REASON_CHARS = 200  # a reason may quote the entry: keep logs short


class InvalidEntry(ValueError):
    """A stored entry that is not a valid schedule (internal: it is skipped)."""


class ScheduleStore:
    def __init__(self, storage: ScheduleStorage) -> None:
        self.storage = storage

    @classmethod
    def from_url(
        cls, url: str, key_prefix: str, setting: str = "SCHEDULE_STORE_URL"
    ) -> ScheduleStore:
        """A store on the storage ``url``'s transport offers; ``aclose()`` it when done."""
        spec = transport_for(url, setting)
        if spec.build_schedule_storage is None:
            raise ConfigurationError(
                f"{setting}: {spec.name} keeps no schedules; use a redis:// URL"
            )
        return cls(spec.build_schedule_storage(url, key_prefix))

    async def aclose(self) -> None:
        await self.storage.aclose()

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
        await self.storage.put(schedule.id, body)
        return stored

    async def remove(self, schedule_id: str) -> bool:
        """Delete the entry (valid or not); whether it existed."""
        return await self.storage.delete(schedule_id)

    async def get(self, schedule_id: str) -> Schedule | None:
        """The schedule, or None when there is none (or it is invalid: logged)."""
        body = await self.storage.get(schedule_id)
        if body is None:
            return None
        return _valid_or_none(schedule_id, body, self.storage.location)

    async def list(self) -> list[Schedule]:
        """Every valid schedule, sorted by id; invalid entries are logged and skipped."""
        found = []
        for schedule_id, body in (await self.storage.all()).items():
            schedule = _valid_or_none(schedule_id, body, self.storage.location)
            if schedule is not None:
                found.append(schedule)
        return sorted(found, key=lambda s: s.id)


def unknown_task_message(task_name: str, known_tasks: Collection[str]) -> str:
    close = difflib.get_close_matches(task_name, list(known_tasks), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    if not known_tasks:
        hint = " (no task is registered in this process)"
    return f"unknown task {task_name!r}: give a registered task's full name (module:function){hint}"


def _valid_or_none(schedule_id: str, body: bytes, where: str) -> Schedule | None:
    try:
        return _decode(schedule_id, body)
    except InvalidEntry as exc:
        reason = str(exc)[:MAX_REASON_CHARS]
        logger.warning("skipping stored schedule %r in %s: %s", schedule_id, where, reason)
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
