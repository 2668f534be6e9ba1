"""``asyncjobs schedules list|add|remove`` against the real Redis.

The CLI runs its own event loop (``asyncio.run``), as from a shell, so async tests call
it in a thread. Static schedules come from SCHEDULES here; dynamic ones from the store.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from asyncjobs import schedule_control
from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.cli import run
from asyncjobs.cli.schedules import store_url
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.schedules.definitions import every
from asyncjobs.schedules.store import ScheduleStore
from tests.support.helpers import configured_app
from tests.testapp import tasks

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]
ADD = tasks.add.task_name  # tests.testapp.tasks:add
STATIC_ID = "static-add"
ARGS = ("--args", "[1, 2]")  # add(a, b)


async def _configure(settings: dict[str, Any]) -> AsyncIterator[AsyncJobsConfig]:
    config = load_config(settings, environ={})
    async with configured_app(config):
        yield config


@pytest.fixture
async def scheduled(
    redis_url: str, prefix: str, redis_cleanup: None
) -> AsyncIterator[AsyncJobsConfig]:
    """Configured on the real Redis under this test's prefix, with one static schedule."""
    settings = {
        "BROKER_URL": redis_url,
        "KEY_PREFIX": prefix,
        "SCHEDULES": [{"TASK": ADD, "EVERY": 60, "ARGS": [1, 2], "ID": STATIC_ID}],
    }
    async for config in _configure(settings):
        yield config


@pytest.fixture
async def store(redis_url: str, prefix: str) -> AsyncIterator[ScheduleStore]:
    """The store the CLI writes to, read directly."""
    made = ScheduleStore.from_url(redis_url, prefix)
    yield made
    await made.aclose()


def mine(text: str) -> list[dict[str, Any]]:
    """This test's rows of ``list --json``: its dynamic ones and its SCHEDULES entry (code
    elsewhere in the test run may have declared static schedules of its own)."""
    rows: list[dict[str, Any]] = orjson.loads(text)
    return [row for row in rows if row["source"] == "dynamic" or row["id"] == STATIC_ID]


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return run(list(argv), out=out), out.getvalue()


async def in_thread(*argv: str) -> tuple[int, str]:
    return await asyncio.to_thread(cli, *argv)


async def test_add_list_remove_with_json(scheduled: AsyncJobsConfig, store: ScheduleStore) -> None:
    status, text = await in_thread("schedules", "list", "--json")
    assert status == 0
    [static] = mine(text)
    assert static.pop("next_tick").endswith(":00+00:00")  # a whole minute (every 60 s), UTC
    assert static == {
        "id": STATIC_ID,
        "task": ADD,
        "cron": None,
        "every": 60.0,
        "tz": "UTC",
        "args": [1, 2],
        "kwargs": {},
        "catch_up": 0,
        "source": "static",
        "paused": False,
        "last_sent": None,
    }

    status, text = await in_thread(
        "schedules", "add", ADD, "--cron", "0 9 * * MON-FRI", "--tz", "Europe/Berlin",
        "--args", "[3]", "--kwargs", '{"b": 4}', "--id", "morning", "--catch-up", "2", "--json",
    )  # fmt: skip
    assert status == 0
    added = orjson.loads(text)
    assert added == {
        "added": {
            "id": "morning",
            "task": ADD,
            "cron": "0 9 * * MON-FRI",
            "every": None,
            "tz": "Europe/Berlin",
            "args": [3],
            "kwargs": {"b": 4},
            "catch_up": 2,
            "source": "dynamic",
        },
        "replaced": False,
    }
    stored = await store.get("morning")
    assert stored is not None and stored.to_dict() == {
        k: v for k, v in added["added"].items() if k != "source"
    }

    status, text = await in_thread("schedules", "add", ADD, "--every", "30", *ARGS, "--json")
    interval = orjson.loads(text)["added"]
    assert interval["id"] == every(30, args=[1, 2]).for_task(ADD).id  # derived, as in code

    status, text = await in_thread("schedules", "list", "--json")
    listed = mine(text)
    assert [(row["id"], row["source"]) for row in listed] == sorted(
        [(STATIC_ID, "static"), ("morning", "dynamic"), (interval["id"], "dynamic")]
    )

    status, text = await in_thread("schedules", "remove", "morning", "--json")
    assert (status, orjson.loads(text)) == (0, {"removed": "morning"})
    assert await store.get("morning") is None
    status, text = await in_thread("schedules", "list", "--json")
    assert {row["id"] for row in mine(text)} == {STATIC_ID, interval["id"]}


