"""The operator console: admin-styled pages over the broker (queues, workers, dead
letters, task lookup, schedules), on the project's own admin site.

Nothing here reads a model: every figure comes from the same kernel code as the CLI
(``asyncjobs inspect``, ``dlq``, ``schedules``, ``workers``, ``task``), so the page, the
CLI and the KEDA metric show the same numbers. Pages: ``overview`` (queues, workers,
charts), ``dead_letter_views``, ``task_views``, ``schedule_views``; ``access`` holds the
permissions, ``calls`` runs the kernel's coroutines from the admin's sync views.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite


def register(site: AdminSite) -> None:
    """Add the console to ``site`` (``admin.site`` is done by ``asyncjobs.django.admin``)."""
    from asyncjobs.django.console.admin import ConsoleAdmin
    from asyncjobs.django.models import Console

    site.register(Console, ConsoleAdmin)
