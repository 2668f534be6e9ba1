"""Bad settings are reported naming the key (by `manage.py check`, the first send, the
worker), never stop Django itself; passwords never reach a log line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from asyncjobs import app, current_app
from asyncjobs.django import conf
from asyncjobs.django.checks import check_configured, check_results, check_settings
from asyncjobs.django.errors import AsyncJobsImproperlyConfigured
from tests.testapp import tasks

ROOT = Path(__file__).resolve().parents[2]
TASKIQ = str(Path(sys.executable).with_name("taskiq"))
PASSWORD = "s3cretpw"


def env(**overrides: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCJOBS_")}
    return {
        **base,
        "DJANGO_SETTINGS_MODULE": "tests.django_settings",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


def test_system_check_reports_bad_settings() -> None:
    with override_settings(ASYNCJOBS={"BROKER_URL": "redis://h/0", "MAX_DELIVERIES": 0}):
        [error] = check_settings()
    assert error.id == "asyncjobs.E001" and "MAX_DELIVERIES" in error.msg
    with override_settings(ASYNCJOBS={"BROKER_URL": "redis://h/0", "QUEUES": ["default"]}):
        [error] = check_settings()
    assert "on_other_queue" in error.msg  # a task routed to a queue that is not configured
    assert check_settings() == []


@pytest.fixture
def restores_the_app() -> Iterator[None]:
    """The suite's app is current again afterwards, whatever the test configured."""
    previous = app._current
    yield
    app.restore(previous)


@pytest.mark.usefixtures("restores_the_app")
def test_a_bad_setting_met_building_the_app_is_what_check_and_sends_report() -> None:
    hooks = {"BROKER_URL": "redis://h/0", "QUEUES": ["default", "other"], "HOOKS": ["tests.x.H"]}
    with override_settings(ASYNCJOBS=hooks):  # the app is rebuilt: that fails and is recorded
        with pytest.raises(AsyncJobsImproperlyConfigured, match="HOOKS: cannot import") as raised:
            conf.setup()
        recorded = str(raised.value)
        # The settings validate (HOOKS is imported only to build the app): check reports
        # what was recorded.
        [error] = check_settings()
        assert (error.id, error.msg) == ("asyncjobs.E001", recorded)
        [warning] = check_configured()  # every check run's, migrate's included
        assert (warning.id, warning.msg) == ("asyncjobs.W002", recorded)
        assert warning in run_checks(tags=["asyncjobs"])  # registered
        assert error in run_checks(tags=["asyncjobs"], include_deployment_checks=True)
        with pytest.raises(AsyncJobsImproperlyConfigured) as sent:
            tasks.add.kiq_sync(1, 2)
    assert str(sent.value) == recorded and sent.value is not raised.value
    assert "not configured: add" not in recorded  # not the generic NotConfiguredError

    assert conf.setup() is current_app()  # the settings are good again: configured
    assert check_settings() == [] and check_configured() == []


