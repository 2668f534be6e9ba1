"""Worker metrics: real tasks through a real worker, read back from the OpenTelemetry SDK.

Each test gives the worker a ``MetricsHooks`` on an SDK ``MeterProvider`` read by an
``InMemoryMetricReader``, and checks exact values by attribute set, on both transports.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)

from asyncjobs import App, current_broker
from asyncjobs.config import load_config
from asyncjobs.worker.metrics import DURATION_BUCKETS_S, MetricsHooks
from asyncjobs.worker.process_hooks import worker_hooks
from asyncjobs.worker.prometheus import PrometheusReader, metrics_setup
from tests.support.helpers import wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks
from tests.worker.test_prometheus import FakeDelivery
from tests.worker.test_receiver_contract import publish_raw

ADD = "tests.testapp.tasks:add"
FAILS = "tests.testapp.tasks:always_fails"
SLEEPS = "tests.testapp.tasks:sleeps"
Key = frozenset[tuple[str, str]]


def key(task: str | None = None, queue: str = "default", **extra: str) -> Key:
    attributes = {"queue": queue, **extra}
    if task is not None:
        attributes["task"] = task
    return frozenset(attributes.items())


class Metrics:
    """The observer under test and what its instruments hold now."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.observer = MetricsHooks(self.provider)

    def read(self) -> dict[str, dict[Key, Any]]:
        """{instrument: {attributes: value (sums) or data point (histograms)}}."""
        found: dict[str, dict[Key, Any]] = {}
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                assert scope_metrics.scope.name == "asyncjobs"
                for metric in scope_metrics.metrics:
                    points = found.setdefault(metric.name, {})
                    for point in metric.data.data_points:
                        attributes = frozenset((point.attributes or {}).items())
                        if isinstance(point, NumberDataPoint):
                            points[attributes] = point.value
                        else:
                            points[attributes] = point
        return found

    def counts(self, name: str) -> dict[Key, int]:
        """A histogram's observation counts by attributes."""
        return {k: p.count for k, p in self.read().get(name, {}).items()}

    async def until(self, name: str, attributes: Key, value: int) -> None:
        async def reached() -> bool:
            point = self.read().get(name, {}).get(attributes)
            return (point.count if isinstance(point, HistogramDataPoint) else point) == value

        await wait_until(reached, timeout=20, what=f"{name}{dict(attributes)} == {value}")

    def shutdown(self) -> None:
        self.provider.shutdown()


@pytest.fixture
async def metrics() -> AsyncIterator[Metrics]:
    recorded = Metrics()
    yield recorded
    recorded.shutdown()


async def test_counts_every_outcome_and_dead_letter_by_queue_and_task(
    start_any_worker: Callable[..., object], metrics: Metrics
) -> None:
    worker: Worker = await start_any_worker(hooks=(metrics.observer,))  # type: ignore[misc]
    assert (await (await tasks.add.kiq(1, 2)).wait_result(timeout=15)).return_value == 3
    await tasks.always_fails.kiq("m")  # max_attempts=3: retried twice, then dead-lettered
    await publish_raw(b"\xff not json")
    unknown = {"task_id": "u", "task_name": "gone:task", "labels": {}, "args": [], "kwargs": {}}
    await publish_raw(orjson.dumps(unknown))
    await metrics.until("asyncjobs.tasks.failed", key(FAILS), 3)
    await wait_until(lambda: _count(worker, 3), timeout=15, what="three dead letters")

    values = metrics.read()
    assert values["asyncjobs.messages.received"] == {key(): 1 + 3 + 2}
    assert values["asyncjobs.tasks.started"] == {key(ADD): 1, key(FAILS): 3}
    assert values["asyncjobs.tasks.succeeded"] == {key(ADD): 1}
    assert values["asyncjobs.tasks.failed"] == {key(FAILS): 3}  # every failed attempt
    assert values["asyncjobs.tasks.retried"] == {key(FAILS): 2}
    assert values["asyncjobs.tasks.dead_lettered"] == {
        key(FAILS, reason="max_attempts"): 1,
        key("", reason="undecodable"): 1,  # before running: no task name yet
        key("gone:task", reason="unknown_task"): 1,
    }
    assert "asyncjobs.tasks.cut_off" not in values  # no data point without an event
    assert values["asyncjobs.tasks.running"] == {key(ADD): 0, key(FAILS): 0}
    assert metrics.counts("asyncjobs.task.duration") == {key(ADD): 1, key(FAILS): 3}
    assert metrics.counts("asyncjobs.task.queue_wait") == {key(ADD): 1, key(FAILS): 3}
    duration = values["asyncjobs.task.duration"][key(ADD)]
    assert 0 < duration.sum < 5
    # The SDK's default buckets end at 10 s; ours reach into minutes (advisory).
    assert tuple(duration.explicit_bounds) == DURATION_BUCKETS_S


async def _count(worker: Worker, expected: int) -> bool:
    return len(await worker.dead()) == expected


