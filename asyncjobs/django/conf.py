"""Settings -> config -> broker, once per process."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils.module_loading import autodiscover_modules

from asyncjobs.app import App, configure
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.django.db import DatabaseHygiene
from asyncjobs.django.errors import AsyncJobsImproperlyConfigured
from asyncjobs.django.task_backend.hooks import TaskStatusHooks
from asyncjobs.django.tracing import setup_tracing
from asyncjobs.django.transactions import DjangoTransactions
from asyncjobs.errors import ConfigurationError

logger = logging.getLogger("asyncjobs.django")


def config_from_settings() -> AsyncJobsConfig:
    raw: Any = getattr(settings, "ASYNCJOBS", None)
    try:
        return load_config(raw)
    except ConfigurationError as exc:
        raise AsyncJobsImproperlyConfigured(str(exc)) from None


def setup() -> App:
    """Validate settings, build the app (broker, hooks: the database hygiene around every
    task first), discover every installed app's ``tasks.py``."""
    config = config_from_settings()
    try:
        setup_tracing(config)  # before configure(): its service name knows the project
        app = configure(config, hooks=[DatabaseHygiene(), TaskStatusHooks()])
        app.transactions = DjangoTransactions()  # kiq_on_commit waits for the commit
        autodiscover_modules("tasks")
        app.check()
    except ConfigurationError as exc:
        raise AsyncJobsImproperlyConfigured(str(exc)) from None
    logger.debug("asyncjobs configured: %r", config)
    return app
