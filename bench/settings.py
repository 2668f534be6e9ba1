"""Django settings of the benchmark's asyncjobs workers (``DJANGO_SETTINGS_MODULE``).

The example app is installed so the worker's RSS is that of a project with models and
tasks loaded; the broker, key prefix and queues come from ``ASYNCJOBS_*`` variables set
by ``bench.workers``. Nothing touches the database, so it stays an in-memory SQLite.
"""

from __future__ import annotations

SECRET_KEY = "bench-only"  # noqa: S105 - not a secret
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = [
    "asyncjobs.django",
    "example.shop",
    "bench.tasksapp",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ASYNCJOBS = {
    "BROKER_URL": "redis://127.0.0.1:6379/0",
    "QUEUES": ["default", "emails"],  # example.shop sends to "emails"
}

# Django's Tasks API on asyncjobs (bench.task_backend); Django 5.2 has it from the
# django-tasks backport.
TASKS = {"default": {"BACKEND": "asyncjobs.django.task_backend.AsyncJobsBackend"}}
try:
    import django.tasks  # noqa: F401
except ImportError:
    import importlib.util

    if importlib.util.find_spec("django_tasks") is not None:
        INSTALLED_APPS.append("django_tasks")
