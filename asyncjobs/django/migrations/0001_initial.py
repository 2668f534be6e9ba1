"""The console's model: no table (``managed = False``), only its permissions."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    operations = [
        migrations.CreateModel(
            name="Console",
            fields=[("id", models.AutoField(primary_key=True, serialize=False))],
            options={
                "verbose_name": "console",
                "verbose_name_plural": "console",
                "managed": False,
                "default_permissions": ("view",),
                "permissions": [
                    ("replay_dead_letters", "Can replay dead letters"),
                    ("purge_dead_letters", "Can purge dead letters"),
                    ("change_schedules", "Can pause, resume, run, add and remove schedules"),
                    ("view_message_bodies", "Can see message bodies and task results"),
                ],
            },
        ),
    ]
