from __future__ import annotations

from django.apps import AppConfig


class AsyncJobsConfig(AppConfig):
    name = "django_integration"
    label = "asyncjobs"
    verbose_name = "asyncjobs"

    def ready(self) -> None:
        from django_integration import checks, conf

        checks.register_checks()
        conf.setup()
