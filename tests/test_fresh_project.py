"""A new Django project, as a user starts one, with apps named ``schedules`` and
``brokers``: the built wheel installs into a fresh virtual environment, asyncjobs' names
leave the project's free, and a real worker runs tasks from both apps on Redis; the README
tutorial's steps, from its text: views send, the worker runs, manage.py test stays off Redis."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from example.processes import ManagedProcess, free_port
from tests.support.helpers import wait_until
from tests.test_packaging import build_wheel

REPO = Path(__file__).resolve().parents[1]

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


TUTORIAL_BLOCK = re.compile(
    r"<!-- tutorial: (append|write) (\S+) -->\n```python\n(.*?)```", re.DOTALL
)


def tutorial_files() -> list[tuple[str, str, str]]:
    """The README tutorial's files: (append|write, path, text), in order."""
    blocks = TUTORIAL_BLOCK.findall((REPO / "README.md").read_text())
    assert {path for _, path, _ in blocks} >= {
        "proj/settings.py",
        "shop/models.py",
        "shop/tasks.py",
        "shop/views.py",
        "proj/urls.py",
        "shop/tests.py",
    }
    return blocks


@pytest.fixture
def project(venv: Path, tmp_path: Path, redis_url: str, prefix: str) -> Iterator[Path]:
    """The README tutorial's project, plus apps named ``schedules`` and ``brokers``."""
    python = str(venv / "bin" / "python")
    env = clean_env()
    run([python, "-m", "django", "startproject", "proj", str(tmp_path)], tmp_path, env)
    for app in ("shop", "schedules", "brokers"):
        run([python, "manage.py", "startapp", app], tmp_path, env)
    for mode, path, text in tutorial_files():
        target = tmp_path / path
        with target.open("a" if mode == "append" else "w") as out:
            out.write("\n" + text)
    settings = tmp_path / "proj" / "settings.py"
    settings.write_text(settings.read_text() + '\nINSTALLED_APPS += ["schedules", "brokers"]\n')
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


def greetings(project: Path) -> list[str]:
    with sqlite3.connect(project / "db.sqlite3") as db:
        return sorted(row[0] for row in db.execute("SELECT name FROM shop_greeting"))


async def get_when_up(url: str, server: ManagedProcess) -> httpx.Response:
    """GET ``url`` once the server answers at all (runserver starts in ~1 s)."""
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(300):
            assert server.alive(), server.describe()
            try:
                return await client.get(url)
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered\n{server.describe()}")


async def test_the_readme_tutorial_on_a_fresh_project(
    project: Path, venv: Path, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    python = str(venv / "bin" / "python")
    env = clean_env() | {
        "DJANGO_SETTINGS_MODULE": "proj.settings",
        # The tutorial's settings, on this run's Redis and key prefix.
        "ASYNCJOBS_BROKER_URL": redis_url,
        "ASYNCJOBS_KEY_PREFIX": prefix,
    }
    assert "System check identified no issues" in run([python, "manage.py", "check"], project, env)
    run([python, "manage.py", "makemigrations", "shop"], project, env)
    run([python, "manage.py", "migrate", "--noinput"], project, env)
    located = run([python, "manage.py", "shell", "-c", SEND], project, env).splitlines()[-1].split()
    assert located == [str(project / app / "__init__.py") for app in ("schedules", "brokers")]
    assert "inspect" in run([str(venv / "bin" / "asyncjobs"), "--help"], project, env)

    port = free_port()
    web = ManagedProcess(
        "fresh-web",
        [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        log_path=tmp_path / "web.log",
        env=env,
        cwd=project,
    )
    argv = [python, "-m", "taskiq", "worker", "asyncjobs.django.worker:broker", "--workers", "1"]
    worker = ManagedProcess(
        "fresh-worker", argv, log_path=tmp_path / "worker.log", env=env, cwd=project
    )
    ran = redis.Redis.from_url(redis_url)

    async def all_ran() -> bool:
        assert worker.alive(), worker.describe()
        apps = sorted(ran.lrange(f"{prefix}:ran", 0, -1)) == [b"brokers:2", b"schedules:1"]
        return apps and greetings(project) == ["ada", "bob"]

    try:
        base = f"http://127.0.0.1:{port}"
        assert (await get_when_up(f"{base}/hello/ada", web)).status_code == 202
        assert (await get_when_up(f"{base}/hello/bob/sync", web)).status_code == 202
        await wait_until(all_ran, timeout=60, interval=0.1, what="the tutorial's tasks to run")
    finally:
        worker.stop(timeout_s=10)
        web.stop(timeout_s=10)

    # The tutorial's tests, with the test runner it sets: nothing reaches Redis.
    test_prefix = f"{prefix}-tests"
    run(  # exits 0 only if all the tutorial's tests passed
        [python, "manage.py", "test", "shop"],
        project,
        env | {"ASYNCJOBS_KEY_PREFIX": test_prefix},
    )
    assert list(ran.scan_iter(match=f"{test_prefix}*")) == []
