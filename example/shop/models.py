from __future__ import annotations

from django.db import models


class Signup(models.Model):
    """Someone who signed up; the welcome email and the score are filled in by tasks."""

    email = models.EmailField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    welcome_sent_at = models.DateTimeField(null=True, blank=True)
    score = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.email

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.pk,
            "email": self.email,
            "created_at": self.created_at.isoformat(),
            "welcome_sent_at": self.welcome_sent_at.isoformat() if self.welcome_sent_at else None,
            "score": self.score,
        }


class Visit(models.Model):
    """One page visit, recorded by a task a view sent (the counter the load tests read:
    every send delivered once is one row)."""

    page = models.CharField(max_length=100, db_index=True)
    at = models.DateTimeField(auto_now_add=True)
