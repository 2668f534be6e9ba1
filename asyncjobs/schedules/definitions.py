"""What to run when: a task, a cron expression in a time zone or a fixed interval, the
arguments, and what to do about ticks missed while no scheduler ran.

Every schedule has a stable id derived from its definition (or given), so restarts and
replicas agree on it, and every tick is a precise instant (UTC), so they agree on that too.

Time zones and DST, for cron schedules (intervals count real seconds from the Unix epoch):
a wall time that does not exist on a spring-forward day is skipped; a wall time that
happens twice on a fall-back day fires once, at its first occurrence — unless the hour
field starts with ``*`` (``*/5 * * * *``): such a job keeps running through the repeated
hour, as in Vixie cron.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.schedules.cron import CronExpression

MAX_SCAN = timedelta(days=31)  # how far back a catch-up may look for missed cron ticks
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


@dataclass(frozen=True, slots=True)
class Schedule:
    task_name: str
    cron: str | None = None
    every_s: float | None = None
    tz: str = "UTC"
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    catch_up: int = 0  # missed ticks sent after an outage, newest first (0: skip them)
    given_id: str | None = None

    def __post_init__(self) -> None:
        where = f"schedule of {self.task_name or 'a task'}"
        if (self.cron is None) == (self.every_s is None):
            raise ConfigurationError(f"{where}: give exactly one of cron or every")
        if self.cron is not None:
            object.__setattr__(self, "cron", CronExpression.parse(self.cron).text)
        if self.every_s is not None and not (1 <= self.every_s <= 366 * 86_400):
            raise ConfigurationError(f"{where}: every must be 1 s .. 366 days, got {self.every_s}")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"{where}: unknown time zone {self.tz!r}") from None
        if not 0 <= self.catch_up <= 1000:
            raise ConfigurationError(f"{where}: catch_up must be 0..1000, got {self.catch_up}")
        if self.given_id is not None and not (
            0 < len(self.given_id) <= 100 and set(self.given_id) <= _ID_CHARS
        ):
            raise ConfigurationError(f"{where}: id {self.given_id!r}: use letters, digits, _.:-")
        try:
            orjson.dumps([self.args, dict(self.kwargs)])
        except TypeError as exc:
            raise ConfigurationError(f"{where}: arguments must be JSON: {exc}") from None
        # orjson also encodes datetimes, UUIDs, enums, dataclasses and NaN (as null): the
        # task would get back something else than was declared, so only JSON's own types.
        problem = _not_json([self.args, dict(self.kwargs)])
        if problem:
            raise ConfigurationError(f"{where}: arguments must be JSON: {problem}")

    # -- identity ---------------------------------------------------------------------
    @property
    def id(self) -> str:
        """Given, or derived from the definition: the same schedule has the same id in
        every process and after every restart; any change makes it a new schedule."""
        if self.given_id:
            return self.given_id
        definition = orjson.dumps(
            [self.task_name, self.cron, self.every_s, self.tz, list(self.args), self.kwargs],
            option=orjson.OPT_SORT_KEYS,
        )
        short = self.task_name.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        return f"{short}-{hashlib.sha256(definition).hexdigest()[:12]}"

    def for_task(self, task_name: str) -> Schedule:
        return replace(self, task_name=task_name)

    def describe(self) -> str:
        when = f"cron {self.cron!r} ({self.tz})" if self.cron else f"every {self.every_s:g} s"
        return f"{self.id}: {self.task_name} {when}"

    # -- time ---------------------------------------------------------------------------
    def ticks(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """The ticks ``t`` with ``after < t <= until`` (aware datetimes), oldest first, as
        UTC instants; a cron scan reaches back at most ``MAX_SCAN``."""
        after, until = after.astimezone(UTC), until.astimezone(UTC)
        if self.every_s is not None:
            yield from _interval_ticks(self.every_s, after, until)
        else:
            assert self.cron is not None
            yield from _cron_ticks(CronExpression.parse(self.cron), ZoneInfo(self.tz), after, until)

    def period_s(self) -> float:
        """A bound on the time between two ticks (for claim expiry): a day for cron."""
        return self.every_s if self.every_s is not None else 86_400.0

    # -- storage (JSON, never pickle) ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task_name,
            "cron": self.cron,
            "every": self.every_s,
            "tz": self.tz,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "catch_up": self.catch_up,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        """From ``to_dict``'s shape (or SCHEDULES' keys in any case)."""
        known = {"id", "task", "cron", "every", "tz", "args", "kwargs", "catch_up"}
        lowered = {str(k).lower(): v for k, v in data.items()}
        unknown = set(lowered) - known
        if unknown:
            raise ConfigurationError(f"schedule {dict(data)!r}: unknown keys {sorted(unknown)}")
        if not isinstance(lowered.get("task"), str) or not lowered["task"]:
            raise ConfigurationError(f"schedule {dict(data)!r}: TASK (a task name) is required")
        where = f"schedule of {lowered['task']}"
        # Wrong types fail here, by key: tuple("abc") would silently make three arguments.
        every = lowered.get("every")
        if isinstance(every, timedelta):
            every = every.total_seconds()
        if every is not None and (isinstance(every, bool) or not isinstance(every, int | float)):
            raise ConfigurationError(f"{where}: EVERY must be seconds or a timedelta")
        args = lowered.get("args") or ()
        if not isinstance(args, list | tuple):
            raise ConfigurationError(f"{where}: ARGS must be a list, got {type(args).__name__}")
        kwargs = lowered.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise ConfigurationError(f"{where}: KWARGS must be a dict, got {type(kwargs).__name__}")
        catch_up = lowered.get("catch_up") or 0
        if isinstance(catch_up, bool) or not isinstance(catch_up, int):
            raise ConfigurationError(f"{where}: CATCH_UP must be a whole number")
        for key in ("cron", "tz", "id"):
            if lowered.get(key) is not None and not isinstance(lowered[key], str):
                raise ConfigurationError(f"{where}: {key.upper()} must be a string")
        return cls(
            task_name=lowered["task"],
            cron=lowered.get("cron"),
            every_s=float(every) if every is not None else None,
            tz=lowered.get("tz") or "UTC",
            args=tuple(args),
            kwargs=dict(kwargs),
            catch_up=catch_up,
            given_id=lowered.get("id"),
        )


def cron(
    expression: str,
    *,
    tz: str = "UTC",
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    id: str | None = None,
    catch_up: int = 0,
) -> Schedule:
    """A cron schedule for ``@task(schedule=[...])``: ``cron("0 9 * * MON-FRI",
    tz="Europe/Berlin")``."""
    return Schedule("", cron=expression, tz=tz, args=tuple(args), kwargs=dict(kwargs or {}),
                    catch_up=catch_up, given_id=id)  # fmt: skip


def every(
    interval: timedelta | float,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    id: str | None = None,
    catch_up: int = 0,
) -> Schedule:
    """An interval schedule: ``every(timedelta(seconds=30))``. Ticks fall on multiples
    of the interval since the Unix epoch, so every replica computes the same ones."""
    seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
    return Schedule("", every_s=seconds, args=tuple(args), kwargs=dict(kwargs or {}),
                    catch_up=catch_up, given_id=id)  # fmt: skip


def _not_json(value: Any) -> str | None:
    """What in ``value`` is not JSON (null, bool, int, finite float, str, list, dict
    with str keys), or None."""
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a JSON number"
    if isinstance(value, list | tuple):
        return next((p for p in map(_not_json, value) if p), None)
    if isinstance(value, dict):
        return next((p for p in map(_not_json, value.values()) if p), None)
    return f"{type(value).__qualname__} is not a JSON type (pass e.g. an ISO string or an id)"


def _interval_ticks(every_s: float, after: datetime, until: datetime) -> Iterator[datetime]:
    first = math.floor(after.timestamp() / every_s) + 1
    last = math.floor(until.timestamp() / every_s)
    for k in range(first, last + 1):
        yield datetime.fromtimestamp(k * every_s, UTC)


def _cron_ticks(
    expression: CronExpression, zone: ZoneInfo, after: datetime, until: datetime
) -> Iterator[datetime]:
    start = max(after, until - MAX_SCAN).replace(second=0, microsecond=0) + timedelta(minutes=1)
    moment = start
    while moment <= until:
        wall = moment.astimezone(zone)
        # A fixed-hour job fires once in a repeated hour (its first pass, fold=0); a job
        # with '*' hours keeps its rhythm through both passes, as in Vixie cron.
        if (wall.fold == 0 or expression.any_hour) and expression.matches(wall):
            yield moment
        moment += timedelta(minutes=1)
