"""The console's one model: no table (the state lives in the broker), it gives the
operator console its place in the admin and its permissions (README "Operator console").
"""

from __future__ import annotations

from django.db import models


class Console(models.Model):
    """The asyncjobs section of the admin. Nothing is stored: ``managed = False``."""

    id = models.AutoField(primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [
            ("replay_dead_letters", "Can replay dead letters"),
            ("purge_dead_letters", "Can purge dead letters"),
            ("change_schedules", "Can pause, resume, run, add and remove schedules"),
            ("view_message_bodies", "Can see message bodies and task results"),
        ]
        verbose_name = "console"
        verbose_name_plural = "console"

    def __str__(self) -> str:
        return "asyncjobs console"
