"""Settings of the example project (``DJANGO_SETTINGS_MODULE=example.settings``).

Every ``ASYNCJOBS`` key below can be overridden by an environment variable
``ASYNCJOBS_<KEY>`` (e.g. ``ASYNCJOBS_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/``);
``make demo`` and the end-to-end tests rely on that.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

# The Django admin at /admin/ (the shop's models: example/shop/admin.py).
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "asyncjobs.django",
    "example.shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# The admin's CSS and JavaScript, served from the apps by example/asgi.py (the example
# has no web server in front of uvicorn; see there).
STATIC_URL = "static/"

_db_path = os.environ.get("EXAMPLE_DB_PATH") or str(REPO_ROOT / ".demo" / "example.sqlite3")
Path(_db_path).parent.mkdir(parents=True, exist_ok=True)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _db_path,
        "OPTIONS": {
            # The web server and the worker write to the same file: WAL lets readers and
            # one writer work at once, and a writer waits for the lock instead of failing.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}

if os.environ.get("EXAMPLE_DATABASE") == "postgres":  # the example's tests, on PostgreSQL
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("EXAMPLE_PG_NAME", "test"),
            "USER": os.environ.get("EXAMPLE_PG_USER", "postgres"),
            "HOST": os.environ.get("EXAMPLE_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("EXAMPLE_PG_PORT", "5432"),
            "TEST": {"NAME": os.environ.get("EXAMPLE_PG_TEST_NAME", "test_example")},
        }
    }

# `manage.py test` never reaches the broker: every send goes to an in-process memory://
# copy of ASYNCJOBS, and the tests run them (example/shop/tests.py).
TEST_RUNNER = "asyncjobs.django.testing.TestRunner"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

ASYNCJOBS = {
    "BROKER_URL": "redis://127.0.0.1:6379/0",
    "RESULT_BACKEND_URL": "redis://127.0.0.1:6379/0",
    "QUEUES": ["default", "emails"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "asyncjobs": {"level": os.environ.get("EXAMPLE_LOG_LEVEL", "INFO")},
        "example": {"level": "INFO"},
    },
}
