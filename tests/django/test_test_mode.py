"""`manage.py test` with asyncjobs' test mode: the example project's own TestCase tests
(example/shop/tests.py) on SQLite and PostgreSQL, run by Django's runner in a process of
their own. Tasks read the tests' uncommitted rows, nothing reaches Redis, the test
database is dropped, and a task exception fails its test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
PG = "host=127.0.0.1 port=5432 user=postgres dbname=test"

pytestmark = [pytest.mark.redis]


def _manage_test(label: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "EXAMPLE_DB_PATH": str(tmp_path / "example.sqlite3"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "example/manage.py", "test", label, "-v", "2"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _redis_keys(prefix: str) -> list[bytes]:
    with redis.Redis.from_url("redis://127.0.0.1:6379/0") as conn:
        return list(conn.scan_iter(match=f"{prefix}*"))


def _test_databases(name: str) -> list[str]:
    with psycopg.connect(PG, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname = %s", (name,))
        return [row[0] for row in rows]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_example_tests_pass_off_the_broker(database: str, tmp_path: Path) -> None:
    prefix = f"aj-testmode-{uuid.uuid4().hex[:8]}"
    test_db = f"test_example_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    proc = _manage_test(
        "example.shop",
        tmp_path,
        ASYNCJOBS_KEY_PREFIX=prefix,
        EXAMPLE_DATABASE=database,
        EXAMPLE_PG_TEST_NAME=test_db,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Ran 8 tests" in out and "\nOK\n" in out
    for name in (
        "test_a_sync_task_reads_a_row_the_test_created",
        "test_an_async_task_reads_and_writes_a_row_the_test_created",
        "test_the_async_view_sends_and_the_tasks_run",
    ):
        assert f"{name} (" in out, out[-4000:]  # ran (and, with OK below, passed)
    assert _redis_keys(prefix) == []  # the configured Redis never saw a send
    if database == "postgres":
        assert test_db in out or "Destroying test database" in out
        assert _test_databases(test_db) == []  # dropped cleanly: no connection held it


def test_a_task_exception_fails_the_test(tmp_path: Path) -> None:
    proc = _manage_test("tests.django.cases.failing_task", tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert "FAILED (errors=1)" in out
    assert "asyncjobs.errors.Reject: signup 424242 does not exist" in out
