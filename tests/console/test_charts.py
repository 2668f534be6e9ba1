"""The overview's SVG charts: drawn from the counts, escaped, gaps where unsampled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asyncjobs.django.console.charts import queue_chart, totals
from asyncjobs.monitor import MinuteCounts

START = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def minutes(*backlogs: int | None) -> list[MinuteCounts]:
    return [
        MinuteCounts(
            START + timedelta(minutes=i), succeeded=i, failed=1, dead_lettered=0, backlog=b
        )
        for i, b in enumerate(backlogs)
    ]


def test_each_series_is_drawn_and_unsampled_minutes_are_gaps() -> None:
    svg = str(queue_chart("default", minutes(3, None, 5, 6)))
    assert svg.count("<polyline") == 3  # succeeded, failed, dead-lettered
    assert svg.count('data-series="backlog"') == 2  # [3] and [5, 6]: a gap, not a zero
    assert "-3 min" in svg and "backlog 6" in svg and "3/min" in svg


def test_a_queue_name_cannot_inject_markup() -> None:
    svg = str(queue_chart('<script>alert("x")</script>', minutes(1)))
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_totals_sum_the_hour_and_keep_the_newest_backlog() -> None:
    found = totals(minutes(4, 7, None))
    assert (found.succeeded, found.failed, found.dead_lettered, found.backlog_now) == (3, 3, 0, 7)
    assert totals([]).backlog_now is None
