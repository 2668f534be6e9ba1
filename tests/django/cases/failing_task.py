"""Run by tests/django/test_test_mode.py with Django's runner (not by pytest): a task
exception left unhandled in run_pending() fails the test."""

from __future__ import annotations

from django.test import TestCase

from asyncjobs.django.testing import CaptureTasks
from example.shop.tasks import compute_score


class FailingTask(CaptureTasks, TestCase):
    def test_the_task_fails(self) -> None:
        compute_score.kiq_sync(424242)
        self.jobs.run_pending()
