"""What an operator does to schedules, from the console or ``asyncjobs schedules``: list
them with their state, pause, resume, run now, add and remove dynamic ones.

One code path for both: the CLI commands and the Django admin's pages call these. Each
call opens the schedule store (``SCHEDULE_STORE_URL``, else the result backend's Redis)
in the loop that runs it and closes it before returning, so they work from any loop
(the console runs them in the broker's home loop, ``app.broker.home.run_sync``).

- Pausing works on static and dynamic schedules alike, by id, and is kept in the store:
  every scheduler honours it within its reload interval (10 s). Ticks that fall in a
  pause are dropped, never sent later; a resumed schedule starts from then.
- Run now sends one message of the schedule's task, with its arguments and labels, as
  the scheduler sends a tick, but with a fresh task id and no claim: it is no tick
  (``schedule_tick`` is the time of the run). A paused schedule can be run now.
- Without a schedule store, ``schedule_states`` lists the static schedules (never
  paused, nothing known of their sends); every change raises ``ConfigurationError``
  naming ``SCHEDULE_STORE_URL``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson

from asyncjobs.app import current_app
from asyncjobs.arguments import ArgumentValidator, InvalidArguments
from asyncjobs.brokers.base import process_name
from asyncjobs.brokers.failures import broker_failure, library_errors
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import AsyncJobsError, ConfigurationError, ScheduleNotFoundError
from asyncjobs.schedules.claims import ClaimStore
from asyncjobs.schedules.definitions import MAX_SCAN, Schedule
from asyncjobs.schedules.engine import utc_now
from asyncjobs.schedules.store import ScheduleStore
from asyncjobs.scheduling import send_schedule
from asyncjobs.tasks import registered_tasks

Source = Literal["static", "dynamic"]
STATIC: Source = "static"
DYNAMIC: Source = "dynamic"


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A schedule as an operator sees it. Times are aware, in the schedule's time zone."""

    schedule: Schedule
    source: Source
    paused: bool
    next_tick: datetime | None  # None: paused, or no tick within 31 days
    last_sent: datetime | None  # the newest tick any scheduler sent (ClaimStore.last_sent)

    @property
    def id(self) -> str:
        return self.schedule.id

    def as_dict(self) -> dict[str, Any]:
        """``Schedule.to_dict()`` plus ``source``, ``paused``, ``next_tick`` and
        ``last_sent`` (ISO 8601 or None): a row of ``schedules list --json``."""
        return {
            **self.schedule.to_dict(),
            "source": self.source,
            "paused": self.paused,
            "next_tick": _iso(self.next_tick),
            "last_sent": _iso(self.last_sent),
        }


async def schedule_states() -> list[ScheduleState]:
    """The static schedules (code, SCHEDULES) and the dynamic ones (the store), sorted by
    id (then source). Without a store: the static ones, not paused, last sent unknown."""
    app = current_app()
    static = [(schedule, STATIC) for schedule in app.schedules]
    if not app.config.effective_schedule_store_url:
        return [_state(schedule, source, False, None) for schedule, source in static]
    async with _store("reading the schedule store") as store:
        rows = static + [(schedule, DYNAMIC) for schedule in await store.list()]
        claims = _claims(store)
        paused = await claims.paused()
        states = [
            _state(schedule, source, schedule.id in paused, await claims.last_sent(schedule.id))
            for schedule, source in rows
        ]
    return sorted(states, key=lambda state: (state.id, state.source))


async def schedule_state(schedule_id: str) -> ScheduleState:
    """One schedule's state; ``ScheduleNotFoundError`` for an unknown id."""
    async with _store("reading the schedule store") as store:
        return await _state_in(store, *await _find(store, schedule_id))


async def pause(schedule_id: str) -> ScheduleState:
    """Pause a static or dynamic schedule: no scheduler sends its ticks until ``resume``
    (within their reload interval); the ticks meanwhile are dropped. Pausing a paused
    schedule changes nothing."""
    return await _set_paused(schedule_id, True)


