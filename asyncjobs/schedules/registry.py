"""The schedules declared in code (``@task(schedule=[...])``) and in settings (SCHEDULES):
the static ones, the same in every process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asyncjobs.schedules.definitions import Schedule

_declared: dict[str, Schedule] = {}


def declare(schedules: Iterable[Schedule]) -> None:
    """Register schedules bound to their task (``Schedule.task_name`` set)."""
    for schedule in schedules:
        _declared[schedule.id] = schedule


def static_schedules(config: Any) -> list[Schedule]:
    """Declared in code plus ``config.schedules`` (SCHEDULES), by id; settings win."""
    found = dict(_declared)
    for schedule in getattr(config, "schedules", ()):
        if isinstance(schedule, Schedule):
            found[schedule.id] = schedule
    return [found[key] for key in sorted(found)]
