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

INSTALLED_APPS = [
    "asyncjobs.django",
    "example.shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]

ROOT_URLCONF = "example.urls"

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