async def resume(schedule_id: str) -> ScheduleState:
    """Resume a paused schedule: it ticks again from now (no catch-up of the pause)."""
    return await _set_paused(schedule_id, False)


async def run_now(schedule_id: str) -> str:
    """Send one message of the schedule's task now, with its arguments and labels, a
    fresh task id and no claim (not a tick; paused or not); the task id."""
    app = current_app()
    if app.config.effective_schedule_store_url:
        async with _store("reading the schedule store") as store:
            schedule, _ = await _find(store, schedule_id)
    else:
        schedule, _ = await _find(None, schedule_id)
    return await send_schedule(schedule, utc_now())


async def add_schedule(schedule: Schedule) -> Schedule:
    """Add a dynamic schedule (or replace the one with its id), checked as ``schedules
    add`` checks it: a registered task, arguments that fit, not a static schedule's id.
    The schedule as stored."""
    stored, _ = await add_or_replace(schedule)
    return stored


async def add_or_replace(schedule: Schedule) -> tuple[Schedule, bool]:
    """``add_schedule``, also saying whether it replaced a dynamic schedule."""
    _check_new(schedule)
    async with _store("adding to the schedule store") as store:
        replaced = await store.get(schedule.id) is not None
        return await store.add(schedule, known_tasks=registered_tasks()), replaced


async def remove_schedule(schedule_id: str) -> bool:
    """Remove a dynamic schedule (and its pause): True. A static schedule's id raises
    ``ConfigurationError`` (it lives in code or SCHEDULES), an unknown one
    ``ScheduleNotFoundError``."""
    async with _store("removing from the schedule store") as store:
        if await store.remove(schedule_id):
            await _claims(store).set_paused(schedule_id, False)
            return True
    if schedule_id in _static_ids():
        raise ConfigurationError(
            f"schedule {schedule_id!r} is static (declared in code or SCHEDULES): remove it there"
        )
    raise ScheduleNotFoundError(
        f"no dynamic schedule has id {schedule_id!r} (`asyncjobs schedules list` shows them)"
    )


def schedule_from_fields(
    *,
    task: str,
    cron: str | None,
    every: str | None,
    timezone: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    schedule_id: str | None,
    catch_up: int | None = None,
) -> Schedule:
    """A schedule from text fields (the CLI's options, a form's fields): ``every`` in
    seconds, the arguments as JSON; ``ConfigurationError`` saying what is wrong."""
    if timezone and cron is None:
        raise ConfigurationError("--tz applies to --cron only (intervals count real seconds)")
    if (cron is None) == (every is None):
        raise ConfigurationError("give exactly one of --cron EXPR or --every SECONDS")
    return Schedule(
        task_name=task,
        cron=cron,
        every_s=None if every is None else _seconds(every),
        tz=timezone or "UTC",
        args=tuple(_json_field("--args", args_json, list, '[1, "a"]') or ()),
        kwargs=_json_field("--kwargs", kwargs_json, dict, '{"a": 1}') or {},
        catch_up=catch_up or 0,
        given_id=schedule_id or None,
    )


def store_url(config: AsyncJobsConfig) -> str:
    """The schedule store's URL; ``ConfigurationError`` naming SCHEDULE_STORE_URL when
    none is configured."""
    url = config.effective_schedule_store_url
    if not url:
        raise ConfigurationError(
            "SCHEDULE_STORE_URL: dynamic schedules and pauses are kept in Redis, and none is "
            "configured (no SCHEDULE_STORE_URL, no RESULT_BACKEND_URL, BROKER_URL is not "
            "Redis); set ASYNCJOBS_SCHEDULE_STORE_URL=redis://host:6379/0"
        )
    return url


def next_tick(schedule: Schedule, now: datetime) -> datetime | None:
    """The first tick after ``now``, in the schedule's time zone (None: none within
    31 days, e.g. ``0 0 29 2 *``)."""
    until = now + (timedelta(seconds=schedule.every_s) if schedule.every_s else MAX_SCAN)
    tick = next(schedule.ticks(now, until), None)
    return None if tick is None else tick.astimezone(ZoneInfo(schedule.tz))


