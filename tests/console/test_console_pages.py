"""The console's overview, schedules and task lookup through Django's client on real
Redis: the figures of ``inspect``, the workers and counts the monitor store holds, the
schedule actions with their refusals and audit entries, a task looked up by id."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator

import orjson
import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from redis import Redis

from asyncjobs.app import App, restore
from asyncjobs.config import load_config
from asyncjobs.inspection import inspect
from tests.console.conftest import QUEUES

pytestmark = pytest.mark.redis

CONSOLE = "/admin/asyncjobs/console/"
SCHEDULES = CONSOLE + "schedules/"


def test_the_overview_shows_the_figures_workers_and_counts(
    app: App, admin_client: Client, redis_url: str, prefix: str
) -> None:
    with Redis.from_url(redis_url) as conn:  # one message waits
        conn.xadd(f"{prefix}:default", {"data": b"{}", "deliveries": b"0"})
    store = app.monitor_store
    assert store is not None
    now = time.time()
    document = {
        "id": "web-1:42:abc", "host": "web-1", "pid": 42, "queues": QUEUES, "concurrency": 8,
        "running": 3, "started_at": now - 60, "heartbeat_at": now, "version": "9.9",
    }  # fmt: skip
    minute = int(now // 60) * 60

    async def write() -> None:
        await store.register("web-1:42:abc", orjson.dumps(document), 30)
        counts = {("default", "succeeded"): 7, ("default", "failed"): 2}
        await store.add_counts(minute, counts, 600)

    app.broker.home.run_sync(write(), 10)
    page = admin_client.get(CONSOLE)
    assert page.status_code == 200
    expected = app.broker.home.run_sync(inspect(), 10)
    ageless = [
        dataclasses.replace(row["stats"], oldest_waiting_age_s=0) for row in page.context["queues"]
    ]
    assert ageless == [dataclasses.replace(s, oldest_waiting_age_s=0) for s in expected]
    assert page.context["queues"][0]["stats"].waiting == 1
    [worker] = page.context["workers"]
    assert (worker.host, worker.pid, worker.running) == ("web-1", 42, 3)
    totals = page.context["queues"][0]["totals"]
    assert (totals.succeeded, totals.failed, totals.dead_lettered) == (7, 2, 0)
    assert b'<svg xmlns="http://www.w3.org/2000/svg" class="asyncjobs-chart"' in page.content
    assert b'http-equiv="refresh"' in page.content
    assert b"<script" not in page.content.split(b'id="content"')[1]  # drawn by the server


@pytest.fixture
def rabbit_alone(amqp_url: str, prefix: str) -> Iterator[App]:
    config = load_config({"BROKER_URL": amqp_url, "QUEUES": QUEUES, "KEY_PREFIX": prefix}, {})
    app = App.from_config(config)
    previous = app.activate()
    yield app
    app.broker.home.run_sync(app.broker.disconnect(), 10)
    asyncio.run(app.close())
    restore(previous)


@pytest.mark.rabbitmq
def test_rabbitmq_without_a_redis_says_what_needs_one(
    rabbit_alone: App, admin_client: Client
) -> None:
    page = admin_client.get(CONSOLE)
    assert page.status_code == 200
    assert page.context["banner"] is None  # the queues' figures are there
    assert [row["stats"].queue for row in page.context["queues"]] == QUEUES
    assert "RESULT_BACKEND_URL" in page.context["monitor_note"]
    schedules = admin_client.get(SCHEDULES)
    assert schedules.status_code == 200
    pause = admin_client.post(SCHEDULES + "pause/", {"schedule_id": "x"})
    assert pause.status_code in (400, 404) and b"Nothing was changed" in pause.content


def test_schedules_are_added_paused_resumed_run_and_removed(
    app: App, admin_client: Client, redis_url: str, prefix: str
) -> None:
    form = {
        "task": "tests.testapp.tasks:add",
        "every": "3600",
        "args": "[1, 2]",
        "schedule_id": "sum",
    }
    assert admin_client.post(SCHEDULES + "add/", form).status_code == 302
    [row] = admin_client.get(SCHEDULES).context["rows"]
    assert (row["state"].id, row["state"].paused, row["state"].source) == ("sum", False, "dynamic")
    assert admin_client.post(SCHEDULES + "pause/", {"schedule_id": "sum"}).status_code == 302
    assert admin_client.get(SCHEDULES).context["rows"][0]["state"].paused
    assert admin_client.post(SCHEDULES + "resume/", {"schedule_id": "sum"}).status_code == 302
    assert not admin_client.get(SCHEDULES).context["rows"][0]["state"].paused
    assert admin_client.post(SCHEDULES + "run/", {"schedule_id": "sum"}).status_code == 302
    with Redis.from_url(redis_url) as conn:
        assert conn.xlen(f"{prefix}:default") == 1  # one message, now
    entry = LogEntry.objects.latest("action_time")
    assert entry.user.username == "root" and entry.change_message.startswith("run schedule sum")
    assert admin_client.post(SCHEDULES + "remove/", {"schedule_id": "sum"}).status_code == 302
    assert admin_client.get(SCHEDULES).context["rows"] == []


@pytest.mark.parametrize(
    ("path", "form", "status", "reason"),
    [
        ("add/", {"task": "tests.testapp.tasks:add", "cron": "61 * * * *"}, 400, "cron"),
        ("add/", {"task": "nowhere:nothing", "every": "60"}, 400, "unknown task"),
        ("add/", {"task": "tests.testapp.tasks:add", "every": "60", "args": "[1,"}, 400, "args"),
        ("pause/", {"schedule_id": "nope"}, 404, "nope"),
        ("run/", {"schedule_id": "nope"}, 404, "nope"),
        ("pause/", {}, 400, "schedule_id: required"),
    ],
)
def test_a_bad_schedule_request_is_refused_and_changes_nothing(
    app: App, admin_client: Client, path: str, form: dict[str, str], status: int, reason: str
) -> None:
    response = admin_client.post(SCHEDULES + path, form)
    assert response.status_code == status
    assert reason in response.content.decode()
    assert admin_client.get(SCHEDULES).context["rows"] == []


def test_ticks_are_shown_in_the_schedules_time_zone(app: App, admin_client: Client) -> None:
    form = {"task": "tests.testapp.tasks:add", "cron": "0 2 * * *", "timezone": "Asia/Tokyo",
            "args": "[1, 2]", "schedule_id": "tokyo"}  # fmt: skip
    assert admin_client.post(SCHEDULES + "add/", form).status_code == 302
    page = admin_client.get(SCHEDULES).content.decode()
    assert "02:00:00 JST" in page


def test_a_viewer_sees_no_schedule_buttons_and_is_refused(
    app: App, admin_client: Client, viewer_client: Client
) -> None:
    form = {
        "task": "tests.testapp.tasks:add",
        "every": "3600",
        "args": "[1, 2]",
        "schedule_id": "v",
    }
    admin_client.post(SCHEDULES + "add/", form)
    page = viewer_client.get(SCHEDULES)
    assert page.status_code == 200 and b"data-action" not in page.content
    assert viewer_client.post(SCHEDULES + "pause/", {"schedule_id": "v"}).status_code == 403
    assert not admin_client.get(SCHEDULES).context["rows"][0]["state"].paused


def test_a_task_is_looked_up_by_id(app: App, admin_client: Client) -> None:
    from tests.testapp import tasks

    handle = tasks.add.kiq_sync(1, 2)  # no worker: it waits
    page = admin_client.get(CONSOLE + "tasks/", {"id": handle.task_id})
    assert page.status_code == 200 and page.context["report"].state == "waiting"
    unknown = admin_client.get(CONSOLE + "tasks/", {"id": "no-such-task"})
    assert unknown.context["report"].state == "unknown"
    assert b'id="task-state"' in unknown.content
