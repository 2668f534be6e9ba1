from __future__ import annotations

from django.db import models


class Note(models.Model):
    """Written by the DB-hygiene tests (its table is created by the test itself)."""

    text = models.CharField(max_length=100)

    class Meta:
        managed = False
        db_table = "asyncjobs_test_note"
