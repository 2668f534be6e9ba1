"""One hook contract for the task lifecycle: every step is seen, in order, by the hooks of
the app and of the worker; a hook that fails changes nothing; a hook may refuse a send
or postpone a run; hooks come from code or from the HOOKS setting."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from taskiq.message import TaskiqMessage

from asyncjobs import Hooks, Outcome, Postpone, Run, Settlement, configured, current_app
from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import ConfigurationError, Reject
from asyncjobs.hooks import HookSet
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks

pytestmark = pytest.mark.redis


def short(name: str) -> str:
    return name.rsplit(":", 1)[-1]


class Recorder(Hooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    async def on_send(self, message: TaskiqMessage) -> None:
        message.labels["recorded_by"] = "hooks"  # a label the worker will see
        self.events.append(("send", short(message.task_name)))

    async def on_sent(self, message: TaskiqMessage) -> None:
        self.events.append(("sent", short(message.task_name)))

    async def on_worker_ready(self) -> None:
        self.events.append(("ready",))

    async def on_fetched(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self.events.append(("fetched",))

    async def on_worker_draining(self) -> None:
        self.events.append(("draining",))

    async def on_worker_stopped(self) -> None:
        self.events.append(("stopped",))

    async def before_run(self, run: Run) -> None:
        assert run.message.labels.get("recorded_by") == "hooks"
        self.events.append(("before", short(run.task_name), str(run.attempt)))

    async def on_retry(self, run: Run, error: BaseException | None, delay_s: float) -> None:
        assert isinstance(error, RuntimeError) and delay_s >= 0
        self.events.append(("retry", short(run.task_name), str(run.attempt)))

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        assert duration_s >= 0
        self.events.append(("after", short(run.task_name), outcome.value))

    async def on_dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        self.events.append(("dead", short(record.task_name), record.reason.value))

    async def on_settled(self, delivery: Delivery, settlement: Settlement) -> None:
        self.events.append(("settled", settlement.value))


class Broken(Hooks):
    async def before_run(self, run: Run) -> None:
        raise RuntimeError("hook bug")

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        raise RuntimeError("hook bug")


async def test_hooks_see_each_step_in_order_and_a_broken_one_changes_nothing(
    configured: AsyncJobsConfig, start_worker: Callable[..., object]
) -> None:
    recorder = Recorder()
    current_app().add_hooks(Broken(), recorder)
    worker: Worker = await start_worker()  # type: ignore[misc]
    assert (await (await tasks.add.kiq(1, 2)).wait_result(timeout=10)).return_value == 3
    await tasks.always_fails.kiq("o")  # max_attempts=3: retried twice, then dead
    await wait_until(worker.dead, what="a dead letter")
    await worker.stop()
    events = recorder.events
    assert events.index(("send", "add")) < events.index(("sent", "add"))
    assert events.index(("ready",)) < events.index(("before", "add", "1"))
    assert events[-2:] == [("draining",), ("stopped",)]
    add = [e for e in events if e[1:2] == ("add",) or e == ("settled", "acked")]
    assert add[2:] == [("before", "add", "1"), ("settled", "acked"), ("after", "add", "succeeded")]
    runs = [e for e in events if len(e) == 3 and e[1] == "always_fails"]
    assert runs == [
        ("before", "always_fails", "1"),
        ("retry", "always_fails", "1"),
        ("after", "always_fails", "retried"),
        ("before", "always_fails", "2"),
        ("retry", "always_fails", "2"),
        ("after", "always_fails", "retried"),
        ("before", "always_fails", "3"),
        ("dead", "always_fails", "max_attempts"),
        ("after", "always_fails", "failed"),
    ]
    assert events.count(("settled", "retry_scheduled")) == 2
    assert events.count(("settled", "dead_lettered")) == 1


class RefusesOther(Hooks):
    async def on_send(self, message: TaskiqMessage) -> None:
        if message.labels.get("queue_name") == "other":
            raise Reject("no sends to 'other' today")


class SeesErrors(Hooks):
    def __init__(self) -> None:
        self.errors: list[tuple[str | None, type[BaseException]]] = []

    async def on_send_error(self, task_id: str | None, error: BaseException) -> None:
        self.errors.append((task_id, type(error)))


async def test_a_send_hook_may_refuse_and_the_error_hooks_hear_of_it(
    configured: AsyncJobsConfig, conn: Any
) -> None:
    seen = SeesErrors()
    current_app().add_hooks(RefusesOther(), seen)
    with pytest.raises(Reject, match="no sends"):
        await tasks.on_other_queue.kiq("x")
    assert await conn.xlen(f"{configured.key_prefix}:other") == 0  # nothing was sent
    [(task_id, kind)] = seen.errors
    assert task_id and kind is Reject
    await tasks.add.kiq(1, 1)  # other sends go on


class LimitsToOneRunThenWaves(Hooks):
    """A rate limit in its simplest form: the first run of each message waits 0.3 s."""

    def __init__(self) -> None:
        self.postponed: set[str] = set()

    async def before_run(self, run: Run) -> None:
        if run.task_id not in self.postponed:
            self.postponed.add(run.task_id)
            raise Postpone(0.3, "rate limited")


async def test_a_hook_may_postpone_a_run_without_counting_an_attempt(
    configured: AsyncJobsConfig,
    start_worker: Callable[..., object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncjobs.worker.tasks")
    recorder = Recorder()
    current_app().add_hooks(LimitsToOneRunThenWaves(), recorder)
    worker: Worker = await start_worker()  # type: ignore[misc]
    loop = asyncio.get_running_loop()
    began = loop.time()
    job = await tasks.stamp.kiq("later")
    await job.wait_result(timeout=10)
    assert loop.time() - began >= 0.3
    [ran] = await worker.ledger()  # once, after its postponement
    assert ran.startswith("stamp:later:")
    runs = [e for e in recorder.events if e[0] in ("after", "settled")]
    assert runs[:2] == [("settled", "postponed"), ("after", "stamp", "postponed")]
    assert runs[2:] == [("settled", "acked"), ("after", "stamp", "succeeded")]
    # The recorder's before_run comes after the limiter's: it sees only the real run,
    # still the message's first attempt.
    assert [e for e in recorder.events if e[0] == "before"] == [("before", "stamp", "1")]
    logged = [
        r.getMessage().split("] ")[1] for r in caplog.records if job.task_id in r.getMessage()
    ]
    assert logged[:2] == [
        "received from queue default, attempt 1",
        "postponed by a hook for 0.30 s, before attempt 1",
    ]


_wrapped: contextvars.ContextVar[str] = contextvars.ContextVar("wrapped", default="")


class Wraps(Hooks):
    def wrap_task(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if asyncio.iscoroutinefunction(func):

            async def wrapped(*args: Any, **kwargs: Any) -> Any:
                _wrapped.set("async")
                return await func(*args, **kwargs)

            return wrapped
        return func


def test_only_overridden_hooks_are_called_and_wrappers_nest() -> None:
    recorder, wraps = Recorder(), Wraps()
    hooks = HookSet([recorder, wraps])
    assert hooks._before_run == (recorder.before_run,)
    assert hooks._wrap_task == (wraps.wrap_task,)
    assert hooks._on_fetch_error == ()

    async def task() -> str:
        return _wrapped.get()

    assert asyncio.run(hooks.wrap_task(task)()) == "async"
    with pytest.raises(TypeError, match="Hooks"):
        HookSet([object()])  # type: ignore[list-item]


class FromSettings(Hooks):
    pass


async def test_the_hooks_setting_builds_hooks_by_import_path() -> None:
    path = f"{__name__}.FromSettings"
    async with configured({"BROKER_URL": "redis://h/0", "HOOKS": [path]}) as app:
        assert [type(h) for h in app.hooks.hooks] == [FromSettings]
    for bad, words in [
        ("tests.asyncjobs.test_hooks:Nope", "cannot import"),
        ("tests.asyncjobs.test_hooks.short", "not a subclass"),
    ]:
        with pytest.raises(ConfigurationError, match=f"HOOKS: .*{words}"):
            async with configured({"BROKER_URL": "redis://h/0", "HOOKS": [bad]}):
                pass
    with pytest.raises(ConfigurationError, match="HOOKS"):
        async with configured({"BROKER_URL": "redis://h/0", "HOOKS": ["not a path"]}):
            pass