@pytest.mark.parametrize("delay_s", [2])
async def test_queue_wait_of_a_delayed_message_starts_when_it_is_due(
    start_any_worker: Callable[..., object], metrics: Metrics, delay_s: int
) -> None:
    # 2 s: RabbitMQ stamps whole seconds, so the wait counted from the send (>= 2 s)
    # stays apart from the wait counted from the due time (< 1 s + a little).
    await start_any_worker(hooks=(metrics.observer,))
    sent = time.time()
    job = await tasks.add.kicker().with_labels(delay=delay_s).kiq(4, 5)
    assert (await job.wait_result(timeout=15)).return_value == 9
    assert time.time() - sent >= delay_s
    await metrics.until("asyncjobs.task.queue_wait", key(ADD), 1)
    waited = metrics.read()["asyncjobs.task.queue_wait"][key(ADD)].sum
    resolution = 1.0 if current_broker().transport_name == "rabbitmq" else 0.0  # type: ignore[attr-defined]
    assert 0 <= waited < 0.5 + resolution, f"waited {waited:.3f} s after it was due"


async def test_queue_wait_counts_the_time_behind_a_busy_worker(
    start_any_worker: Callable[..., object], metrics: Metrics
) -> None:
    worker: Worker = await start_any_worker(hooks=(metrics.observer,), concurrency=1)  # type: ignore[misc]
    await tasks.sleeps.kiq("busy", 1.2)
    await wait_until(lambda: _started(worker, "busy"), what="the busy task to start")
    queued = time.time()
    job = await tasks.add.kiq(2, 3)  # waits for the only slot
    assert (await job.wait_result(timeout=15)).return_value == 5
    behind = time.time() - queued
    waited = metrics.read()["asyncjobs.task.queue_wait"][key(ADD)].sum
    # Never less than the true wait (RabbitMQ rounds the send time down); at most a
    # second more on RabbitMQ.
    assert behind - 0.4 <= waited <= behind + 1.0, (waited, behind)
    assert waited >= 0.7


async def _started(worker: Worker, tag: str) -> bool:
    return f"start:{tag}" in await worker.ledger()


async def test_running_gauge_follows_a_task_that_is_cut_off_at_the_drain_deadline(
    start_any_worker: Callable[..., object], metrics: Metrics
) -> None:
    worker: Worker = await start_any_worker(hooks=(metrics.observer,), drain_timeout_s=0.3)  # type: ignore[misc]
    await tasks.sleeps.kiq("cut", 30)
    await metrics.until("asyncjobs.tasks.running", key(SLEEPS), 1)
    await worker.stop()
    values = metrics.read()
    assert values["asyncjobs.tasks.running"] == {key(SLEEPS): 0}
    assert values["asyncjobs.tasks.cut_off"] == {key(SLEEPS): 1}
    assert values["asyncjobs.tasks.started"] == {key(SLEEPS): 1}
    assert "asyncjobs.tasks.failed" not in values and "asyncjobs.tasks.succeeded" not in values
    assert metrics.counts("asyncjobs.task.duration") == {key(SLEEPS): 1}


async def test_metrics_go_to_the_global_provider_unless_prometheus_is_on() -> None:
    plain = load_config({"BROKER_URL": "memory://"}, environ={})
    observer, reader = metrics_setup(plain)
    assert isinstance(observer, MetricsHooks) and reader is None
    assert any(isinstance(o, MetricsHooks) for o in worker_hooks(App.from_config(plain)))

    scraped = load_config({"BROKER_URL": "memory://", "PROMETHEUS": True}, environ={})
    observer, reader = metrics_setup(scraped)
    assert isinstance(reader, PrometheusReader)
    assert reader.read() is None  # nothing recorded yet
    await observer.on_fetched([FakeDelivery(b"", "default", 1)])
    data = reader.read()  # the observer records into the reader's provider, our own
    assert data is not None
    [metric] = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    assert metric.name == "asyncjobs.messages.received"
    assert [p.value for p in metric.data.data_points] == [1]


async def test_a_stopping_worker_exports_what_it_recorded(
    start_worker: Callable[..., object],
) -> None:
    """A worker child ends with os._exit: the SDK's flush at exit never runs there, so the
    worker flushes when it stops, or the last export interval would be lost."""
    exported: list[str] = []

    class Collecting(MetricExporter):
        def __init__(self) -> None:
            super().__init__()

        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            for resource in metrics_data.resource_metrics:
                for scope in resource.scope_metrics:
                    exported.extend(m.name for m in scope.metrics)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    hourly = PeriodicExportingMetricReader(Collecting(), export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[hourly])
    try:
        worker: Worker = await start_worker(hooks=(MetricsHooks(provider),))  # type: ignore[misc]
        assert (await (await tasks.add.kiq(2, 2)).wait_result(timeout=10)).return_value == 4
        assert exported == []  # nothing exported yet: the next interval is an hour away
        await worker.stop()
        assert "asyncjobs.tasks.succeeded" in exported
    finally:
        provider.shutdown()
