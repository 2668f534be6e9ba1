"""Every ``asyncjobs`` command turns a broker failure into one line on stderr and exit
status 1: no traceback, and no password, wherever the URL carries it (``user:pw@`` or
``?password=``, which redis-py reads too).

The commands run as a user runs them: the ``asyncjobs`` console script (configured from
``ASYNCJOBS_*`` variables) and ``python -m django asyncjobs``, against a dead port, the
shared Redis with a wrong password, RabbitMQ with a wrong password, and a private Redis
whose ACL forbids the commands the CLI sends after connecting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AMQP_URL, require_server
from tests.faults.redis_server import PrivateRedis

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(Path(sys.executable).with_name("asyncjobs"))
SECRETS = ("S3CRET-PW", "S3CRET-QS")
COMMANDS = [
    ("inspect",),
    ("dlq", "list"),
    ("dlq", "show", "0-1"),
    ("dlq", "replay", "--all"),
    ("dlq", "purge", "--yes"),
    ("schedules", "list"),
]


def environment(django: bool = False, **settings: str) -> dict[str, str]:
    """This checkout's code first (the console script would import the installed one),
    and only the given ``ASYNCJOBS_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCJOBS_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if django:
        env["DJANGO_SETTINGS_MODULE"] = "tests.django_settings"
    return env | {f"ASYNCJOBS_{key}": value for key, value in settings.items()}


def console(argv: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def assert_one_clean_line(proc: subprocess.CompletedProcess[str], status: int = 1) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode == status, output
    assert "Traceback" not in output, output
    for secret in SECRETS:
        assert secret not in output, output
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("asyncjobs: "), line
    return line


class AclRedis(PrivateRedis):
    """A private Redis whose default user may connect but not run ``denied``."""

    def __init__(self, work_dir: Path, denied: tuple[str, ...]) -> None:
        super().__init__(work_dir)
        self.denied = denied

    def argv(self) -> list[str]:
        rules = ["default", "on", "nopass", "~*", "&*", "+@all", *(f"-{c}" for c in self.denied)]
        return [*super().argv(), "--user", *rules]


@pytest.fixture(scope="module")
def forbidding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis where connecting works and every later command of the CLI is refused
    (NOPERM): the failure comes from inside a command, not from the connection."""
    denied = ("xrange", "xrevrange", "xlen", "xdel", "eval", "hgetall", "del", "exec")
    with AclRedis(tmp_path_factory.mktemp("acl"), denied) as server:
        yield server.url


def dead(port: int, secret: str = "S3CRET-QS") -> str:
    return f"redis://127.0.0.1:{port}/0?password={secret}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_dead_port_is_one_line_without_the_password(
    command: tuple[str, ...], free_port: int
) -> None:
    line = assert_one_clean_line(console(command, environment(BROKER_URL=dead(free_port))))
    assert f"127.0.0.1:{free_port}/0?password=***" in line


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    "url",
    [
        "redis://nobody:S3CRET-PW@127.0.0.1:6379/0",
        "redis://127.0.0.1:6379/0?username=nobody&password=S3CRET-QS",
    ],
    ids=["userinfo", "query"],
)
def test_a_wrong_password_is_one_line_without_it(
    command: tuple[str, ...], url: str, redis_url: str
) -> None:
    # The shared Redis has no user "nobody": AUTH fails with WRONGPASS.
    line = assert_one_clean_line(console(command, environment(BROKER_URL=url)))
    assert "AuthenticationError" in line and "127.0.0.1:6379/0" in line


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_command_the_server_refuses_is_one_line(
    command: tuple[str, ...], forbidding: str
) -> None:
    url = forbidding.replace("redis://", "redis://:S3CRET-PW@")  # nopass accepts any
    line = assert_one_clean_line(console(command, environment(BROKER_URL=url)))
    assert "NoPermissionError" in line or "ExecAbortError" in line, line
    assert "failed at redis://:***@127.0.0.1:" in line


@pytest.mark.rabbitmq
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_rabbitmq_with_a_wrong_password_is_one_line(
    command: tuple[str, ...], free_port: int
) -> None:
    require_server(AMQP_URL, "RabbitMQ")
    url = AMQP_URL.replace("guest:guest@", "guest:S3CRET-PW@")
    # The schedule store (the result backend's Redis) is dead, with its password in the query.
    env = environment(BROKER_URL=url, RESULT_BACKEND_URL=dead(free_port))
    line = assert_one_clean_line(console(command, env))
    assert "guest:***@" in line or f"{free_port}/0?password=***" in line, line


def test_manage_py_prints_no_password_either(redis_url: str, free_port: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "django", "asyncjobs", "dlq", "list"],
        cwd=ROOT,
        env=environment(django=True, BROKER_URL=dead(free_port)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert f"127.0.0.1:{free_port}/0?password=***" in output
    assert "S3CRET-QS" not in output and "Traceback" not in output


def test_a_bad_setting_is_one_line_and_status_78() -> None:
    # Django starts with a bad setting (it records it); both commands refuse to run.
    settings = {"NOPE": "1"}  # an unknown key: a one-line message naming it
    line = assert_one_clean_line(console(("inspect",), environment(django=True, **settings)), 78)
    assert "ASYNCJOBS_NOPE" in line and "unknown setting 'NOPE'" in line
    proc = subprocess.run(
        [sys.executable, "-m", "django", "asyncjobs", "inspect"],
        cwd=ROOT,
        env=environment(django=True, **settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78, proc.stderr
    assert "CommandError: environment variable ASYNCJOBS_NOPE" in proc.stderr
    assert "Traceback" not in proc.stderr and "SystemCheckError" not in proc.stderr
