"""System checks (``manage.py check``): the settings' validation, reported Django's way.

A bad setting is the one start-up recorded when there is one (it may come from building
the app: ``HOOKS``, tracing, a task module), else what validating the current settings
finds (tests change them with ``override_settings``). It is reported twice over:

- asyncjobs.W002 (warning), in every check run. Django runs the same checks before
  ``migrate``, ``runserver``, ``createsuperuser``, the test runner and most commands
  (a project's own included), and stops them all at an error: an error here would stop
  work that needs no broker, in places that often lack its secrets (a release step, a
  CI job) — the very thing a bad setting must not do.
- asyncjobs.E001 (error), in ``manage.py check --deploy``: a deployment without a
  working broker is broken, and that is the run meant to say so.

- asyncjobs.W001 (warning): no result store, so results are off.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from asyncjobs.app import check_tasks, configuration_error
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import ConfigurationError

SETTINGS_HINT = "See the README's settings table."


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """asyncjobs.E001, for ``check --deploy``."""
    found = _validated()
    if not isinstance(found, ConfigurationError):
        return []
    return [checks.Error(str(found), hint=SETTINGS_HINT, id="asyncjobs.E001")]


def check_configured(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """asyncjobs.W002, for every check run."""
    found = _validated()
    if not isinstance(found, ConfigurationError):
        return []
    return [
        checks.Warning(
            str(found),
            hint=f"{SETTINGS_HINT} Sends raise this error, and the worker and the scheduler "
            "refuse to start; `manage.py check --deploy` reports it as error asyncjobs.E001.",
            id="asyncjobs.W002",
        )
    ]


def check_results(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """asyncjobs.W001: results are off."""
    found = _validated()
    if isinstance(found, ConfigurationError) or found.effective_result_backend_url:
        return []  # a bad setting is reported above
    return [
        checks.Warning(
            f"results are off: {found.transport.name}:// keeps no results and "
            "RESULT_BACKEND_URL is not set, so wait_result(), get_result(), is_ready() and "
            "failed_attempts() raise ResultsDisabledError (tasks run the same)",
            hint="Set RESULT_BACKEND_URL to a redis:// URL to keep results; if nothing reads "
            "them, add 'asyncjobs.W001' to SILENCED_SYSTEM_CHECKS.",
            id="asyncjobs.W001",
        )
    ]


def _validated() -> AsyncJobsConfig | ConfigurationError:
    """The config of the current settings, or the reason there is none."""
    recorded = configuration_error()
    if recorded is not None:
        return recorded
    from django.conf import settings

    try:
        config = load_config(getattr(settings, "ASYNCJOBS", None))
        check_tasks(config)
    except ConfigurationError as exc:
        return exc
    return config


def register_checks() -> None:
    checks.register(check_settings, "asyncjobs", deploy=True)
    checks.register(check_configured, "asyncjobs")
    checks.register(check_results, "asyncjobs")