def test_check_warns_when_results_are_off() -> None:
    amqp = {"BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/", "QUEUES": ["default", "other"]}
    with override_settings(ASYNCJOBS=amqp):
        [warning] = check_results()
        assert warning.id == "asyncjobs.W001" and warning.is_serious() is False
        assert "results are off" in warning.msg and "RESULT_BACKEND_URL" in warning.msg
        assert warning in run_checks(tags=["asyncjobs"])  # registered: `check` shows it
    with override_settings(ASYNCJOBS={**amqp, "RESULT_BACKEND_URL": "redis://127.0.0.1/0"}):
        assert check_results() == []
    assert check_results() == []  # a Redis broker keeps results itself


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"BROKER_URL": f"redis://h/x?password={PASSWORD}"}, ["BROKER_URL", "database"]),
        (
            {"BROKER_URL": f"redis://:{PASSWORD}@h:6379/0?socket_timeout=abc"},
            ["BROKER_URL", "socket_timeout"],
        ),
        ({"BROKER_URL": "amqp://h/?heartbeat=abc"}, ["BROKER_URL", "heartbeat"]),
        (
            {"BROKER_URL": "redis://h/0", "SCHEDULE_STORE_URL": "redis://h:99999/0"},
            ["SCHEDULE_STORE_URL", "Port out of range"],
        ),
    ],
)
def test_system_check_reports_urls_that_would_be_misread(
    settings: dict[str, str], names: list[str]
) -> None:
    with override_settings(ASYNCJOBS={**settings, "QUEUES": ["default", "other"]}):
        errors = check_settings()
    assert len(errors) == 1, errors  # the URL's, and no other
    [error] = errors
    assert error.id == "asyncjobs.E001"
    for name in names:
        assert name in error.msg, error.msg
    assert PASSWORD not in error.msg


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("ASYNCJOBS_BROKER_URL", "kafka://127.0.0.1:9092", "BROKER_URL"),
        ("ASYNCJOBS_BROKER_URL", f"redis://u:{PASSWORD}@127.0.0.1:port/0", "BROKER_URL"),
        ("ASYNCJOBS_BROKER_URL", f"redis://127.0.0.1:6379/x?password={PASSWORD}", "BROKER_URL"),
        (
            "ASYNCJOBS_RESULT_BACKEND_URL",
            f"redis://127.0.0.1:6379/0?password={PASSWORD}&socket_timeout=abc",
            "RESULT_BACKEND_URL",
        ),
        ("ASYNCJOBS_DRAIN_TIMEOUT", "-1", "DRAIN_TIMEOUT"),
    ],
)
def test_a_bad_override_is_reported_by_check_naming_the_setting(
    variable: str, value: str, key: str
) -> None:
    # Django starts regardless (tests/django/test_unconfigured.py); `check --deploy` fails.
    proc = subprocess.run(
        [sys.executable, "-m", "django", "check", "--deploy"],
        cwd=ROOT,
        env=env(**{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "(asyncjobs.E001)" in proc.stderr
    assert key in proc.stderr and variable in proc.stderr
    assert "Traceback" not in proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout


def test_worker_with_a_bad_setting_stops_instead_of_restart_looping() -> None:
    # Four children that all fail at once: when each signalled the manager (or died
    # while it handled the signal), its non-reentrant queue lock hung it now and then.
    proc = subprocess.run(
        [TASKIQ, "worker", "asyncjobs.django.worker:broker", "--workers", "4"],
        cwd=ROOT,
        env=env(ASYNCJOBS_DRAIN_TIMEOUT="-1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert "DRAIN_TIMEOUT" in output and "cannot start" in output
    # taskiq alone would restart the failing children every second, forever.
    assert output.count("cannot start") <= 8
    assert "restarted with pid" not in output


def test_a_worker_on_an_in_process_broker_refuses_to_start() -> None:
    proc = subprocess.run(
        [TASKIQ, "worker", "asyncjobs.django.worker:broker", "--workers", "1"],
        cwd=ROOT,
        env=env(ASYNCJOBS_BROKER_URL="memory://"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert "cannot start" in output and "keeps its queues inside one process" in output
    assert "worker ready" not in output  # it never consumed (taskiq's manager exits 0)


@pytest.mark.redis
def test_worker_logs_never_show_the_broker_password(redis_url: str) -> None:
    # The shared Redis has no password: AUTH fails, and the worker logs that failure.
    url = redis_url.replace("redis://", f"redis://user:{PASSWORD}@")
    worker = subprocess.Popen(
        [
            TASKIQ,
            "worker",
            "asyncjobs.django.worker:broker",
            "--workers",
            "1",
            "--log-level",
            "DEBUG",
        ],
        cwd=ROOT,
        env=env(ASYNCJOBS_BROKER_URL=url, ASYNCJOBS_KEY_PREFIX="pwtest"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert worker.stdout is not None
        for line in worker.stdout:  # bounded by the pytest timeout
            lines.append(line)
            if "connecting to the broker failed" in line or "Traceback" in line:
                break
    finally:
        worker.send_signal(signal.SIGTERM)
        rest, _ = worker.communicate(timeout=30)
        lines.append(rest)
    output = "".join(lines)
    assert "connecting to the broker failed" in output, output[-3000:]
    assert "Traceback" not in output  # retried with backoff, not a crash loop
    assert PASSWORD not in output
