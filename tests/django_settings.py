"""Django settings for the test suite (and mypy's django plugin).

The broker and database come from the environment so subprocess workers share them:
ASYNCJOBS_* for asyncjobs, TEST_DATABASE=postgres for PostgreSQL.
"""

from __future__ import annotations

import os
from typing import Any

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "asyncjobs.django",
    "tests.testapp",
]
# The admin, for the operator console's pages (tests/django/test_console*.py).
ROOT_URLCONF = "tests.urls"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES: dict[str, dict[str, Any]]
if os.environ.get("TEST_DATABASE") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("TEST_PG_NAME", "test"),
            "USER": os.environ.get("TEST_PG_USER", "postgres"),
            "HOST": os.environ.get("TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("TEST_PG_PORT", "5432"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("TEST_SQLITE_PATH", ":memory:"),
        }
    }

# The DB-hygiene tests use PostgreSQL through this alias (connected only when used).
PG: dict[str, Any] = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": os.environ.get("TEST_PG_NAME", "test"),
    "USER": os.environ.get("TEST_PG_USER", "postgres"),
    "HOST": os.environ.get("TEST_PG_HOST", "127.0.0.1"),
    "PORT": os.environ.get("TEST_PG_PORT", "5432"),
}
DATABASES["pg"] = PG
DATABASES["pg_persistent"] = {**PG, "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}

ASYNCJOBS = {
    "BROKER_URL": "redis://127.0.0.1:6379/0",
    "QUEUES": ["default", "other"],
}
LOGGING_CONFIG = None

# Django's Tasks API (tests/django/test_task_backend*.py): ours, and Django's own
# ImmediateBackend to compare with; Django 5.2 has it from the django-tasks backport.
try:
    import django.tasks  # noqa: F401

    IMMEDIATE = "django.tasks.backends.immediate.ImmediateBackend"
except ImportError:
    import importlib.util

    if importlib.util.find_spec("django_tasks") is not None:
        INSTALLED_APPS.append("django_tasks")
    IMMEDIATE = "django_tasks.backends.immediate.ImmediateBackend"
TASKS = {
    "default": {
        "BACKEND": "asyncjobs.django.task_backend.AsyncJobsBackend",
        "QUEUES": ["default", "other"],
    },
    "immediate": {"BACKEND": IMMEDIATE, "QUEUES": ["default", "other"]},
}
