"""Who may see and do what in the console, and the audit trail of what they did.

Viewing needs ``asyncjobs.view_console``; each action its own permission; message bodies
and task results (which may hold personal data) ``asyncjobs.view_message_bodies``. A
signed-in user who is not staff gets 403 (not the login page again); so does a staff
user without the permission, on GET and POST alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

VIEW = "asyncjobs.view_console"
REPLAY = "asyncjobs.replay_dead_letters"
PURGE = "asyncjobs.purge_dead_letters"
SCHEDULES = "asyncjobs.change_schedules"
BODIES = "asyncjobs.view_message_bodies"

View = Callable[..., HttpResponse]


def require(permission: str) -> Callable[[View], View]:
    """Refuse (403) a user without ``permission``; the admin's own wrapper has already
    sent anonymous users to the login page."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not can(request, permission):
                raise PermissionDenied(f"the console needs the permission {permission}")
            return view(request, *args, **kwargs)

        return guarded

    return decorate


def can(request: HttpRequest, permission: str) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(permission))


def permissions_of(request: HttpRequest) -> dict[str, bool]:
    """What the templates show: a button only where its action would be allowed."""
    return {
        "replay": can(request, REPLAY),
        "purge": can(request, PURGE),
        "schedules": can(request, SCHEDULES),
        "bodies": can(request, BODIES),
    }


def audit(request: HttpRequest, what: str, message: str, *, deletion: bool = False) -> None:
    """One entry in the admin log ("Recent actions", the history), with the user."""
    from asyncjobs.django.models import Console

    LogEntry.objects.create(
        user_id=cast(int, request.user.pk),  # the views run for signed-in staff only
        content_type=ContentType.objects.get_for_model(Console, for_concrete_model=False),
        object_id=None,
        object_repr=what[:200],
        action_flag=DELETION if deletion else CHANGE,
        change_message=message,
    )
