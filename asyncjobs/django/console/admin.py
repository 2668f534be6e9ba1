"""``ConsoleAdmin``: the console's pages as the admin views of the ``Console`` model.

Its changelist is the overview; the other pages are its extra URLs. Each view goes
through the admin's own wrapper (login, CSRF, never cached), then the console's checks:
a signed-in user who is not staff gets 403, a staff user without the page's permission
too, and a request with a bad field 400 with the reason. Nothing here talks to the
broker: the admin's index and every page that is not the console make no broker call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.http import require_POST, require_safe

from asyncjobs.django.console import (
    calls,
    dead_letter_views,
    overview,
    requests,
    schedule_views,
    task_views,
)
from asyncjobs.django.console.access import PURGE, REPLAY, SCHEDULES, VIEW, can, require
from asyncjobs.django.console.pages import render, url_name

Page = Callable[..., HttpResponse]


class ConsoleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """No add, change or delete: the console has no rows, only pages."""

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return can(request, VIEW)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return self._page(require_safe(overview.overview), VIEW)(request)

    def get_urls(self) -> list[URLPattern]:
        dlq, tasks, schedules = dead_letter_views, task_views, schedule_views
        pages: list[tuple[str, str, Page, str]] = [
            ("dead-letters/", "dead_letters", require_safe(dlq.dead_letter_list), VIEW),
            ("dead-letters/letter/", "dead_letter", require_safe(dlq.dead_letter_detail), VIEW),
            ("dead-letters/replay/", "replay", require_POST(dlq.replay), REPLAY),
            ("dead-letters/purge/", "purge", require_POST(dlq.purge), PURGE),
            ("tasks/", "task", require_safe(tasks.task_lookup), VIEW),
            ("schedules/", "schedules", require_safe(schedules.schedule_list), VIEW),
            ("schedules/add/", "schedule_add", require_POST(schedules.schedule_add), SCHEDULES),
        ]
        for action in ("pause", "resume", "run", "remove"):
            view = require_POST(functools.partial(schedule_views.schedule_action, action=action))
            pages.append((f"schedules/{action}/", f"schedule_{action}", view, SCHEDULES))
        own = [path(route, self._page(view, needed), name=url_name(name))
               for route, name, view, needed in pages]  # fmt: skip
        own.append(path("", self._page(require_safe(overview.overview), VIEW),
                        name=url_name("overview")))  # fmt: skip
        return own + super().get_urls()

    def _page(self, view: Page, permission: str) -> Callable[[HttpRequest], HttpResponse]:
        """``view(request, admin)`` behind the admin's wrapper and the console's checks."""

        @require(permission)
        def checked(request: HttpRequest) -> HttpResponse:
            try:
                return view(request, self)
            except requests.BadRequest as exc:
                return self._refused(request, str(exc), 400)
            except calls.Unavailable as exc:  # an action while the broker is down
                return self._refused(request, str(exc), 503)

        wrapped = self.admin_site.admin_view(checked)

        @functools.wraps(checked)
        def outer(request: HttpRequest) -> HttpResponse:
            if request.user.is_authenticated and not request.user.is_staff:
                raise PermissionDenied("the console is for staff")
            return wrapped(request)

        return outer

    def _refused(self, request: HttpRequest, reason: str, status: int) -> HttpResponse:
        return render(
            request, self, "refused.html", title="Refused", tab="", reason=reason, status=status,
            banner=reason if status == 503 else None,
        )  # fmt: skip
