"""The dynamic schedule store against the real Redis (and memory://): JSON in one hash,
and whatever else is found there skipped with a warning, never unpickled."""

from __future__ import annotations

import inspect
import logging
import pickle
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.brokers.memory.server import discard_server
from asyncjobs.brokers.redis.schedules import RedisScheduleStorage
from asyncjobs.schedules.definitions import Schedule, cron, every
from asyncjobs.schedules.store import ScheduleStore

pytestmark = pytest.mark.redis
LOGGER = "asyncjobs.scheduler"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``store`` runs on every storage (``SCHEDULE_STORE_URL``: Redis, memory), except
    for a test that reads or writes the Redis hash itself (it asks for ``conn`` or
    ``redis_url``): Redis's only."""
    if "store" not in metafunc.fixturenames:
        return
    asks = set(inspect.signature(metafunc.function).parameters)
    storages = ["redis"] if {"conn", "redis_url"} & asks else ["redis", "memory"]
    metafunc.parametrize("store", storages, indirect=True)


@pytest.fixture
async def store(
    request: pytest.FixtureRequest, redis_url: str, prefix: str, redis_cleanup: None
) -> AsyncIterator[ScheduleStore]:
    url = "memory://" if request.param == "memory" else redis_url
    made = ScheduleStore.from_url(url, prefix)
    yield made
    await made.aclose()
    if request.param == "memory":
        discard_server(url, prefix)


def hash_key(store: ScheduleStore) -> str:
    """Where the Redis storage keeps the schedules (its location names it)."""
    storage = store.storage
    assert isinstance(storage, RedisScheduleStorage)
    return storage.key


