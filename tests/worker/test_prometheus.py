"""Prometheus text exposition (0.0.4) of the worker's metrics, parsed back line by line."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from taskiq.message import TaskiqMessage

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import DeadLetter, Reason
from asyncjobs.brokers.envelope import Envelope
from asyncjobs.config import load_config
from asyncjobs.hooks import Outcome, Run
from asyncjobs.worker.health import HealthHooks
from asyncjobs.worker.metrics import MetricsHooks
from asyncjobs.worker.probe_server import PROMETHEUS_CONTENT_TYPE, ProbeServer
from asyncjobs.worker.prometheus import CONTENT_TYPE, PrometheusReader, metric_name, render
from asyncjobs.worker.prometheus import metrics_setup as setup

# -- a strict reader of the text format --------------------------------------------
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
HELP = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
VALUE = re.compile(r"^(?:[+-]?Inf|NaN|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$")
Labels = frozenset[tuple[str, str]]


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def parse_labels(text: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(text):
        match = LABEL.match(text, position)
        assert match, f"bad labels at {text[position:]!r}"
        yield match.group(1), unescape(match.group(2))
        position = match.end()


def parse(body: bytes) -> Exposition:
    """Every line checked against format 0.0.4; samples grouped under their TYPE line."""
    text = body.decode("utf-8")
    assert text == "" or text.endswith("\n")
    parsed, family = Exposition(), ""
    for line in text.splitlines():
        if match := HELP.match(line):
            assert match.group(1) not in parsed.helps, f"HELP twice for {match.group(1)}"
            parsed.helps[match.group(1)] = unescape(match.group(2))
        elif match := TYPE.match(line):
            family = match.group(1)
            assert family not in parsed.types, f"family {family} split"
            parsed.types[family] = match.group(2)
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            allowed = {family}
            if parsed.types.get(family) == "histogram":
                allowed = {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
            assert name in allowed, f"{name} outside its family {family}"
            assert VALUE.match(value), f"bad value {value!r}"
            key = (name, frozenset(parse_labels(labels or "")))
            assert key not in parsed.samples, f"duplicate sample {line!r}"
            parsed.samples[key] = float(value)
    for name, kind in parsed.types.items():
        assert name in parsed.helps
        if kind == "counter":
            assert name.endswith("_total")
        if kind == "histogram":
            check_histogram(parsed, name)
    return parsed


def check_histogram(parsed: Exposition, name: str) -> None:
    """Buckets cumulative, ending in +Inf == _count, for every label set."""
    by_series: dict[Labels, list[tuple[float, float]]] = {}
    for labels, count in parsed.series(f"{name}_bucket").items():
        rest = frozenset((k, v) for k, v in labels if k != "le")
        le = dict(labels)["le"]
        by_series.setdefault(rest, []).append((float(le), count))
    for rest, buckets in by_series.items():
        counts = [count for _, count in sorted(buckets)]
        assert counts == sorted(counts), f"{name}{dict(rest)} buckets not cumulative"
        assert sorted(buckets)[-1][0] == float("inf")
        assert counts[-1] == parsed.samples[(f"{name}_count", rest)]
        assert (f"{name}_sum", rest) in parsed.samples


# -- the worker's events, without a broker -----------------------------------------
class FakeDelivery(Delivery):
    async def _ack(self) -> None:
        pass

    async def _dead_letter(self, record: DeadLetter, payload: bytes) -> None:
        pass

    async def _hand_back(self) -> None:
        pass

    async def _republish(self, body: bytes) -> None:
        pass

    async def _retry_at(self, body: bytes, due_unix_s: float) -> None:
        pass


def task_message(name: str) -> TaskiqMessage:
    return TaskiqMessage(task_id="id", task_name=name, labels={}, args=[], kwargs={})


def prometheus_setup() -> tuple[MetricsHooks, PrometheusReader]:
    config = load_config({"BROKER_URL": "memory://", "PROMETHEUS": True}, environ={})
    observer, reader = setup(config)
    assert reader is not None
    return observer, reader


def run_of(delivery: Delivery, name: str) -> Run:
    message = task_message(name)
    return Run(delivery, message, Envelope.read(message.labels))


async def test_renders_the_worker_metrics() -> None:
    observer, reader = prometheus_setup()
    assert parse(render(reader)).samples == {}  # nothing happened yet
    ok = FakeDelivery(b"", "default", 1, enqueued_at=time.time() - 45)  # a 30..60 s wait
    bad = FakeDelivery(b"", "emails", 1)  # no enqueued_at: no queue wait recorded
    await observer.on_fetched([ok, bad])
    add_run, send_run = run_of(ok, "shop:add"), run_of(bad, "shop:send")
    await observer.before_run(add_run)
    await observer.before_run(send_run)
    running = parse(render(reader))
    assert running.series("asyncjobs_tasks_running") == {
        frozenset({("queue", "default"), ("task", "shop:add")}): 1,
        frozenset({("queue", "emails"), ("task", "shop:send")}): 1,
    }
    await observer.after_run(add_run, Outcome.SUCCEEDED, None, 0.2)
    await observer.after_run(send_run, Outcome.RETRIED, RuntimeError("x"), 3.0)

    parsed = parse(render(reader))
    add, send = {"queue": "default", "task": "shop:add"}, {"queue": "emails", "task": "shop:send"}
    assert parsed.types == {
        "asyncjobs_messages_received_total": "counter",
        "asyncjobs_tasks_started_total": "counter",
        "asyncjobs_tasks_succeeded_total": "counter",
        "asyncjobs_tasks_failed_total": "counter",
        "asyncjobs_tasks_retried_total": "counter",
        "asyncjobs_task_duration_seconds": "histogram",
        "asyncjobs_task_queue_wait_seconds": "histogram",
        "asyncjobs_tasks_running": "gauge",
    }
    assert parsed.helps["asyncjobs_tasks_running"] == "Tasks running now"
    assert parsed.series("asyncjobs_messages_received_total") == {
        frozenset({("queue", "default")}): 1,
        frozenset({("queue", "emails")}): 1,
    }
    assert parsed.value("asyncjobs_tasks_started_total", **add) == 1
    assert parsed.value("asyncjobs_tasks_succeeded_total", **add) == 1
    assert parsed.series("asyncjobs_tasks_failed_total") == {frozenset(send.items()): 1}
    assert parsed.value("asyncjobs_tasks_retried_total", **send) == 1
    assert parsed.value("asyncjobs_tasks_running", **add) == 0
    duration = "asyncjobs_task_duration_seconds"
    assert parsed.value(f"{duration}_bucket", **add, le="0.1") == 0
    assert parsed.value(f"{duration}_bucket", **add, le="0.25") == 1
    assert parsed.value(f"{duration}_bucket", **add, le="+Inf") == 1
    assert parsed.value(f"{duration}_bucket", **send, le="2.5") == 0
    assert parsed.value(f"{duration}_bucket", **send, le="5.0") == 1
    assert parsed.value(f"{duration}_sum", **send) == 3.0
    assert parsed.value(f"{duration}_count", **send) == 1
    wait = "asyncjobs_task_queue_wait_seconds"
    assert parsed.series(f"{wait}_count") == {frozenset(add.items()): 1}
    assert parsed.value(f"{wait}_bucket", **add, le="30.0") == 0
    assert parsed.value(f"{wait}_bucket", **add, le="60.0") == 1
    assert 45 <= parsed.value(f"{wait}_sum", **add) < 50

    await observer.on_dead_letter(bad, DeadLetter(b"", "emails", Reason.UNDECODABLE))
    dead = parse(render(reader)).series("asyncjobs_tasks_dead_lettered_total")
    assert dead == {frozenset({("queue", "emails"), ("task", ""), ("reason", "undecodable")}): 1}


@pytest.mark.parametrize("ending", ["settled", "abandoned"])
async def test_a_delivery_that_was_settled_no_longer_counts_as_running(ending: str) -> None:
    # The receiver may fail while settling and never report the end of the run; or it
    # may give up on a delivery it could not settle or hand back (the broker redelivers).
    observer, reader = prometheus_setup()
    delivery = FakeDelivery(b"", "default", 1)
    await observer.before_run(run_of(delivery, "shop:add"))
    assert (
        parse(render(reader)).value("asyncjobs_tasks_running", queue="default", task="shop:add")
        == 1
    )
    if ending == "settled":
        await delivery.ack()
    else:
        delivery.abandon()
    assert (
        parse(render(reader)).value("asyncjobs_tasks_running", queue="default", task="shop:add")
        == 0
    )


def own_provider(*views: View) -> tuple[MeterProvider, PrometheusReader]:
    reader = PrometheusReader()
    return MeterProvider(metric_readers=[reader], views=views), reader


def test_label_values_are_escaped_and_names_sanitized() -> None:
    provider, reader = own_provider()
    counter = provider.get_meter("test").create_counter("http.requests-made", unit="{request}")
    tricky = 'C:\\dir "quoted"\nnext line'
    counter.add(2, {"path": tricky, "9-bad.key": "v", "flag": True})
    body = render(reader)
    assert b'path="C:\\\\dir \\"quoted\\"\\nnext line"' in body  # escaped on the wire
    parsed = parse(body)
    assert parsed.value("http_requests_made_total", path=tricky, _9_bad_key="v", flag="true") == 2
    provider.shutdown()


def test_histogram_buckets_are_cumulative_with_inf() -> None:
    bounds = ExplicitBucketHistogramAggregation((1.0, 2.0, 5.0))
    provider, reader = own_provider(View(instrument_name="job.latency", aggregation=bounds))
    histogram = provider.get_meter("test").create_histogram("job.latency", unit="s")
    for seconds in (0.5, 1.5, 1.5, 3.0, 10.0):
        histogram.record(seconds, {"kind": "a"})
    histogram.record(1.0, {"kind": "b"})  # on a bound: le is inclusive
    parsed = parse(render(reader))
    assert parsed.types == {"job_latency_seconds": "histogram"}
    buckets = {
        dict(labels)["le"]: count
        for labels, count in parsed.series("job_latency_seconds_bucket").items()
        if ("kind", "a") in labels
    }
    assert buckets == {"1.0": 1, "2.0": 3, "5.0": 4, "+Inf": 5}
    assert parsed.value("job_latency_seconds_sum", kind="a") == 16.5
    assert parsed.value("job_latency_seconds_count", kind="a") == 5
    assert parsed.value("job_latency_seconds_bucket", kind="b", le="1.0") == 1
    provider.shutdown()


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("asyncjobs.task.duration", "s", "asyncjobs_task_duration_seconds"),
        ("asyncjobs.tasks.started", "{task}", "asyncjobs_tasks_started"),
        ("payload.size", "By", "payload_size_bytes"),
        ("lag_seconds", "s", "lag_seconds"),  # no double suffix
        ("2xx.count", "", "_2xx_count"),
        ("a..b", "1", "a_b"),
    ],
)
def test_metric_names(name: str, unit: str, expected: str) -> None:
    assert metric_name(name, unit) == expected


def test_served_at_metrics_by_the_probe_server() -> None:
    observer, reader = prometheus_setup()
    asyncio.run(observer.on_fetched([FakeDelivery(b"", "default", 1)]))
    server = ProbeServer(0, HealthHooks(10.0), metrics=partial(render, reader), host="127.0.0.1")
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == CONTENT_TYPE == PROMETHEUS_CONTENT_TYPE
            parsed = parse(response.read())
    finally:
        server.stop()
    assert parsed.value("asyncjobs_messages_received_total", queue="default") == 1
