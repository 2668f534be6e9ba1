"""Schedules (``asyncjobs schedules``): static and dynamic, their next tick in their
own time zone, the last tick sent; pause / resume (schedulers honour it within their
refresh interval), run now (one message with a fresh id), add and remove dynamic ones
with the CLI's validation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from asyncjobs import schedule_control
from asyncjobs.django.console import calls, requests
from asyncjobs.django.console.access import audit
from asyncjobs.django.console.pages import render, url_name
from asyncjobs.errors import ConfigurationError, ScheduleNotFoundError

if TYPE_CHECKING:
    from asyncjobs.django.console.admin import ConsoleAdmin

ADD_FIELDS = ("task", "cron", "every", "timezone", "args", "kwargs", "schedule_id")


def schedule_list(
    request: HttpRequest, admin: ConsoleAdmin, *, error: str | None = None, status: int = 200
) -> HttpResponse:
    states: list[schedule_control.ScheduleState] = []
    banner = None
    try:
        states = calls.run(schedule_control.schedule_states)
    except calls.Unavailable as exc:
        banner = str(exc)
    except ConfigurationError as exc:  # no schedule store: static ones cannot be read
        banner = str(exc)
    form = {name: requests.params(request).get(name, "") for name in ADD_FIELDS}
    return render(
        request,
        admin,
        "schedules.html",
        title="Schedules",
        tab="schedules",
        banner=banner,
        rows=[{"state": state, "actions": _actions(state)} for state in states],
        error=error,
        form=form,
        tasks=sorted(calls.app().tasks),
        status=status,
    )


def schedule_action(request: HttpRequest, admin: ConsoleAdmin, action: str) -> HttpResponse:
    """POST pause / resume / run / remove of the schedule ``schedule_id``."""
    schedule_id = requests.required_text(request, "schedule_id")
    operations = {
        "pause": schedule_control.pause,
        "resume": schedule_control.resume,
        "run": schedule_control.run_now,
        "remove": schedule_control.remove_schedule,
    }
    try:
        outcome = calls.run(lambda: operations[action](schedule_id))
    except ScheduleNotFoundError as exc:
        return schedule_list(request, admin, error=str(exc), status=404)
    except ConfigurationError as exc:
        return schedule_list(request, admin, error=str(exc), status=400)
    detail = f" (task id {outcome})" if action == "run" else ""
    audit(request, f"schedule {schedule_id}", f"{action} schedule {schedule_id}{detail}",
          deletion=action == "remove")  # fmt: skip
    return HttpResponseRedirect(reverse(f"admin:{url_name('schedules')}"))


def schedule_add(request: HttpRequest, admin: ConsoleAdmin) -> HttpResponse:
    values = {name: requests.text(request, name) for name in ADD_FIELDS}
    try:
        schedule = schedule_control.schedule_from_fields(
            task=values["task"] or "",
            cron=values["cron"],
            every=values["every"],
            timezone=values["timezone"],
            args_json=values["args"],
            kwargs_json=values["kwargs"],
            schedule_id=values["schedule_id"],
        )
        stored = calls.run(lambda: schedule_control.add_schedule(schedule))
    except ConfigurationError as exc:
        return schedule_list(request, admin, error=str(exc), status=400)
    audit(request, f"schedule {stored.id}", f"added schedule {stored.id}: {stored.describe()}")
    return HttpResponseRedirect(reverse(f"admin:{url_name('schedules')}"))


def _actions(state: schedule_control.ScheduleState) -> list[tuple[str, str]]:
    toggle = ("resume", "Resume") if state.paused else ("pause", "Pause")
    actions = [toggle, ("run", "Run now")]
    if state.source == "dynamic":
        actions.append(("remove", "Remove"))
    return actions