@pytest.fixture
async def conn(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def nightly() -> Schedule:
    return cron("0 3 * * *", tz="Europe/Berlin", args=[7], id="nightly").for_task("m:cleanup")


def ping() -> Schedule:
    return every(30, kwargs={"host": "db"}).for_task("m:ping")


async def test_add_get_list_remove(store: ScheduleStore) -> None:
    assert await store.list() == []
    added = await store.add(ping())
    assert added.id == ping().id and added.to_dict() == ping().to_dict()
    await store.add(nightly())
    listed = await store.list()
    assert [s.id for s in listed] == sorted([ping().id, "nightly"])  # sorted by id
    assert [s.to_dict() for s in listed] == sorted(
        [ping().to_dict(), nightly().to_dict()], key=lambda d: d["id"]
    )
    got = await store.get("nightly")
    assert got is not None and got.to_dict() == nightly().to_dict()
    assert got == await store.add(nightly())  # add returns the schedule as stored
    assert await store.get("missing") is None
    assert await store.remove("nightly") is True
    assert await store.remove("nightly") is False
    assert [s.id for s in await store.list()] == [ping().id]


async def test_stored_as_plain_json_in_one_hash(store: ScheduleStore, conn: Redis) -> None:
    await store.add(nightly())
    raw = await conn.hget(hash_key(store), "nightly")
    assert raw is not None
    assert orjson.loads(raw) == nightly().to_dict()
    assert hash_key(store).endswith(":schedules")


async def test_add_replaces_the_same_id(store: ScheduleStore) -> None:
    await store.add(nightly())
    changed = cron("30 4 * * *", id="nightly").for_task("m:cleanup")
    await store.add(changed)
    [only] = await store.list()
    assert only.id == "nightly" and only.cron == "30 4 * * *" and only.tz == "UTC"


async def test_two_stores_on_one_prefix_see_the_same_schedules(
    store: ScheduleStore, redis_url: str, prefix: str
) -> None:
    # Every scheduler replica reads the hash the CLI wrote.
    await store.add(ping())
    other = ScheduleStore.from_url(redis_url, prefix)
    try:
        assert [s.id for s in await other.list()] == [ping().id]
        assert await other.remove(ping().id)
    finally:
        await other.aclose()
    assert await store.list() == []


async def test_add_checks_the_task_when_known_tasks_are_given(store: ScheduleStore) -> None:
    known = {"m:ping", "m:cleanup"}
    with pytest.raises(ConfigurationError, match=r"unknown task 'm:pnig'.*did you mean m:ping"):
        await store.add(every(30).for_task("m:pnig"), known_tasks=known)
    with pytest.raises(ConfigurationError, match="a task name is required"):
        await store.add(every(30))  # cron()/every() not bound to a task
    assert await store.list() == []  # nothing stored by a refused add
    assert (await store.add(ping(), known_tasks=known)).id == ping().id
    assert (await store.add(every(5).for_task("not:registered"))).task_name == "not:registered"


class Planted:
    """Unpickling this creates ``marker``: proof that someone called pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (str(self.marker), "w"))


async def test_a_planted_pickle_is_skipped_and_never_unpickled(
    store: ScheduleStore,
    conn: Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The payload is live: unpickling it does create its marker file.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Planted(probe))).close()  # our own payload: an open file
    assert probe.exists()

    calls: list[str] = []

    def refuse(*args: object, **kwargs: object) -> object:
        calls.append("pickle")  # recorded too: a caller could swallow the error
        raise AssertionError("pickle must never be called on stored schedules")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    marker = tmp_path / "marker"
    await store.add(ping())
    await conn.hset(hash_key(store), "evil", pickle.dumps(Planted(marker)))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert [s.id for s in await store.list()] == [ping().id]
        assert await store.get("evil") is None
    assert not marker.exists()
    assert calls == []
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 2
    assert all("'evil'" in w and "not JSON (never unpickled)" in w for w in warnings)
    assert await store.remove("evil")  # removable by the id the warning names


@pytest.mark.parametrize(
    ("field", "body", "reason"),
    [
        ("array", b"[1, 2]", "not a JSON object but a list"),
        ("binary", b"\xff\xfe\x00", "not JSON"),
        ("badcron", {"id": "badcron", "task": "m:f", "cron": "61 * * * *"}, "minute 61"),
        ("notask", {"id": "notask", "every": 60}, "TASK (a task name) is required"),
        ("tasktype", {"id": "tasktype", "task": 5, "every": 60}, "TASK (a task name)"),
        ("argstr", {"id": "argstr", "task": "m:f", "every": 60, "args": "abc"}, "ARGS must"),
        ("extra", {"id": "extra", "task": "m:f", "every": 60, "code": "x"}, "unknown keys"),
        ("badtz", {"id": "badtz", "task": "m:f", "cron": "* * * * *", "tz": "X/Y"}, "time zone"),
        ("moved", {"id": "other", "task": "m:f", "every": 60}, "its id is 'other'"),
        ("badid", {"id": "bad id", "task": "m:f", "every": 60}, "use letters, digits"),
    ],
)
async def test_an_invalid_entry_is_skipped_with_a_warning_naming_it(
    store: ScheduleStore,
    conn: Redis,
    caplog: pytest.LogCaptureFixture,
    field: str,
    body: bytes | dict[str, Any],
    reason: str,
) -> None:
    await store.add(ping())
    await conn.hset(hash_key(store), field, body if isinstance(body, bytes) else orjson.dumps(body))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert [s.id for s in await store.list()] == [ping().id]  # the valid one still listed
    [warning] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert f"{field!r}" in warning and reason in warning and hash_key(store) in warning


async def test_a_long_reason_is_cut_short_in_the_log(
    store: ScheduleStore, conn: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # from_dict quotes the entry in some messages: the log gets an excerpt only.
    huge = {"id": "huge", "task": "m:f", "every": 60, "junk": "x" * 10_000}
    await conn.hset(hash_key(store), "huge", orjson.dumps(huge))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert await store.list() == []
    [warning] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "'huge'" in warning and len(warning) < 400


async def test_add_refuses_what_it_could_not_read_back(store: ScheduleStore) -> None:
    # kwargs is a dict: it can be changed after the schedule was validated.
    changed = every(60, kwargs={"day": "mon"}).for_task("m:f")
    changed.kwargs["day"] = object()  # type: ignore[index]
    with pytest.raises(ConfigurationError, match=r"schedule of m:f: .*not JSON serializable"):
        await store.add(changed)
    assert await store.list() == []
