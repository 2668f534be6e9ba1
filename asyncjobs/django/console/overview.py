"""The overview: each queue's figures (``asyncjobs inspect``), the live workers
(``asyncjobs workers``) and a chart per queue of the last hour. It refreshes itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse

from asyncjobs.app import current_app
from asyncjobs.django.console import calls, charts
from asyncjobs.django.console.pages import render
from asyncjobs.errors import AsyncJobsError
from asyncjobs.inspection import QueueStats, health_problems, inspect
from asyncjobs.monitor import MinuteCounts, WorkerInfo, live_workers, queue_history

if TYPE_CHECKING:
    from asyncjobs.django.console.admin import ConsoleAdmin

REFRESH_S = 10
HISTORY_MINUTES = 60


@dataclass
class Overview:
    stats: list[QueueStats] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    history: dict[str, list[MinuteCounts]] = field(default_factory=dict)
    monitor_note: str | None = None  # why there are no workers and charts


async def gather() -> Overview:
    """The queue figures first: without them the page is a banner. The registry and the
    counters live in Redis: without one (RabbitMQ alone), the page says so."""
    app = current_app()
    stats = await inspect()
    overview = Overview(stats, health_problems(stats, app.config))
    try:
        overview.workers = await live_workers()
        overview.history = await queue_history(app.config.queues, HISTORY_MINUTES)
    except AsyncJobsError as exc:  # MonitorUnavailableError, or its Redis is down
        overview.monitor_note = str(exc)
    return overview


def overview(request: HttpRequest, admin: ConsoleAdmin) -> HttpResponse:
    try:
        data, banner = calls.run(gather), None
    except calls.Unavailable as exc:
        data, banner = Overview(), str(exc)
    queues = [
        {
            "stats": item,
            "chart": charts.queue_chart(item.queue, data.history[item.queue])
            if item.queue in data.history
            else None,
            "totals": charts.totals(data.history.get(item.queue, [])),
        }
        for item in data.stats
    ]
    return render(
        request,
        admin,
        "overview.html",
        title="asyncjobs",
        tab="overview",
        banner=banner,
        queues=queues,
        problems=data.problems,
        workers=data.workers,
        monitor_note=data.monitor_note,
        legend=charts.legend(),
        refresh_s=REFRESH_S,
        minutes=HISTORY_MINUTES,
    )
