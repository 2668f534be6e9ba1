"""Filters of the operator console's templates."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template

register = template.Library()


@register.filter
def epoch(value: object) -> datetime | None:
    """A Unix time (a dead letter's ``dead_lettered_at``, an attempt's ``at``) as an aware
    UTC datetime for ``|date``; None for anything else (a record written by hand)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
