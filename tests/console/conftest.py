"""The operator console through Django's test client: real Redis, the admin of the test
settings (``tests/urls.py``), users with and without the console's permissions.

The tests are sync (Django's client and ORM are); the broker's client lives in
asyncjobs' own loop, as it does under a sync web server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment, teardown_test_environment
from redis import Redis

from asyncjobs.app import App, restore
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.config import load_config

PASSWORD = "pw-console-1234"
QUEUES = ["default", "other"]


@pytest.fixture(scope="package", autouse=True)
def test_environment() -> Iterator[None]:
    """Django's test instrumentation (``response.context``), for these tests only."""
    setup_test_environment()
    yield
    teardown_test_environment()


@pytest.fixture(scope="session")
def console_db() -> None:
    """The tables of the test settings' apps (sqlite in memory, this thread's)."""
    call_command("migrate", verbosity=0, interactive=False)


def make_user(
    name: str, *, staff: bool = True, superuser: bool = False, perms: tuple[str, ...] = ()
) -> User:
    User.objects.filter(username=name).delete()
    user = User.objects.create_user(name, password=PASSWORD, is_staff=staff, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(console_db: None) -> Client:
    return client_of(make_user("root", superuser=True))


@pytest.fixture
def viewer_client(console_db: None) -> Client:
    return client_of(make_user("viewer", perms=("asyncjobs.view_console",)))


@pytest.fixture
def app(redis_url: str, prefix: str) -> Iterator[App]:
    """asyncjobs on the test Redis under this test's prefix; its keys deleted after."""
    config = load_config({"BROKER_URL": redis_url, "QUEUES": QUEUES, "KEY_PREFIX": prefix}, {})
    configured = App.from_config(config)
    previous = configured.activate()
    try:
        yield configured
    finally:
        # The pages' clients live in asyncjobs' own loop: closed there, then the loop ends.
        configured.broker.home.run_sync(configured.broker.disconnect(), 10)
        asyncio.run(configured.close())
        restore(previous)
        conn = Redis.from_url(redis_url)
        keys = list(conn.scan_iter(match=f"{prefix}*"))
        if keys:
            conn.delete(*keys)
        conn.close()


def seed_dead_letters(
    redis_url: str,
    prefix: str,
    count: int,
    *,
    queue: str = "default",
    every_other_reason: bool = False,
) -> list[str]:
    """``count`` dead letters written as a worker writes them; their ids, oldest first."""
    conn = Redis.from_url(redis_url)
    ids: list[str] = []
    with conn.pipeline(transaction=False) as pipe:
        for n in range(count):
            reason = Reason.UNKNOWN_TASK if every_other_reason and n % 2 else Reason.MAX_ATTEMPTS
            record = DeadLetter(
                body=b'{"task_id":"t%d","task_name":"tests.testapp.tasks:add","args":[%d,1],"kwargs":{},"labels":{}}'
                % (n, n),
                queue=queue,
                reason=reason,
                error_type="ValueError",
                error_message=f"bad {n}",
                task_id=f"t{n}",
                task_name="tests.testapp.tasks:add",
                attempts=3,
                dead_lettered_at=time.time(),
            )
            pipe.xadd(f"{prefix}:{queue}:dead", {"record": record.to_json()})
            if len(pipe) >= 5000:
                ids += [i.decode() for i in pipe.execute()]
        ids += [i.decode() for i in pipe.execute()]
    conn.close()
    return ids