async def test_text_output(scheduled: AsyncJobsConfig) -> None:
    status, text = await in_thread("schedules", "add", ADD, "--every", "90", "--args", "[5, 6]")
    assert status == 0
    assert text.startswith("added schedule add-") and f"{ADD} every 90 s" in text
    status, text = await in_thread("schedules", "list")
    header, *lines = text.splitlines()
    assert header.split() == [
        "ID", "SOURCE", "TASK", "WHEN", "ARGS", "CATCH_UP", "PAUSED", "NEXT", "LAST_SENT"
    ]  # fmt: skip
    assert len([line for line in lines if "dynamic" in line or STATIC_ID in line]) == 2
    static = next(line for line in lines if line.startswith(STATIC_ID))
    dynamic = next(line for line in lines if line.startswith("add-"))
    assert "static" in static and "every 60 s" in static and "1, 2" in static
    assert "dynamic" in dynamic and "every 90 s" in dynamic and "5, 6" in dynamic
    schedule_id = dynamic.split()[0]
    status, text = await in_thread("schedules", "remove", schedule_id)
    assert (status, text) == (0, f"removed schedule {schedule_id}\n")


async def test_adding_the_same_id_again_replaces_it(
    scheduled: AsyncJobsConfig, store: ScheduleStore
) -> None:
    first = await in_thread(
        "schedules", "add", ADD, "--every", "60", *ARGS, "--id", "job", "--json"
    )
    assert orjson.loads(first[1])["replaced"] is False
    status, text = await in_thread(
        "schedules", "add", ADD, "--cron", "*/5 * * * *", *ARGS, "--id", "job", "--json"
    )
    assert status == 0 and orjson.loads(text)["replaced"] is True
    [only] = await store.list()
    assert (only.id, only.cron, only.every_s) == ("job", "*/5 * * * *", None)
    status, text = await in_thread("schedules", "add", ADD, "--every", "60", *ARGS, "--id", "job")
    assert text.startswith("replaced schedule job:")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((ADD.replace("add", "ad"), "--every", "60"), "unknown task 'tests.testapp.tasks:ad'"),
        (("nope", "--every", "60"), "unknown task 'nope'"),
        ((ADD, "--cron", "61 * * * *"), "minute 61 is outside 0-59"),
        ((ADD, "--cron", "* * 0 * *"), "day of month 0 is outside 1-31"),
        ((ADD, "--cron", "0 9 * *"), "expected 5 fields"),
        ((ADD, "--cron", "0 9 * * *", "--tz", "Europe/Nowhere"), "unknown time zone"),
        ((ADD, "--every", "60", "--tz", "Europe/Berlin"), "--tz applies to --cron only"),
        ((ADD, "--every", "0.5"), "every must be 1 s"),
        ((ADD, "--every", "60", "--args", "[1,"), "--args: not JSON"),
        ((ADD, "--every", "60", "--args", '{"a": 1}'), "--args: expected a JSON array"),
        ((ADD, "--every", "60", "--kwargs", "[1]"), "--kwargs: expected a JSON object"),
        ((ADD, "--every", "60", "--args", "[NaN]"), "--args: not JSON"),
        ((ADD, "--every", "60", "--id", "has space"), "use letters, digits"),
        ((ADD, "--every", "60", "--catch-up", "5000"), "catch_up must be 0..1000"),
        ((ADD, "--every", "60", "--id", STATIC_ID), f"schedule '{STATIC_ID}' is static"),
        # The worker's argument check, up front: these would dead-letter every tick.
        ((ADD, "--every", "60"), "--args/--kwargs do not fit tests.testapp.tasks:add: missing"),
        ((ADD, "--every", "60", "--args", "[1, 2, 3]"), "too many positional arguments"),
        ((ADD, "--every", "60", "--args", "[1]", "--kwargs", '{"c": 2}'), "unexpected keyword"),
        ((ADD, "--every", "60", "--args", '["x", 2]'), "do not fit"),
    ],
)
async def test_a_wrong_add_exits_1_with_a_clear_message_and_stores_nothing(
    scheduled: AsyncJobsConfig,
    store: ScheduleStore,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    message: str,
) -> None:
    status, text = await in_thread("schedules", "add", *argv)
    err = capsys.readouterr().err
    assert status == 1 and text == ""
    assert err.startswith("asyncjobs: ") and message in err
    assert await store.list() == []


