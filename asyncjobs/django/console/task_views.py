"""Task lookup by id (``asyncjobs task ID``): where a task stands, its attempts, its
result or error history, and its dead letters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from django.http import HttpRequest, HttpResponse

from asyncjobs.django.console import calls, requests
from asyncjobs.django.console.access import BODIES, can
from asyncjobs.django.console.pages import render
from asyncjobs.task_lookup import task_report

if TYPE_CHECKING:
    from asyncjobs.django.console.admin import ConsoleAdmin


def task_lookup(request: HttpRequest, admin: ConsoleAdmin) -> HttpResponse:
    task_id = requests.text(request, "id")
    report, banner = None, None
    if task_id is not None:
        try:
            report = calls.run(lambda: task_report(task_id))
        except calls.Unavailable as exc:
            banner = str(exc)
    result = None
    if report is not None and report.state == "succeeded" and can(request, BODIES):
        result = orjson.dumps(report.result, option=orjson.OPT_INDENT_2, default=repr).decode()
    return render(
        request,
        admin,
        "task.html",
        title="Task lookup",
        tab="task",
        banner=banner,
        task_id=task_id or "",
        report=report,
        result=result,
    )
