"""Sending to RabbitMQ three ways, side by side: asyncjobs ``await kiq()``, raw
taskiq-aio-pika's ``kiq()`` (``bench.raw_app.make_broker``) and plain aio-pika
``exchange.publish`` with publisher confirms (mandatory, persistent, a quorum queue),
each one at a time and gathered (``asyncio.gather`` of ``--chunk``).

    python -m bench.amqp_paths [--sends N] [--rounds R] [--sides asyncjobs,raw,aiopika]
                               [--modes seq,gather] [--profile SIDE:MODE]

In each round every side runs both modes, the order of the sides rotating from round
to round; between phases the queues are purged (no worker runs: nothing is consumed).
Per side and mode it prints the median rate (wall clock) and the median CPU time of
this process per send (``time.process_time``): the client's cost, which is what the
sides differ in, whatever else the shared machine runs. The ``aiopika`` side one at a
time is the publisher-confirm round trip: the floor of a sequential ``await kiq()``.
``--profile asyncjobs:gather`` runs cProfile over that side's phases and prints the top.
Each run uses its own names (``ajamqp-<random>``) and deletes its queues and exchanges.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

SEQ, GATHER = "one at a time", "gathered"
Send = Callable[[int], Awaitable[Any]]


@asynccontextmanager
async def _asyncjobs(url: str, name: str) -> Any:
    from asyncjobs import app as app_state
    from asyncjobs import load_config

    settings = {"BROKER_URL": url, "KEY_PREFIX": name, "QUEUES": ["default"]}
    broker = app_state.configure(load_config(settings, environ={})).broker
    from bench.tasksapp.tasks import noop

    await broker.startup()  # this loop holds the client, as an ASGI server's does
    try:
        yield lambda i: noop.kiq(name, i), f"{name}.default"
    finally:
        await broker.shutdown()


@asynccontextmanager
async def _raw(url: str, name: str) -> Any:
    from bench.raw_app import make_broker, register

    broker = make_broker(url, name)
    await broker.startup()
    noop = register(broker)["noop"]
    try:
        yield lambda i: noop.kiq(name, i), name
    finally:
        await broker.shutdown()


@asynccontextmanager
async def _aiopika(url: str, name: str) -> Any:
    import aio_pika

    connection = await aio_pika.connect_robust(url)
    channel = await connection.channel(on_return_raises=True)  # confirms: the default
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(exchange, routing_key=name)
    body = b'{"args":["k",0],"kwargs":{},"labels":{},"task_id":"0","task_name":"bench:noop"}'

    def send(i: int) -> Awaitable[Any]:
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        return exchange.publish(message, routing_key=name, mandatory=True)

    try:
        yield send, name
    finally:
        await connection.close()


SIDES: dict[str, Callable[[str, str], AbstractAsyncContextManager[Any]]] = {
    "asyncjobs": _asyncjobs,
    "raw": _raw,
    "aiopika": _aiopika,
}


def _server_cpu_s() -> float:
    """CPU seconds of the local RabbitMQ node (``beam.smp``), 0 when none is found: what
    RabbitMQ spends per send (other clients of the same node count too)."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "beam.smp":
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


async def _phase(send: Send, mode: str, n: int, chunk: int) -> tuple[float, float, float]:
    """(sends per second, CPU µs of this process per send, of RabbitMQ per send)."""
    server = _server_cpu_s()
    cpu, began = time.process_time(), time.perf_counter()
    if mode == SEQ:
        for i in range(n):
            await send(i)
    else:
        for start in range(0, n, chunk):
            await asyncio.gather(*(send(i) for i in range(start, min(n, start + chunk))))
    wall = time.perf_counter() - began
    used = (time.process_time() - cpu) / n * 1e6
    return n / wall, used, (_server_cpu_s() - server) / n * 1e6


