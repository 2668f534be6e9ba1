"""Settings -> config -> broker, once per process."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils.module_loading import autodiscover_modules

from asyncjobs.app import check_tasks, configure
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.django.db import DatabaseHygiene
from asyncjobs.django.errors import AsyncJobsImproperlyConfigured
from asyncjobs.django.tracing import setup_tracing
from asyncjobs.errors import ConfigurationError
from asyncjobs.worker import add_execution_hook

logger = logging.getLogger("asyncjobs.django")


def config_from_settings() -> AsyncJobsConfig:
    raw: Any = getattr(settings, "ASYNCJOBS", None)
    try:
        return load_config(raw)
    except ConfigurationError as exc:
        raise AsyncJobsImproperlyConfigured(str(exc)) from None


def setup() -> AsyncJobsConfig:
    """Validate settings, build the broker, discover every app's ``tasks.py``."""
    config = config_from_settings()
    try:
        setup_tracing(config)  # before configure(): its service name knows the project
    except ConfigurationError as exc:
        raise AsyncJobsImproperlyConfigured(str(exc)) from None
    configure(config)
    add_execution_hook(DatabaseHygiene())
    autodiscover_modules("tasks")
    try:
        check_tasks(config)
    except ConfigurationError as exc:
        raise AsyncJobsImproperlyConfigured(str(exc)) from None
    logger.debug("asyncjobs configured: %r", config)
    return config