# -- internals ------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _store(doing: str) -> AsyncIterator[ScheduleStore]:
    """The configured store, open for the block; a library error becomes one line."""
    config = current_app().config
    url = store_url(config)
    store = ScheduleStore.from_url(url, config.key_prefix)
    try:
        yield store
    except AsyncJobsError:
        raise
    except library_errors() as exc:
        raise broker_failure(doing, url, exc) from None
    finally:
        await store.aclose()


def _claims(store: ScheduleStore) -> ClaimStore:
    return ClaimStore(store.storage, owner=process_name())


async def _find(store: ScheduleStore | None, schedule_id: str) -> tuple[Schedule, Source]:
    """The schedule with this id: dynamic first, as the scheduler's list has it."""
    if store is not None:
        dynamic = await store.get(schedule_id)
        if dynamic is not None:
            return dynamic, DYNAMIC
    for schedule in current_app().schedules:
        if schedule.id == schedule_id:
            return schedule, STATIC
    raise ScheduleNotFoundError(
        f"no schedule has id {schedule_id!r} (`asyncjobs schedules list` shows them)"
    )


async def _set_paused(schedule_id: str, paused: bool) -> ScheduleState:
    doing = "pausing a schedule" if paused else "resuming a schedule"
    async with _store(doing) as store:
        schedule, source = await _find(store, schedule_id)
        await _claims(store).set_paused(schedule_id, paused)
        return await _state_in(store, schedule, source)


async def _state_in(store: ScheduleStore, schedule: Schedule, source: Source) -> ScheduleState:
    claims = _claims(store)
    paused = schedule.id in await claims.paused()
    return _state(schedule, source, paused, await claims.last_sent(schedule.id))


def _state(
    schedule: Schedule, source: Source, paused: bool, last_sent: datetime | None
) -> ScheduleState:
    zone = ZoneInfo(schedule.tz)
    return ScheduleState(
        schedule=schedule,
        source=source,
        paused=paused,
        next_tick=None if paused else next_tick(schedule, utc_now()),
        last_sent=None if last_sent is None else last_sent.astimezone(zone),
    )


def _check_new(schedule: Schedule) -> None:
    """What ``add`` refuses before writing: a static id, an unknown task, arguments
    that do not fit (the worker's own check: they would dead-letter every tick)."""
    if schedule.id in _static_ids():
        raise ConfigurationError(
            f"schedule {schedule.id!r} is static (declared in code or SCHEDULES); a dynamic "
            "schedule needs another --id"
        )
    known = registered_tasks()
    if not known:
        # Without Django no task module was imported: nothing to check the name against.
        raise ConfigurationError(
            f"cannot check task {schedule.task_name!r}: no task is registered in this process; "
            "run `python manage.py asyncjobs schedules add ...`, or set DJANGO_SETTINGS_MODULE"
        )
    job = known.get(schedule.task_name)
    if job is None:
        return  # ScheduleStore.add names the closest tasks
    try:
        ArgumentValidator(job.original_func).validate(list(schedule.args), dict(schedule.kwargs))
    except InvalidArguments as exc:
        raise ConfigurationError(
            f"--args/--kwargs do not fit {schedule.task_name}: {exc}"
        ) from None


def _static_ids() -> set[str]:
    return {schedule.id for schedule in current_app().schedules}


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigurationError(f"--every: {text!r} is not a number of seconds") from None


def _json_field(option: str, text: str | None, kind: type, example: str) -> Any:
    if text is None or text == "":
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"{option}: not JSON ({exc}); e.g. {option} '{example}'") from None
    if not isinstance(value, kind):
        expected = "array" if kind is list else "object"
        raise ConfigurationError(f"{option}: expected a JSON {expected}, e.g. {option} '{example}'")
    return value


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
