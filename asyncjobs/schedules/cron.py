"""Five-field cron expressions: parsed once, validated, matched against local wall time.

``minute hour day-of-month month day-of-week`` with ``*``, ``*/n``, ``a-b``, ``a-b/n``,
lists, month names (JAN-DEC) and day names (SUN-SAT; 0 and 7 are Sunday). As in Vixie
cron, when both day fields are restricted a day matching either runs. (pycron, which
taskiq uses, accepts ``61 * * * *`` and never fires it: a typo must fail at start-up.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from asyncjobs.brokers.errors import ConfigurationError

MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
MONTHS = {m: i for i, m in enumerate(MONTH_NAMES, 1)}
DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
NO_NAMES: dict[str, int] = {}
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (  # name, low, high, names
    ("minute", 0, 59, NO_NAMES),
    ("hour", 0, 23, NO_NAMES),
    ("day of month", 1, 31, NO_NAMES),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)
_PART = re.compile(r"^(\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/([0-9]+))?$")


@dataclass(frozen=True, slots=True)
class CronExpression:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month starts with '*' (Vixie: '*/2' counts as unrestricted)
    any_weekday: bool  # day of week starts with '*'
    any_hour: bool  # hour starts with '*': the job runs through a repeated DST hour

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        parts = text.split()
        if len(parts) != 5:
            raise ConfigurationError(
                f"cron {text!r}: expected 5 fields (minute hour day month weekday), "
                f"got {len(parts)}"
            )
        sets = [_field(part, *spec, text) for part, spec in zip(parts, FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])  # 7 is Sunday too
        return cls(
            " ".join(parts),
            sets[0],
            sets[1],
            sets[2],
            sets[3],
            weekdays,
            parts[2].startswith("*"),
            parts[4].startswith("*"),
            parts[1].startswith("*"),
        )

    def matches(self, wall: datetime) -> bool:
        """Whether the minute of ``wall`` (local wall time) is a tick."""
        if wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        if wall.month not in self.months:
            return False
        day_ok = wall.day in self.days
        weekday_ok = (wall.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


def _field(
    text: str, name: str, low: int, high: int, names: dict[str, int], expr: str
) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        match = _PART.match(part)
        if match is None:
            raise ConfigurationError(f"cron {expr!r}: cannot read {name} {part!r}")
        span, step_text = match.groups()
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, last = span.split("-", 1)
            start, end = (
                _value(first, name, low, high, names, expr),
                _value(last, name, low, high, names, expr),
            )
        else:
            start = _value(span, name, low, high, names, expr)
            end = high if step_text else start
        step = int(step_text) if step_text else 1
        if step < 1 or start > end:
            raise ConfigurationError(f"cron {expr!r}: empty {name} range {part!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, name: str, low: int, high: int, names: dict[str, int], expr: str) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise ConfigurationError(f"cron {expr!r}: {name} {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ConfigurationError(f"cron {expr!r}: {name} {value} is outside {low}-{high}")
    return value
