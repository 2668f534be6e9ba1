"""``asyncjobs.monitor``: where the registry is kept (``effective_monitor_url``), the
read API's shape (zero-filled minutes, sorting), defensive reading of stored documents,
and the registry hook's counting, on ``memory://``."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest

from asyncjobs import configured
from asyncjobs.app import App
from asyncjobs.brokers.memory.server import discard_server
from asyncjobs.config import load_config
from asyncjobs.errors import ConfigurationError, MonitorUnavailableError, UnknownQueueError
from asyncjobs.monitor import live_workers, queue_history
from asyncjobs.worker.registry import RegistryHooks, minute_of

REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
async def app(prefix: str) -> AsyncIterator[App]:
    url = "memory://monitor"
    settings = {"BROKER_URL": url, "KEY_PREFIX": prefix, "QUEUES": ["default", "other"]}
    async with configured(settings) as made:
        yield made
    discard_server(url, prefix)


def where(**settings: str) -> str | None:
    return load_config(settings, environ={}).effective_monitor_url


def test_the_monitor_lives_in_the_first_url_that_can_keep_it() -> None:
    assert where(BROKER_URL=REDIS) == REDIS
    assert where(BROKER_URL=AMQP) is None
    assert where(BROKER_URL=AMQP, RESULT_BACKEND_URL="redis://h/1") == "redis://h/1"
    assert where(BROKER_URL=AMQP, SCHEDULE_STORE_URL="redis://h/2") == "redis://h/2"
    both = where(BROKER_URL=AMQP, RESULT_BACKEND_URL="redis://h/1", SCHEDULE_STORE_URL=REDIS)
    assert both == "redis://h/1"
    assert where(BROKER_URL="memory://") == "memory://"
    config = load_config({"BROKER_URL": REDIS}, environ={"ASYNCJOBS_MONITOR": "false"})
    assert not config.monitor and App.from_config(config).monitor_store is None
    assert load_config({"BROKER_URL": REDIS}, environ={}).monitor_heartbeat_s == 5.0
    with pytest.raises(ConfigurationError, match="MONITOR_HEARTBEAT"):
        load_config({"BROKER_URL": REDIS, "MONITOR_HEARTBEAT": 0}, environ={})


async def test_history_has_every_minute_oldest_first_zero_filled(app: App) -> None:
    store = app.monitor_store
    assert store is not None
    now = minute_of(time.time())
    await store.add_counts(now, {("default", "succeeded"): 4, ("default", "failed"): 1}, 60)
    await store.add_counts(now - 120, {("default", "dead_lettered"): 2}, 60)
    await store.add_backlog(now - 60, "default", 9, 60)
    history = await queue_history(minutes=5)
    assert set(history) == {"default", "other"}
    points = history["default"]
    assert [p.minute for p in points] == [
        datetime.fromtimestamp(now - 60 * back, UTC) for back in (4, 3, 2, 1, 0)
    ]
    assert [(p.succeeded, p.failed, p.dead_lettered, p.backlog) for p in points] == [
        (0, 0, 0, None),
        (0, 0, 0, None),
        (0, 0, 2, None),
        (0, 0, 0, 9),
        (4, 1, 0, None),
    ]
    assert len((await queue_history(["other"]))["other"]) == 60
    with pytest.raises(UnknownQueueError, match="nope"):
        await queue_history(["nope"])
    for bad in (0, 121, 2.5):
        with pytest.raises(ConfigurationError, match="minutes"):
            await queue_history(minutes=bad)  # type: ignore[arg-type]


async def test_broken_registry_entries_are_skipped_with_a_warning(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    store = app.monitor_store
    assert store is not None
    good = {
        "id": "b:2:x",
        "host": "b",
        "pid": 2,
        "queues": ["default"],
        "concurrency": 10,
        "running": 1,
        "started_at": 1_700_000_000.5,
        "heartbeat_at": 1_700_000_060,
        "version": "0.1.0",
    }
    await store.register("b:2:x", orjson.dumps(good), 30)
    await store.register("a:9:y", orjson.dumps(good | {"id": "a:9:y", "host": "a"}), 30)
    broken = {
        "pickle": b"\x80\x04\x95 not json",
        "list": b"[1, 2]",
        "no-pid": orjson.dumps({k: v for k, v in good.items() if k != "pid"}),
        "negative": orjson.dumps(good | {"running": -1}),
        "huge-time": orjson.dumps(good | {"started_at": 1e300}),
        "bool-pid": orjson.dumps(good | {"pid": True}),
        "long-host": orjson.dumps(good | {"host": "h" * 10_000}),
        "queue-number": orjson.dumps(good | {"queues": [1]}),
    }
    for key, raw in broken.items():
        await store.register(key, raw, 30)
    with caplog.at_level(logging.WARNING, logger="asyncjobs.monitor"):
        found = await live_workers()
    assert [(w.host, w.pid) for w in found] == [("a", 2), ("b", 2)]
    first = found[1]
    assert first.queues == ("default",) and first.running == 1 and first.concurrency == 10
    assert first.started_at == datetime.fromtimestamp(1_700_000_000.5, UTC)
    assert first.heartbeat_at.tzinfo is UTC and first.version == "0.1.0"
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == len(broken)


async def test_monitor_off_says_so(prefix: str) -> None:
    settings = {"BROKER_URL": "memory://off", "KEY_PREFIX": prefix, "MONITOR": False}
    async with configured(settings) as made:
        assert made.monitor_store is None
        with pytest.raises(MonitorUnavailableError, match="MONITOR is false"):
            await live_workers()


async def test_the_hook_counts_in_memory_and_flushes_per_minute(app: App) -> None:
    """Runs only touch a dict; each flush sends what was counted to the minute its
    window started in, and what a failing store refused goes with the next flush."""
    store = app.monitor_store
    assert store is not None

    async def no_inspection(queues: object) -> list[object]:
        return []

    hook = RegistryHooks(
        store,
        no_inspection,  # type: ignore[arg-type]
        queues=["default"],
        all_queues=["default"],
        concurrency=3,
        heartbeat_s=5,
    )
    hook.counts = {("default", "succeeded"): 2, ("default", "dead_lettered"): 1}
    failing = RuntimeError("store down")

    async def refuse(*args: object) -> None:
        raise failing

    real_add = store.add_counts
    store.add_counts = refuse  # type: ignore[method-assign]
    await hook.beat()  # refused: a warning, the counts kept
    store.add_counts = real_add  # type: ignore[method-assign]
    hook.counts = {("default", "succeeded"): 1}
    await hook.beat()
    point = (await queue_history(["default"], minutes=2))["default"]
    assert sum(p.succeeded for p in point) == 3 and sum(p.dead_lettered for p in point) == 1
    document = orjson.loads((await store.workers())[hook.worker_id])
    assert document["concurrency"] == 3 and document["queues"] == ["default"]
    await hook.on_worker_stopped()
    assert await store.workers() == {}
