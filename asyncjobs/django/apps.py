from __future__ import annotations

from django.apps import AppConfig


class AsyncJobsConfig(AppConfig):
    name = "asyncjobs.django"
    label = "asyncjobs"
    verbose_name = "asyncjobs"

    def ready(self) -> None:
        from asyncjobs.django import checks, conf, settings_changes

        checks.register_checks()
        settings_changes.connect()
        conf.start()  # a bad setting is recorded, reported by `check`, raised at a send
