"""What every console page shares: the admin's context, the tabs, the banner."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from asyncjobs.django.console.access import permissions_of

if TYPE_CHECKING:
    from asyncjobs.django.console.admin import ConsoleAdmin

TABS = (  # url name suffix, label
    ("overview", "Overview"),
    ("dead_letters", "Dead letters"),
    ("task", "Task lookup"),
    ("schedules", "Schedules"),
)


def url_name(view: str) -> str:
    return f"asyncjobs_console_{view}"


def render(
    request: HttpRequest,
    admin: ConsoleAdmin,
    template: str,
    *,
    title: str,
    tab: str,
    status: int = 200,
    **context: Any,
) -> HttpResponse:
    """``template`` (under asyncjobs/console/) in the admin's frame; ``banner`` in the
    context is a broker outage (or a missing store) shown above the page."""
    page = {
        **admin.admin_site.each_context(request),
        "opts": admin.model._meta,
        "title": title,
        "tab": tab,
        "tabs": [(url_name(name), name, label) for name, label in TABS],
        "can": permissions_of(request),
        **context,
    }
    return TemplateResponse(request, f"asyncjobs/console/{template}", page, status=status)
