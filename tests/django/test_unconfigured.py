"""Django starts without a broker: a missing or wrong ``ASYNCJOBS`` setting does not stop
``migrate``, ``collectstatic`` or ``shell``; ``manage.py check`` reports it (an error
with ``--deploy``), the first send raises it, and the worker and the scheduler refuse to
start with it.

Each command runs as a user runs it (``python -m django``, i.e. ``manage.py``), on a
settings module written for the test: the suite's, without ``ASYNCJOBS`` or with a wrong
one, SQLite and ``STATIC_ROOT`` in a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKIQ = str(Path(sys.executable).with_name("taskiq"))
MISSING = "del ASYNCJOBS"
WRONG = "ASYNCJOBS = {'BROKER_URL': 'kafka://127.0.0.1:9092', 'QUEUES': ['default', 'other']}"
SETTINGS = """\
from tests.django_settings import *  # noqa: F403

{asyncjobs}
INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.staticfiles"]  # noqa: F405
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
STATIC_URL = "static/"
STATIC_ROOT = {static!r}
"""
# Every way to send or read: each must raise the recorded error, not "not configured".
SENDS = """\
import asyncio
from django.contrib.auth.models import User
from asyncjobs import current_app, job
from tests.testapp import tasks

print("users:", User.objects.count())

async def send():
    await tasks.add.kiq(1, 2)

for name, attempt in [
    ("kiq", lambda: asyncio.run(send())),
    ("kiq_sync", lambda: tasks.add.kiq_sync(1, 2)),
    ("kiq_on_commit", lambda: tasks.add.kiq_on_commit(1, 2)),
    ("job", lambda: job("some-task-id")),
    ("current_app", current_app),
]:
    try:
        attempt()
    except Exception as exc:
        print("send", name, type(exc).__name__, repr(str(exc)))
    else:
        print("send", name, "did not raise")
"""


def write_settings(directory: Path, asyncjobs: str) -> str:
    """A settings module in ``directory``; its name."""
    text = SETTINGS.format(
        asyncjobs=asyncjobs, db=str(directory / "db.sqlite3"), static=str(directory / "static")
    )
    (directory / "unconfigured_settings.py").write_text(text)
    return "unconfigured_settings"


def run(argv: list[str], directory: Path, module: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCJOBS_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": module,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(directory)]),
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def django(*argv: str, directory: Path, module: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "django", *argv], directory, module)


@pytest.mark.parametrize("asyncjobs", [MISSING, WRONG], ids=["missing", "wrong"])
def test_commands_run_check_reports_and_sends_raise(asyncjobs: str, tmp_path: Path) -> None:
    module = write_settings(tmp_path, asyncjobs)
    # The one line start-up logs; the rest of the output is the commands' own.
    notice = "asyncjobs is not configured, so sending tasks will fail and the worker"

    migrate = django("migrate", "--noinput", directory=tmp_path, module=module)
    assert migrate.returncode == 0, migrate.stderr
    assert "Applying auth.0001_initial... OK" in migrate.stdout
    # Django runs every check before migrating: a warning, which does not stop it.
    assert "(asyncjobs.W002) " in migrate.stderr and "BROKER_URL" in migrate.stderr
    assert "Traceback" not in migrate.stderr

    static = django("collectstatic", "--noinput", directory=tmp_path, module=module)
    assert static.returncode == 0, static.stderr
    assert "static files copied to" in static.stdout
    assert static.stderr.count(notice) == 1 and "Traceback" not in static.stderr

    check = django("check", directory=tmp_path, module=module)
    assert check.returncode == 0, check.stderr
    assert "(asyncjobs.W002) " in check.stderr and "BROKER_URL" in check.stderr
    assert "(asyncjobs.E001)" not in check.stderr
    deploy = django("check", "--deploy", directory=tmp_path, module=module)
    assert deploy.returncode == 1, deploy.stderr
    assert "(asyncjobs.E001) " in deploy.stderr and "BROKER_URL" in deploy.stderr
    assert "Traceback" not in check.stderr + deploy.stderr

    shell = django("shell", "-c", SENDS, directory=tmp_path, module=module)
    assert shell.returncode == 0, shell.stderr
    assert "users: 0" in shell.stdout  # the database works
    lines = [line for line in shell.stdout.splitlines() if line.startswith("send ")]
    assert [line.split()[1] for line in lines] == [
        "kiq",
        "kiq_sync",
        "kiq_on_commit",
        "job",
        "current_app",
    ]
    for line in lines:
        assert " AsyncJobsImproperlyConfigured " in line and "BROKER_URL" in line, line


def test_the_worker_and_the_scheduler_refuse_to_start(tmp_path: Path) -> None:
    module = write_settings(tmp_path, MISSING)
    worker = run(
        [TASKIQ, "worker", "asyncjobs.django.worker:broker", "--workers", "1"], tmp_path, module
    )
    output = worker.stdout + worker.stderr
    assert "cannot start: BROKER_URL is required" in output, output
    assert "worker ready" not in output and "restarted with pid" not in output
    assert "sending tasks will fail" not in output  # the worker's own line says it

    scheduler = run([TASKIQ, "scheduler", "asyncjobs.django.worker:scheduler"], tmp_path, module)
    assert scheduler.returncode == 78, scheduler.stdout + scheduler.stderr
    assert "asyncjobs: cannot start: BROKER_URL is required" in scheduler.stderr

    # The entry module on its own (what both import): exit status 78, one line.
    direct = run([sys.executable, "-c", "import asyncjobs.django.worker"], tmp_path, module)
    assert direct.returncode == 78
    assert direct.stderr.strip().splitlines()[-1].startswith("asyncjobs: cannot start: BROKER")