async def test_unknown_task_suggests_the_closest_names(
    scheduled: AsyncJobsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = await in_thread("schedules", "add", ADD[:-1], "--every", "60", *ARGS)
    assert status == 1 and f"did you mean {ADD}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        (ADD,),  # neither --cron nor --every
        (ADD, "--cron", "* * * * *", "--every", "60"),  # both
        (ADD, "--every", "soon"),
        (ADD, "--every", "60", "--catch-up", "x"),
    ],
)
async def test_bad_usage_exits_2(scheduled: AsyncJobsConfig, argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exited:
        await in_thread("schedules", "add", *argv)
    assert exited.value.code == 2


async def test_remove_errors(
    scheduled: AsyncJobsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = await in_thread("schedules", "remove", "nothing-here")
    assert status == 1
    assert "no dynamic schedule has id 'nothing-here'" in capsys.readouterr().err
    status, _ = await in_thread("schedules", "remove", STATIC_ID)
    assert status == 1
    assert f"schedule '{STATIC_ID}' is static" in capsys.readouterr().err


async def test_list_skips_an_invalid_entry_and_still_exits_0(
    scheduled: AsyncJobsConfig, store: ScheduleStore
) -> None:
    await store.add(every(60).for_task(ADD))
    await store.storage.put("broken", b"\x80\x04not a schedule")  # what add would refuse
    status, text = await in_thread("schedules", "list", "--json")
    assert status == 0
    assert {row["id"] for row in mine(text)} == {STATIC_ID, every(60).for_task(ADD).id}
    status, text = await in_thread("schedules", "remove", "broken", "--json")
    assert (status, orjson.loads(text)) == (0, {"removed": "broken"})


async def test_the_store_url_setting_wins(
    redis_url: str, prefix: str, redis_cleanup: None, free_port: int
) -> None:
    # SCHEDULE_STORE_URL, not the broker's Redis: pointed at a closed port, the CLI says
    # which store it could not reach, and exits 1 (no traceback).
    dead = f"redis://user:secret@127.0.0.1:{free_port}/0"
    settings = {"BROKER_URL": redis_url, "KEY_PREFIX": prefix, "SCHEDULE_STORE_URL": dead}
    async for _ in _configure(settings):
        out = io.StringIO()
        err = io.StringIO()
        status = await asyncio.to_thread(_run_capturing, ["schedules", "list"], out, err)
        assert status == 1
        where = f"schedule store failed at redis://user:***@127.0.0.1:{free_port}/0"
        assert where in err.getvalue()
        assert "secret" not in err.getvalue()


def _run_capturing(argv: list[str], out: io.StringIO, err: io.StringIO) -> int:
    from contextlib import redirect_stderr

    with redirect_stderr(err):
        return run(argv, out=out)


def test_no_store_url_is_a_clear_configuration_error() -> None:
    # RabbitMQ without a result backend: no Redis anywhere to keep schedules in.
    config = load_config({"BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/"}, environ={})
    with pytest.raises(ConfigurationError, match="SCHEDULE_STORE_URL") as raised:
        store_url(config)
    assert "ASYNCJOBS_SCHEDULE_STORE_URL=redis://" in str(raised.value)
    with_backend = load_config(
        {"BROKER_URL": "amqp://127.0.0.1/", "RESULT_BACKEND_URL": "redis://h:6379/1"}, environ={}
    )
    assert store_url(with_backend) == "redis://h:6379/1"
    own = load_config(
        {"BROKER_URL": "redis://h:6379/0", "SCHEDULE_STORE_URL": "redis://s:6379/2"}, environ={}
    )
    assert store_url(own) == "redis://s:6379/2"


async def test_no_store_url_lists_static_schedules_and_refuses_changes(
    capsys: pytest.CaptureFixture[str], prefix: str
) -> None:
    settings = {
        "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/",
        "KEY_PREFIX": prefix,
        "SCHEDULES": [{"TASK": ADD, "EVERY": 60, "ARGS": [1, 2], "ID": STATIC_ID}],
    }
    async for _ in _configure(settings):
        status, text = await in_thread("schedules", "list", "--json")
        assert status == 0 and "no schedule store (SCHEDULE_STORE_URL)" in capsys.readouterr().err
        [static] = mine(text)
        assert (static["paused"], static["last_sent"]) == (False, None)
        for action in ("pause", "resume", "remove"):
            status, _ = await in_thread("schedules", action, STATIC_ID)
            assert status == 1 and "SCHEDULE_STORE_URL" in capsys.readouterr().err
        status, _ = await in_thread("schedules", "add", ADD, "--every", "5", *ARGS)
        assert status == 1 and "SCHEDULE_STORE_URL" in capsys.readouterr().err


async def test_manage_py_and_the_console_script_run_the_same_cli(
    redis_url: str, prefix: str, redis_cleanup: None
) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.django_settings",
        "ASYNCJOBS_BROKER_URL": redis_url,
        "ASYNCJOBS_KEY_PREFIX": prefix,
    }

    def call(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    django = [sys.executable, "-m", "django", "asyncjobs", "schedules"]
    proc = await asyncio.to_thread(
        call, *django, "add", ADD, "--every", "45", *ARGS, "--id", "via-dj"
    )
    assert proc.returncode == 0, proc.stderr
    script = str(Path(sys.executable).with_name("asyncjobs"))
    proc = await asyncio.to_thread(call, script, "schedules", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["id"]: row for row in orjson.loads(proc.stdout)}
    assert rows["via-dj"]["source"] == "dynamic" and rows["via-dj"]["every"] == 45.0
    proc = await asyncio.to_thread(call, *django, "remove", "via-dj")
    assert proc.returncode == 0 and "removed schedule via-dj" in proc.stdout, proc.stderr


async def test_pause_resume_and_run_by_id(
    scheduled: AsyncJobsConfig, store: ScheduleStore, redis_url: str, prefix: str
) -> None:
    await in_thread("schedules", "add", ADD, "--every", "30", *ARGS, "--id", "dyn")
    for schedule_id in (STATIC_ID, "dyn"):  # static and dynamic alike
        status, text = await in_thread("schedules", "pause", schedule_id, "--json")
        paused = orjson.loads(text)
        assert status == 0 and (paused["id"], paused["paused"], paused["next_tick"]) == (
            schedule_id, True, None
        )  # fmt: skip
    assert await store.storage.paused() == {STATIC_ID, "dyn"}
    status, text = await in_thread("schedules", "list")
    static = next(line for line in text.splitlines() if line.startswith(STATIC_ID))
    assert static.split()[-3:] == ["yes", "-", "-"]  # PAUSED, NEXT, LAST_SENT
    status, text = await in_thread("schedules", "resume", STATIC_ID)
    assert (status, text) == (0, f"resumed schedule {STATIC_ID}\n")
    rows = {row["id"]: row for row in mine((await in_thread("schedules", "list", "--json"))[1])}
    assert (rows[STATIC_ID]["paused"], rows["dyn"]["paused"]) == (False, True)
    assert rows[STATIC_ID]["next_tick"] is not None
    # Removing a dynamic schedule forgets its pause.
    await in_thread("schedules", "remove", "dyn")
    assert await store.storage.paused() == set()

    status, text = await in_thread("schedules", "run", STATIC_ID, "--json")
    assert status == 0
    task_id = orjson.loads(text)["task_id"]
    status, plain = await in_thread("schedules", "run", STATIC_ID)
    assert status == 0 and plain.strip() != task_id  # a fresh id each time
    conn = Redis.from_url(redis_url)
    try:
        bodies = [orjson.loads(f[b"data"]) for _, f in await conn.xrange(f"{prefix}:default")]
    finally:
        await conn.aclose()
    assert [(b["task_id"], b["args"]) for b in bodies] == [
        (task_id, [1, 2]),
        (plain.strip(), [1, 2]),
    ]
    assert bodies[0]["labels"]["schedule_id"] == STATIC_ID
    assert await store.storage.last_sent_ms(STATIC_ID) is None  # no tick, no claim


@pytest.mark.parametrize("action", ["pause", "resume", "run", "remove"])
async def test_an_unknown_id_exits_1_and_changes_nothing(
    scheduled: AsyncJobsConfig,
    store: ScheduleStore,
    redis_url: str,
    prefix: str,
    capsys: pytest.CaptureFixture[str],
    action: str,
) -> None:
    status, text = await in_thread("schedules", action, "nope")
    assert (status, text) == (1, "")
    err = capsys.readouterr().err
    assert err.startswith("asyncjobs: ") and "has id 'nope'" in err
    assert await store.storage.paused() == set()
    conn = Redis.from_url(redis_url)
    try:
        assert await conn.xlen(f"{prefix}:default") == 0
    finally:
        await conn.aclose()


def test_schedule_from_fields_parses_text_as_the_cli_does() -> None:
    fields: dict[str, Any] = {
        "task": ADD, "cron": None, "every": "90", "timezone": "", "args_json": "[1, 2]",
        "kwargs_json": "", "schedule_id": "", "catch_up": None,
    }  # fmt: skip
    made = schedule_control.schedule_from_fields(**fields)
    assert made == every(90, args=[1, 2]).for_task(ADD)  # empty form fields: defaults
    for changes, message in [
        ({"every": None}, "give exactly one of --cron EXPR or --every SECONDS"),
        ({"cron": "* * * * *"}, "give exactly one"),
        ({"every": "soon"}, "--every: 'soon' is not a number of seconds"),
        ({"kwargs_json": "[1]"}, "--kwargs: expected a JSON object"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            schedule_control.schedule_from_fields(**(fields | changes))
