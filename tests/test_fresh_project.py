"""A new Django project, as a user starts one, with apps named ``schedules`` and
``brokers``: the built wheel installs into a fresh virtual environment, asyncjobs' names
leave the project's free, and a real worker runs tasks from both apps on Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from example.processes import ManagedProcess
from tests.support.helpers import wait_until
from tests.test_packaging import build_wheel

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(240)]


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the built wheel installed (no network: the
    dependencies come from this test run's environment, found after the wheel)."""
    root = tmp_path_factory.mktemp("fresh")
    wheel = build_wheel(root / "dist")
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=120,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies of this run's environment, after the venv's own packages (a plain
    # path: this environment's editable asyncjobs is not loaded from there).
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir


@pytest.fixture
def project(venv: Path, tmp_path: Path, redis_url: str, prefix: str) -> Iterator[Path]:
    python = str(venv / "bin" / "python")
    env = clean_env()
    run([python, "-m", "django", "startproject", "proj", str(tmp_path)], tmp_path, env)
    for app in ("schedules", "brokers"):
        run([python, "manage.py", "startapp", app], tmp_path, env)
    settings = tmp_path / "proj" / "settings.py"
    settings.write_text(
        settings.read_text()
        + textwrap.dedent(f"""
            INSTALLED_APPS += ["asyncjobs.django", "schedules", "brokers"]
            ASYNCJOBS = {{"BROKER_URL": {redis_url!r}, "KEY_PREFIX": {prefix!r}}}
            """)
    )
    for app in ("schedules", "brokers"):
        (tmp_path / app / "tasks.py").write_text(TASKS.format(app=app))
    yield tmp_path
    redis.Redis.from_url(redis_url).delete(f"{prefix}:ran")


TASKS = """
import redis
from asyncjobs import current_config, task


@task
def ran_in_{app}(n: int) -> int:
    config = current_config()
    redis.Redis.from_url(config.broker_url).rpush(f"{{config.key_prefix}}:ran", f"{app}:{{n}}")
    return n
"""

SEND = """
import asyncio
import brokers, schedules
from brokers.tasks import ran_in_brokers
from schedules.tasks import ran_in_schedules


async def main():
    await ran_in_schedules.kiq(1)
    await ran_in_brokers.kiq(2)


asyncio.run(main())
print(schedules.__file__, brokers.__file__)
"""


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCJOBS_", "PYTHON"))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


async def test_a_fresh_project_with_apps_named_schedules_and_brokers(
    project: Path, venv: Path, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    python = str(venv / "bin" / "python")
    env = clean_env() | {"DJANGO_SETTINGS_MODULE": "proj.settings"}
    assert "System check identified no issues" in run([python, "manage.py", "check"], project, env)
    run([python, "manage.py", "migrate", "--noinput"], project, env)
    located = run([python, "manage.py", "shell", "-c", SEND], project, env).splitlines()[-1].split()
    assert located == [str(project / app / "__init__.py") for app in ("schedules", "brokers")]
    assert "inspect" in run([str(venv / "bin" / "asyncjobs"), "--help"], project, env)

    argv = [python, "-m", "taskiq", "worker", "asyncjobs.django.worker:broker", "--workers", "1"]
    log = tmp_path / "worker.log"
    worker = ManagedProcess("fresh-worker", argv, log_path=log, env=env, cwd=project)
    ran = redis.Redis.from_url(redis_url)

    async def both_ran() -> bool:
        assert worker.alive(), worker.describe()
        return sorted(ran.lrange(f"{prefix}:ran", 0, -1)) == [b"brokers:2", b"schedules:1"]

    try:
        await wait_until(both_ran, timeout=60, interval=0.1, what="both apps' tasks to run")
    finally:
        worker.stop(timeout_s=10)
