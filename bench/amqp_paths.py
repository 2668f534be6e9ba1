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


async def _phase(send: Send, mode: str, n: int, chunk: int) -> tuple[float, float]:
    """(sends per second, CPU µs of this process per send)."""
    cpu, began = time.process_time(), time.perf_counter()
    if mode == SEQ:
        for i in range(n):
            await send(i)
    else:
        for start in range(0, n, chunk):
            await asyncio.gather(*(send(i) for i in range(start, min(n, start + chunk))))
    wall = time.perf_counter() - began
    return n / wall, (time.process_time() - cpu) / n * 1e6


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
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    run_name = f"ajamqp-{uuid.uuid4().hex[:8]}"
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
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


def _short(mode: str) -> str:
    return "seq" if mode == SEQ else "gather"


def _report(found: dict[tuple[str, str], list[tuple[float, float]]]) -> None:
    print(f"{'side':<10} {'mode':<14} {'median /s':>10} {'CPU µs/send':>12}   rates of the rounds")
    for (side, mode), runs in found.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        each = ", ".join(f"{r:,.0f}" for r, _ in runs)
        print(f"{side:<10} {mode:<14} {rate:>10,.0f} {cpu:>12.1f}   {each}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RabbitMQ send paths: asyncjobs, raw, aio-pika")
    parser.add_argument("--sends", type=int, default=5_000, help="sends per side, mode, round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=100, help="sends gathered at once")
    parser.add_argument("--sides", default="asyncjobs,raw,aiopika")
    parser.add_argument("--modes", default="seq,gather", help="seq, gather or both")
    parser.add_argument("--profile", help="side:seq or side:gather, e.g. asyncjobs:gather")
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    import uvloop

    sides = [s for s in args.sides.split(",") if s]
    modes = [SEQ if m == "seq" else GATHER for m in args.modes.split(",") if m]
    found = uvloop.run(run(url, sides, modes, args.sends, args.rounds, args.chunk, args.profile))
    _report(found)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
