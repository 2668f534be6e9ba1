"""asyncjobs.testing.pytest_plugin in a pytest run of its own: a test that sends without
capturing never reaches Redis, and the ``jobs`` fixture captures and runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.redis]

CONFTEST = """
import django

django.setup()
pytest_plugins = ["asyncjobs.testing.pytest_plugin"]
"""

TESTS = """
from asyncjobs import current_broker
from tests.testapp.capture_tasks import calls, double


def test_an_uncaptured_send_stays_in_the_process():
    double.kiq_sync(1)
    assert current_broker().transport_name == "memory"


def test_the_jobs_fixture_captures_and_runs(jobs):
    handle = double.kiq_sync(21)
    jobs.assert_enqueued(double, args=[21])
    jobs.run_pending()
    assert jobs.result(handle).return_value == 42
    assert calls[-1][:2] == ("double", 21)
"""


def test_the_plugin_keeps_a_pytest_session_off_the_broker(tmp_path: Path, redis_url: str) -> None:
    prefix = f"aj-plugin-{uuid.uuid4().hex[:8]}"
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_sends.py").write_text(textwrap.dedent(TESTS))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django_settings",
        "ASYNCJOBS_BROKER_URL": redis_url,
        "ASYNCJOBS_KEY_PREFIX": prefix,
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    with redis.Redis.from_url(redis_url) as conn:
        assert list(conn.scan_iter(match=f"{prefix}*")) == []
