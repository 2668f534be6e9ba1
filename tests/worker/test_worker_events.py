"""The worker tells its observers what happens, and an observer that fails changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from taskiq.message import TaskiqMessage

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.worker.events import Outcome, WorkerObserver
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks

pytestmark = pytest.mark.redis


class Recorder(WorkerObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def ready(self) -> None:
        self.events.append(("ready",))

    def fetched(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self.events.append(("fetched",))

    def draining(self) -> None:
        self.events.append(("draining",))

    def stopped(self) -> None:
        self.events.append(("stopped",))

    def task_started(self, delivery: Delivery, message: TaskiqMessage) -> None:
        self.events.append(("started", message.task_name.rsplit(":", 1)[1]))

    def task_finished(
        self, delivery: Delivery, message: TaskiqMessage, outcome: Outcome, duration_s: float
    ) -> None:
        assert duration_s >= 0
        self.events.append(("finished", message.task_name.rsplit(":", 1)[1], outcome.value))

    def dead_lettered(self, delivery: Delivery, task_name: str, reason: Reason) -> None:
        self.events.append(("dead", task_name.rsplit(":", 1)[-1], reason.value))


class Broken(WorkerObserver):
    def task_started(self, delivery: Delivery, message: TaskiqMessage) -> None:
        raise RuntimeError("observer bug")


async def test_observers_see_each_step_and_cannot_break_the_worker(
    start_worker: Callable[..., object],
) -> None:
    recorder = Recorder()
    worker: Worker = await start_worker(observers=(Broken(), recorder))  # type: ignore[misc]
    assert (await (await tasks.add.kiq(1, 2)).wait_result(timeout=10)).return_value == 3
    await tasks.always_fails.kiq("o")  # max_attempts=3: retried twice, then dead
    await wait_until(worker.dead, what="a dead letter")
    await worker.stop()
    events = recorder.events
    assert events[0] == ("ready",) and events[-2:] == [("draining",), ("stopped",)]
    assert ("finished", "add", "succeeded") in events
    fails = [e for e in events if e[:2] == ("finished", "always_fails")]
    assert [e[2] for e in fails] == ["retried", "retried", "failed"]
    assert ("dead", "always_fails", "max_attempts") in events
    assert events.count(("started", "always_fails")) == 3
