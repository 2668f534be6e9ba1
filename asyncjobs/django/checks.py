"""System checks (``manage.py check``): the same validation, reported Django's way."""

from __future__ import annotations

from typing import Any

from django.core import checks

from asyncjobs.app import check_tasks
from asyncjobs.config import load_config
from asyncjobs.errors import ConfigurationError


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.conf import settings

    try:
        config = load_config(getattr(settings, "ASYNCJOBS", None))
        check_tasks(config)
    except ConfigurationError as exc:
        return [
            checks.Error(str(exc), hint="See the README's settings table.", id="asyncjobs.E001")
        ]
    return []


def register_checks() -> None:
    checks.register(check_settings, "asyncjobs")
