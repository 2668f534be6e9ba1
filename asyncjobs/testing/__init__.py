"""Tests that never touch a real broker: ``capture()`` records what a test sends and
runs it, when the test says so, in the test's own thread through the real worker path.

    from asyncjobs.testing import capture

    with capture() as jobs:
        client.post("/signup/", {...})
        jobs.assert_enqueued(send_welcome_email, args=[user.pk])
        jobs.run_pending()  # the task runs here, on the test's database connection

Django: ``asyncjobs.django.testing`` (a test runner that keeps a whole ``manage.py
test`` run off the broker, a ``TestCase`` mixin); pytest: ``asyncjobs.django.pytest``.
"""

from asyncjobs.testing.capture import TaskCapture, capture, memory_config
from asyncjobs.testing.local import DeadLetteredError, Ran
from asyncjobs.testing.sent import SentTask

__all__ = ["DeadLetteredError", "Ran", "SentTask", "TaskCapture", "capture", "memory_config"]
