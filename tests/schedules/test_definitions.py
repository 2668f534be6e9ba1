"""Schedules: stable ids, ticks (intervals on the epoch, cron in a time zone across DST),
JSON storage and its validation."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.schedules.definitions import Schedule, cron, every

ROOT = Path(__file__).resolve().parents[2]
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def report() -> Schedule:
    return Schedule(
        "shop.tasks:send_report",
        cron="0 9 * * MON-FRI",
        tz="Europe/Berlin",
        args=(1, "a"),
        kwargs={"b": [1, 2], "a": None},
    )


# -- identity -----------------------------------------------------------------------
def test_same_definition_same_id_in_this_process() -> None:
    first, second = report(), report()
    assert first.id == second.id
    assert first.id.startswith("send_report-")  # readable: the function's name first
    # Keyword order and cron spacing are not part of the definition.
    reordered = Schedule(
        "shop.tasks:send_report",
        cron="0  9 * *  MON-FRI",
        tz="Europe/Berlin",
        args=(1, "a"),
        kwargs={"a": None, "b": [1, 2]},
    )
    assert reordered.id == first.id
    assert every(30).for_task("m:f").id == every(timedelta(seconds=30)).for_task("m:f").id


def test_same_definition_same_id_in_another_process() -> None:
    # A fresh interpreter with another hash seed: the id must not depend on hash() or
    # anything else of this process.
    code = (
        "from asyncjobs.schedules.definitions import Schedule\n"
        "print(Schedule('shop.tasks:send_report', cron='0 9 * * MON-FRI', tz='Europe/Berlin',"
        " args=(1, 'a'), kwargs={'b': [1, 2], 'a': None}).id)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == report().id


@pytest.mark.parametrize(
    "change",
    [
        {"task_name": "shop.tasks:send_other"},
        {"cron": "0 10 * * MON-FRI"},
        {"tz": "Europe/London"},
        {"args": (2, "a")},
        {"args": (1, "a", None)},
        {"kwargs": {"b": [1, 2], "a": 0}},
        {"kwargs": {"b": [1, 2]}},
        {"cron": None, "every_s": 60.0},
    ],
)
def test_any_change_of_the_definition_is_a_new_id(change: dict[str, Any]) -> None:
    original = report()
    fields: dict[str, Any] = {
        "task_name": original.task_name,
        "cron": original.cron,
        "tz": original.tz,
        "args": original.args,
        "kwargs": original.kwargs,
    }
    assert Schedule(**(fields | change)).id != original.id


def test_intervals_differ_by_interval() -> None:
    assert every(30).for_task("m:f").id != every(31).for_task("m:f").id


def test_a_given_id_is_kept_and_checked() -> None:
    given = cron("0 9 * * *", id="morning-report").for_task("shop.tasks:send_report")
    assert given.id == "morning-report"
    assert Schedule.from_dict(given.to_dict()).id == "morning-report"
    for bad in ("", "has space", "x" * 101, "naïve"):
        with pytest.raises(ConfigurationError, match="use letters, digits"):
            every(60, id=bad)


# -- validation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Schedule("m:f"), "give exactly one of cron or every"),
        (lambda: Schedule("m:f", cron="* * * * *", every_s=60), "give exactly one"),
        (lambda: Schedule("m:f", cron="61 * * * *"), "minute 61 is outside 0-59"),
        (lambda: Schedule("m:f", every_s=0.5), "every must be 1 s .. 366 days"),
        (lambda: Schedule("m:f", every_s=float("nan")), "every must be"),
        (lambda: Schedule("m:f", cron="* * * * *", tz="Mars/Olympus"), "unknown time zone"),
        (lambda: Schedule("m:f", every_s=60, catch_up=-1), "catch_up must be 0..1000"),
    ],
)
def test_invalid_definitions_fail_with_a_clear_message(make: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace(".", r"\.")):
        make()


class Color(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 1, tzinfo=UTC),  # orjson would encode these quietly...
        date(2026, 1, 1),
        uuid.UUID(int=1),
        Color.RED,
        float("nan"),  # ...this one as null
        float("inf"),
        {1: "int key"},
        b"bytes",
        {1, 2},
        object(),
        2**64,
        [[datetime(2026, 1, 1)]],  # nested too
    ],
)
def test_arguments_must_be_plain_json(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="arguments must be JSON"):
        every(60, args=[value])
    with pytest.raises(ConfigurationError, match="arguments must be JSON"):
        every(60, kwargs={"x": value})


def test_plain_json_arguments_are_accepted() -> None:
    value = [None, True, 1, -2.5, "s", [1, [2]], {"k": {"n": None}}, (1, 2)]
    assert every(60, args=value).args == tuple(value)


# -- ticks ------------------------------------------------------------------------------
def test_interval_ticks_are_multiples_of_the_interval_since_the_epoch() -> None:
    schedule = every(30).for_task("m:f")
    ticks = list(schedule.ticks(utc(2026, 6, 1, 12, 0, 0), utc(2026, 6, 1, 12, 2, 0)))
    # After is exclusive, until inclusive.
    assert ticks == [utc(2026, 6, 1, 12, 0, 30), utc(2026, 6, 1, 12, 1, 0),
                     utc(2026, 6, 1, 12, 1, 30), utc(2026, 6, 1, 12, 2, 0)]  # fmt: skip
    odd = every(7).for_task("m:f")
    found = list(odd.ticks(utc(2026, 6, 1, 12, 0, 0), utc(2026, 6, 1, 12, 1, 0)))
    assert [t.timestamp() % 7 for t in found] == [0.0] * len(found)
    assert len(found) in (8, 9)
    # The same ticks whatever the window, and whatever zone the bounds are given in.
    berlin_after = utc(2026, 6, 1, 12, 0, 0).astimezone(BERLIN)
    assert list(odd.ticks(berlin_after, utc(2026, 6, 1, 12, 1, 0))) == found
    assert list(odd.ticks(found[2], found[5])) == found[3:6]


def test_interval_ticks_ignore_dst() -> None:
    # Real seconds: 2026-10-25 in Berlin has 25 hours, and 25 hourly ticks.
    schedule = every(3600).for_task("m:f")
    start = datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN)
    end = datetime(2026, 10, 26, 0, 0, tzinfo=BERLIN)
    assert len(list(schedule.ticks(start, end))) == 25


def test_cron_ticks_in_utc() -> None:
    quarter = cron("*/15 * * * *").for_task("m:f")
    ticks = list(quarter.ticks(utc(2026, 6, 1, 12, 0), utc(2026, 6, 1, 13, 0)))
    assert ticks == [utc(2026, 6, 1, 12, m) for m in (15, 30, 45)] + [utc(2026, 6, 1, 13, 0)]
    # Seconds in the bounds: a tick is the start of its minute.
    assert list(quarter.ticks(utc(2026, 6, 1, 12, 14, 59), utc(2026, 6, 1, 12, 15, 0, 1))) == [
        utc(2026, 6, 1, 12, 15)
    ]
    assert all(t.tzinfo is UTC for t in ticks)


def test_cron_workdays_in_berlin_over_a_week() -> None:
    schedule = cron("0 9 * * MON-FRI", tz="Europe/Berlin").for_task("m:f")
    monday = datetime(2026, 6, 1, tzinfo=BERLIN)
    assert monday.strftime("%A") == "Monday"
    ticks = list(schedule.ticks(monday, monday + timedelta(days=7)))
    # 09:00 in Berlin is 07:00 UTC in summer (CEST), Monday to Friday, not the weekend.
    assert ticks == [utc(2026, 6, d, 7, 0) for d in range(1, 6)]
    winter = datetime(2026, 1, 5, tzinfo=BERLIN)  # a Monday, CET
    assert [t.hour for t in schedule.ticks(winter, winter + timedelta(days=7))] == [8] * 5


def test_cron_spring_forward_skips_a_wall_time_that_does_not_exist() -> None:
    # 2026-03-29, Berlin: 02:00 CET jumps to 03:00 CEST; there is no 02:30 that day.
    schedule = cron("30 2 * * *", tz="Europe/Berlin").for_task("m:f")
    ticks = list(schedule.ticks(utc(2026, 3, 28, 0, 0), utc(2026, 3, 31, 0, 0)))
    assert ticks == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 30, 0, 30)]
    # Its neighbours are untouched.
    ones = cron("30 1 * * *", tz="Europe/Berlin").for_task("m:f")
    threes = cron("30 3 * * *", tz="Europe/Berlin").for_task("m:f")
    assert list(ones.ticks(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 12, 0))) == [
        utc(2026, 3, 29, 0, 30)  # 01:30 CET
    ]
    assert list(threes.ticks(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 12, 0))) == [
        utc(2026, 3, 29, 1, 30)  # 03:30 CEST
    ]


def test_cron_fall_back_fires_a_repeated_wall_time_once_at_its_first_occurrence() -> None:
    # 2026-10-25, Berlin: 03:00 CEST goes back to 02:00 CET; 02:30 happens at 00:30 UTC
    # and again at 01:30 UTC. It fires once, at the first.
    schedule = cron("30 2 * * *", tz="Europe/Berlin").for_task("m:f")
    ticks = list(schedule.ticks(utc(2026, 10, 24, 0, 0), utc(2026, 10, 27, 0, 0)))
    assert ticks == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # However the window is cut: a window holding only the second 02:30 has no tick.
    assert list(schedule.ticks(utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 2, 0))) == []


# -- storage ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "schedule",
    [
        report(),
        every(45, args=[1], kwargs={"k": "v"}, catch_up=3).for_task("m:f"),
        cron("0 0 1 * *", id="monthly").for_task("m:f"),
    ],
)
def test_to_dict_from_dict_round_trip_through_json(schedule: Schedule) -> None:
    data = schedule.to_dict()
    assert orjson.loads(orjson.dumps(data)) == data  # plain JSON
    again = Schedule.from_dict(orjson.loads(orjson.dumps(data)))
    assert again.to_dict() == data
    assert again.id == schedule.id
    assert (again.task_name, again.cron, again.every_s, again.tz) == (
        schedule.task_name,
        schedule.cron,
        schedule.every_s,
        schedule.tz,
    )
    assert (again.args, dict(again.kwargs), again.catch_up) == (
        schedule.args,
        dict(schedule.kwargs),
        schedule.catch_up,
    )


def test_from_dict_takes_settings_keys_in_any_case() -> None:
    schedule = Schedule.from_dict(
        {"TASK": "m:f", "EVERY": timedelta(minutes=5), "ARGS": [1], "CATCH_UP": 2}
    )
    assert (schedule.every_s, schedule.args, schedule.catch_up) == (300.0, (1,), 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"every": 60}, "TASK (a task name) is required"),
        ({"task": "", "every": 60}, "TASK (a task name) is required"),
        ({"task": "m:f", "every": 60, "when": "now"}, "unknown keys ['when']"),
        ({"task": "m:f", "every": 60, "args": "abc"}, "ARGS must be a list"),
        ({"task": "m:f", "every": 60, "args": {"a": 1}}, "ARGS must be a list"),
        ({"task": "m:f", "every": 60, "kwargs": [["a", 1]]}, "KWARGS must be a dict"),
        ({"task": "m:f", "every": "soon"}, "EVERY must be seconds"),
        ({"task": "m:f", "every": True}, "EVERY must be seconds"),
        ({"task": "m:f", "cron": 5}, "CRON must be a string"),
        ({"task": "m:f", "every": 60, "tz": 1}, "TZ must be a string"),
        ({"task": "m:f", "every": 60, "id": 7}, "ID must be a string"),
        ({"task": "m:f", "every": 60, "catch_up": "2"}, "CATCH_UP must be a whole number"),
        ({"task": "m:f", "cron": "* * 0 * *"}, "day of month 0 is outside 1-31"),
    ],
)
def test_from_dict_rejects_wrong_values_and_types(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Schedule.from_dict(data)
    assert message in str(raised.value)


def test_a_job_with_wildcard_hours_keeps_running_through_the_repeated_hour() -> None:
    from datetime import UTC, datetime

    from asyncjobs.schedules.definitions import cron

    schedule = cron("*/30 * * * *", tz="Europe/Berlin").for_task("t:x")
    # 2026-10-25: 02:00-02:59 happens twice in Berlin (00:00-01:59 UTC).
    ticks = list(
        schedule.ticks(
            datetime(2026, 10, 24, 23, 59, tzinfo=UTC), datetime(2026, 10, 25, 2, 0, tzinfo=UTC)
        )
    )
    assert [t.strftime("%H:%M") for t in ticks] == ["00:00", "00:30", "01:00", "01:30", "02:00"]