async def _purge(url: str, names: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in names:
            declared = await channel.declare_queue(name, passive=True)
            await declared.purge()
    finally:
        await connection.close()


async def _delete(url: str, run: str, sides: list[str]) -> None:
    import aio_pika
    from aiormq.exceptions import AMQPError

    names = {
        "asyncjobs": ([f"{run}-asyncjobs.default", f"{run}-asyncjobs.default.dead"], True),
        "raw": ([f"{run}-raw", f"{run}-raw.dead_letter"], True),
        "aiopika": ([f"{run}-aiopika"], True),
    }
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for side in sides:
            queues, exchange = names[side]
            for queue in queues:
                try:
                    await channel.queue_delete(queue)
                except AMQPError:
                    channel = await connection.channel()
            if exchange:
                await channel.exchange_delete(f"{run}-{side}")
    finally:
        await connection.close()


async def run(
    url: str,
    sides: list[str],
    modes: list[str],
    n: int,
    rounds: int,
    chunk: int,
    profile: str | None,
) -> dict[tuple[str, str], list[tuple[float, float, float]]]:
    run_name = f"ajamqp-{uuid.uuid4().hex[:8]}"
    found: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    profiler = cProfile.Profile() if profile else None
    try:
        for r in range(rounds):
            order = sides[r % len(sides) :] + sides[: r % len(sides)]
            for side in order:
                async with SIDES[side](url, f"{run_name}-{side}") as (send, queue):
                    await asyncio.gather(*(send(-1 - i) for i in range(chunk)))  # warm up
                    for mode in modes if r % 2 == 0 else modes[::-1]:
                        await _purge(url, [queue])
                        on = profiler is not None and profile == f"{side}:{_short(mode)}"
                        if on and profiler is not None:
                            profiler.enable()
                        found.setdefault((side, mode), []).append(
                            await _phase(send, mode, n, chunk)
                        )
                        if on and profiler is not None:
                            profiler.disable()
    finally:
        await _delete(url, run_name, sides)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    return found


# -- consuming ------------------------------------------------------------------------


async def consume(
    url: str, n: int, rounds: int, prefetch: int, sides: list[str]
) -> dict[str, list[tuple[float, float]]]:
    """Per side, (messages per second, CPU µs per message) of draining ``n`` messages:
    ``aiopika``, a plain consume loop acking each message in its callback; ``transport``,
    asyncjobs' ``AmqpBroker.fetch`` with a task per delivery that acks it (the worker's
    shape without the worker). Both on one quorum queue, ``prefetch`` each."""
    from asyncjobs.brokers.base import TransportOptions
    from asyncjobs.brokers.rabbitmq.broker import AmqpBroker, queue_name

    name = f"ajamqp-{uuid.uuid4().hex[:8]}-consume"
    options = TransportOptions(queues=("default",), default_queue="default", key_prefix=name)
    producer = AmqpBroker(url, options)
    await producer.startup()
    found: dict[str, list[tuple[float, float]]] = {}
    try:
        for r in range(rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                for start in range(0, n, 500):
                    sends = (
                        producer.send(name, "default", b'{"i":%d}' % i, {"task_id": str(i)})
                        for i in range(start, min(n, start + 500))
                    )
                    await asyncio.gather(*sends)
                drain = _drain_aiopika if side == "aiopika" else _drain_transport
                cpu, began = time.process_time(), time.perf_counter()
                await drain(url, queue_name(name, "default"), options, n, prefetch)
                wall = time.perf_counter() - began
                found.setdefault(side, []).append((n / wall, (time.process_time() - cpu) / n * 1e6))
    finally:
        await producer.shutdown()
        await _delete_queues(url, [queue_name(name, "default"), f"{name}.default.dead"], name)
    return found


async def _drain_aiopika(url: str, queue: str, options: Any, n: int, prefetch: int) -> None:
    import aio_pika

    connection = await aio_pika.connect_robust(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    declared = await channel.get_queue(queue, ensure=False)
    done, count = asyncio.Event(), 0

    async def on_message(message: Any) -> None:
        nonlocal count
        await message.ack()
        count += 1
        if count == n:
            done.set()

    await declared.consume(on_message)
    await done.wait()
    await connection.close()


async def _drain_transport(url: str, queue: str, options: Any, n: int, prefetch: int) -> None:
    from asyncjobs.brokers.rabbitmq.broker import AmqpBroker

    broker = AmqpBroker(url, options)
    broker.is_worker_process = True
    broker.receiver_attached = True  # as the worker's receiver does
    await broker.startup()
    await broker.set_capacity(prefetch)
    running: set[asyncio.Task[None]] = set()
    got = 0
    while got < n:
        for delivery in await broker.fetch(prefetch, timeout_s=10.0):
            task = asyncio.create_task(delivery.ack())
            running.add(task)
            task.add_done_callback(running.discard)
            got += 1
    await asyncio.gather(*running)
    if os.environ.get("BENCH_AMQP_VERBOSE"):
        print(f"transport: {broker.acks.frames_sent} ack frames for {n} messages")
    await broker.shutdown()


# -- a worker process ------------------------------------------------------------------


async def worker(url: str, n: int, rounds: int) -> dict[str, list[float]]:
    """An asyncjobs worker process (``taskiq worker``, ``--log-level WARNING``) per round:
    started on a backlog of ``n`` no-op tasks, its drain rate by its own clock (as
    ``make bench``'s processing phase); then, idle, ``n`` more sent (gathered) while it
    drains them: its CPU time per task from idle to drained (as ``bench.monitor_cost``)."""
    import tempfile
    from pathlib import Path

    from bench.monitor_cost import _cpu_s, _idle_cpu_s
    from bench.recorder import Ledger
    from bench.suite import _check, _wait
    from bench.workers import ASYNCJOBS, QUEUES, Producer, Target
    from example.processes import delete_amqp_queues

    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"ajamqp-{uuid.uuid4().hex[:8]}-worker"
    target = Target(ASYNCJOBS, "amqp", url, redis_url, name)
    ledger = Ledger(redis_url)
    found: dict[str, list[float]] = {"backlog /s": [], "CPU µs/task": [], "while sent /s": []}
    try:
        with tempfile.TemporaryDirectory(prefix="asyncjobs-bench-") as tmp:
            async with Producer(target) as producer:
                for r in range(rounds):
                    backlog, sent = f"{name}:{r}:backlog", f"{name}:{r}:sent"
                    await _send(producer, backlog, n)
                    process = target.start_worker(Path(tmp), f"w{r}", log_level="WARNING")
                    try:
                        tally = await _wait(ledger, backlog, n, process)
                        before = await _idle_cpu_s(process)
                        began = time.perf_counter()
                        await _send(producer, sent, n)
                        tally2 = await _wait(ledger, sent, n, process)
                        used = _cpu_s(process) - before
                        wall = time.perf_counter() - began
                    finally:
                        process.stop(timeout_s=20)
                    for problem in (_check(tally, n), _check(tally2, n)):
                        if problem:
                            raise RuntimeError(problem)
                    found["backlog /s"].append(n / tally.span_s)
                    found["CPU µs/task"].append(used / n * 1e6)
                    found["while sent /s"].append(n / wall)
    finally:
        await ledger.delete_prefix(name)
        await ledger.close()
        await delete_amqp_queues(url, name, QUEUES)
    return found


async def _send(producer: Any, key: str, n: int) -> None:
    for start in range(0, n, 100):
        await asyncio.gather(
            *(producer.kiq("noop", key, i) for i in range(start, min(n, start + 100)))
        )


async def _delete_queues(url: str, queues: list[str], exchange: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


def _short(mode: str) -> str:
    return "seq" if mode == SEQ else "gather"


def _report(found: dict[tuple[str, str], list[tuple[float, float, float]]]) -> None:
    print(
        f"{'side':<10} {'mode':<14} {'median /s':>10} {'CPU µs/send':>12} "
        f"{'RabbitMQ µs':>12}   rates of the rounds"
    )
    for (side, mode), runs in found.items():
        rate = statistics.median(r for r, _, _ in runs)
        cpu = statistics.median(c for _, c, _ in runs)
        server = statistics.median(b for _, _, b in runs)
        each = ", ".join(f"{r:,.0f}" for r, _, _ in runs)
        print(f"{side:<10} {mode:<14} {rate:>10,.0f} {cpu:>12.1f} {server:>12.1f}   {each}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RabbitMQ send paths: asyncjobs, raw, aio-pika")
    parser.add_argument("--sends", type=int, default=5_000, help="sends per side, mode, round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=100, help="sends gathered at once")
    parser.add_argument("--sides", default="asyncjobs,raw,aiopika")
    parser.add_argument("--modes", default="seq,gather", help="seq, gather or both")
    parser.add_argument("--consume", type=int, help="drain N messages instead (per side, round)")
    parser.add_argument("--worker", type=int, help="a worker process drains N tasks, twice")
    parser.add_argument("--prefetch", type=int, default=500, help="consumers' prefetch")
    parser.add_argument("--consumers", default="aiopika,transport", help="with --consume")
    parser.add_argument("--profile", help="side:seq or side:gather, e.g. asyncjobs:gather")
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    import uvloop

    if args.worker:
        figures = uvloop.run(worker(url, args.worker, args.rounds))
        for figure, values in figures.items():
            each = ", ".join(f"{v:,.1f}" for v in values)
            print(f"worker {figure:<14} median {statistics.median(values):>9,.1f}   ({each})")
        return 0
    if args.consume:
        drained = uvloop.run(
            consume(url, args.consume, args.rounds, args.prefetch, args.consumers.split(","))
        )
        print(f"{'consumer':<10} {'median /s':>10} {'CPU µs/msg':>11}   rates of the rounds")
        for side, runs in drained.items():
            rate, cpu = statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs)
            each = ", ".join(f"{r:,.0f}" for r, _ in runs)
            print(f"{side:<10} {rate:>10,.0f} {cpu:>11.1f}   {each}")
        return 0
    sides = [s for s in args.sides.split(",") if s]
    modes = [SEQ if m == "seq" else GATHER for m in args.modes.split(",") if m]
    found = uvloop.run(run(url, sides, modes, args.sends, args.rounds, args.chunk, args.profile))
    _report(found)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
