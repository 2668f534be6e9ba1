"""Cron expressions: a typo fails at parse time with a message naming the field; names,
ranges, steps and lists expand to the right sets; the day fields follow Vixie cron."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.schedules.cron import CronExpression


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("61 * * * *", "minute 61 is outside 0-59"),
        ("* 24 * * *", "hour 24 is outside 0-23"),
        ("* * 0 * *", "day of month 0 is outside 1-31"),
        ("* * 32 * *", "day of month 32 is outside 1-31"),
        ("* * * 13 *", "month 13 is outside 1-12"),
        ("* * * 0 *", "month 0 is outside 1-12"),
        ("* * * * 8", "day of week 8 is outside 0-7"),
        ("* * * *", "expected 5 fields (minute hour day month weekday), got 4"),
        ("* * * * * *", "expected 5 fields (minute hour day month weekday), got 6"),
        ("", "expected 5 fields"),
        ("*/0 * * * *", "empty minute range '*/0'"),
        ("30-10 * * * *", "empty minute range '30-10'"),
        ("* * * * FRI-MON", "empty day of week range 'FRI-MON'"),
        ("MON * * * *", "minute 'MON' is not a number"),
        ("* * * FOO *", "month 'FOO' is not a number"),
        ("* * * * JAN", "day of week 'JAN' is not a number"),
        ("1,,2 * * * *", "cannot read minute ''"),
        ("5-10-15 * * * *", "cannot read minute '5-10-15'"),
        ("*/x * * * *", "cannot read minute '*/x'"),
        ("-1 * * * *", "cannot read minute '-1'"),
    ],
)
def test_parse_errors_name_the_field_and_the_expression(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        CronExpression.parse(text)
    assert message in str(raised.value)
    assert f"cron {text!r}" in str(raised.value)  # which expression, for SCHEDULES lists


def test_names_are_case_insensitive_and_expand_like_numbers() -> None:
    workdays = CronExpression.parse("0 9 * * MON-FRI")
    assert workdays.weekdays == {1, 2, 3, 4, 5}
    assert CronExpression.parse("0 9 * * mon-fri").weekdays == workdays.weekdays
    assert CronExpression.parse("0 0 1 JAN *").months == {1}
    assert CronExpression.parse("0 0 1 jan-mar,DEC *").months == {1, 2, 3, 12}
    assert CronExpression.parse("0 0 * * SUN,sat").weekdays == {0, 6}


def test_seven_is_sunday_like_zero() -> None:
    assert CronExpression.parse("0 0 * * 7").weekdays == {0}
    assert CronExpression.parse("0 0 * * 5-7").weekdays == {5, 6, 0}
    sunday = datetime(2026, 3, 29, 0, 0)
    assert sunday.strftime("%A") == "Sunday"
    assert CronExpression.parse("0 0 * * 7").matches(sunday)
    assert CronExpression.parse("0 0 * * 0").matches(sunday)
    assert not CronExpression.parse("0 0 * * 7").matches(sunday + timedelta(days=1))


def test_steps_ranges_and_lists() -> None:
    assert CronExpression.parse("*/15 * * * *").minutes == {0, 15, 30, 45}
    assert CronExpression.parse("10-30/10 * * * *").minutes == {10, 20, 30}
    assert CronExpression.parse("5/20 * * * *").minutes == {5, 25, 45}  # from 5 to the end
    assert CronExpression.parse("0 */6 * * *").hours == {0, 6, 12, 18}
    assert CronExpression.parse("1,5,10-12 * * * *").minutes == {1, 5, 10, 11, 12}
    assert CronExpression.parse("0 0 1-31/10 * *").days == {1, 11, 21, 31}
    assert CronExpression.parse("* * * * *").minutes == frozenset(range(60))


def test_text_is_normalised_for_stable_ids() -> None:
    assert CronExpression.parse("  0   9 * *\tMON-FRI ").text == "0 9 * * MON-FRI"


def test_matches_every_field() -> None:
    expression = CronExpression.parse("30 9 * 6 *")
    assert expression.matches(datetime(2026, 6, 3, 9, 30))
    assert not expression.matches(datetime(2026, 6, 3, 9, 31))  # minute
    assert not expression.matches(datetime(2026, 6, 3, 10, 30))  # hour
    assert not expression.matches(datetime(2026, 7, 3, 9, 30))  # month


def test_both_day_fields_restricted_means_either_vixie_rule() -> None:
    # Vixie cron: with both day-of-month and day-of-week restricted, a day matching
    # EITHER runs ("the 13th, and every Friday"), not only Friday the 13th.
    expression = CronExpression.parse("0 0 13 * FRI")
    friday_13th = datetime(2026, 2, 13)
    assert friday_13th.strftime("%A") == "Friday"
    assert expression.matches(friday_13th)
    assert expression.matches(datetime(2026, 1, 13))  # a Tuesday: the 13th
    assert expression.matches(datetime(2026, 1, 16))  # a Friday, the 16th
    assert not expression.matches(datetime(2026, 1, 14))  # neither
    days = [d for d in range(1, 32) if expression.matches(datetime(2026, 1, d))]
    assert days == [2, 9, 13, 16, 23, 30]


def test_one_day_field_unrestricted_means_the_other_alone() -> None:
    fridays = CronExpression.parse("0 0 * * FRI")
    thirteenth = CronExpression.parse("0 0 13 * *")
    days_f = [d for d in range(1, 32) if fridays.matches(datetime(2026, 1, d))]
    days_13 = [d for d in range(1, 32) if thirteenth.matches(datetime(2026, 1, d))]
    assert days_f == [2, 9, 16, 23, 30]
    assert days_13 == [13]
