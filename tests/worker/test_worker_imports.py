"""A worker process imports what it runs, not what is off (issue 22: a worker's RSS).

``taskiq worker asyncjobs.django.worker:broker`` with default settings (``TRACING`` and
``PROMETHEUS`` off, no ``HEALTH_PORT``): the module, then the hooks the receiver adds at
start (``WorkerSettings.for_app``), in a fresh interpreter each time, on a settings
module with only asyncjobs installed (nothing else to bring redis-py, which imports the
OpenTelemetry SDK's metrics by itself). Nothing connects: no server is needed. Each
module named here was imported by every worker before: the SDK's tracer provider,
resources and psutil, the test kit, the scheduler, the probes' HTTP server, the
Prometheus reader. A feature that is on still gets its module (the last tests).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379/15"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
SETTINGS = """\
SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = ["asyncjobs.django"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
ASYNCJOBS = {asyncjobs!r}
"""
# Imports asyncjobs.django.worker as `taskiq worker` does, then builds the worker's own
# hooks as its receiver does; prints the watched modules that got imported.
PROBE = """\
import json, sys
import asyncjobs.django.worker
from asyncjobs import current_app
from asyncjobs.worker.settings import WorkerSettings
WorkerSettings.for_app(current_app())
print(json.dumps(sorted(m for m in json.loads(sys.argv[1]) if m in sys.modules)))
"""
# Off by default, so never needed by a default worker (either transport).
NOT_IMPORTED = [
    "asyncjobs.tracing.setup",  # the SDK's tracer provider, resources, exporters
    "asyncjobs.tracing.producer",
    "asyncjobs.worker.tracing",
    "opentelemetry.sdk.trace",
    "asyncjobs.testing",  # the test kit
    "asyncjobs.scheduling",  # the scheduler process's
    "asyncjobs.schedules.engine",
    "asyncjobs.worker.probe_server",  # HEALTH_PORT
    "http.server",
    "asyncjobs.worker.prometheus",  # PROMETHEUS
    "asyncjobs.cli",  # the `asyncjobs` command's
    "asyncjobs.django.cli",
    "asyncjobs.django.console",  # the admin's console (no admin installed)
    "asyncjobs.django.admin",
]
# Each transport's client library: never the other's.
OTHER_TRANSPORT = {REDIS: ["aio_pika", "aiormq"], AMQP: ["redis", "taskiq_redis"]}


def imported(tmp_path: Path, broker_url: str, watched: list[str], **settings: object) -> list[str]:
    """Which of ``watched`` a worker on ``broker_url`` (and ``settings``) imported."""
    asyncjobs = {"BROKER_URL": broker_url, "QUEUES": ["default"], **settings}
    (tmp_path / "imports_settings.py").write_text(SETTINGS.format(asyncjobs=asyncjobs))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCJOBS_", "OTEL_"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "imports_settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
        "OTEL_TRACES_EXPORTER": "none",  # with TRACING on: no exporter to import or reach
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(watched)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("broker_url", [REDIS, AMQP], ids=["redis", "amqp"])
def test_a_default_worker_imports_nothing_that_is_off(tmp_path: Path, broker_url: str) -> None:
    watched = NOT_IMPORTED + OTHER_TRANSPORT[broker_url]
    assert imported(tmp_path, broker_url, watched) == []


def test_without_redis_py_no_part_of_the_opentelemetry_sdk_is_imported(tmp_path: Path) -> None:
    """On RabbitMQ nothing brings redis-py (whose import loads the SDK's metrics)."""
    sdk = ["opentelemetry.sdk", "opentelemetry.sdk.metrics", "opentelemetry.sdk.resources"]
    assert imported(tmp_path, AMQP, [*sdk, "psutil"]) == []


def test_what_is_on_is_imported(tmp_path: Path) -> None:
    watched = ["asyncjobs.tracing.setup", "opentelemetry.sdk.trace", "asyncjobs.worker.tracing"]
    watched += ["asyncjobs.worker.prometheus", "asyncjobs.worker.probe_server"]
    with socket.socket() as sock:  # a free port for the probes (served until the exit)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    on = {"TRACING": True, "PROMETHEUS": True, "HEALTH_PORT": port}
    assert imported(tmp_path, REDIS, watched, **on) == sorted(watched)
