"""The floor of enqueue->start latency on this machine: the same measurement as
``make bench``'s latency phase (one message at a time, ``--gap`` apart, to an idle
consumer in another process; latency = its ``time.time()`` on receipt minus the
producer's just before the send), with no task queue at all:

- ``redis``: ``XADD`` (redis-py, hiredis) to a consumer blocked in ``XREADGROUP``, as an
  asyncjobs worker waits; it ``XACK``s each one.
- ``redis-sockets``: the same commands over plain blocking sockets on both sides (no
  event loop, no client library): what this machine's scheduling and Redis take.
- ``amqp``: a persistent, mandatory publish with publisher confirms to a quorum queue
  (aio-pika, as ``await kiq()`` does), to an aio-pika consumer (prefetch 100) that acks.

    python -m bench.latency_floor [--brokers redis,redis-sockets,amqp] [--messages 300] [--gap 0.01]
                                  [--rounds 3]

What is left between this and asyncjobs' figure is asyncjobs' (and taskiq's) own: the
message built and sent, decoded, dispatched, the task started. Both processes run on
uvloop, as the bench's do. Each run uses its own stream or queue and deletes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
GROUP = "floor"
Send = Callable[[], Awaitable[object]]


def _url(broker: str) -> str:
    if broker.startswith("redis"):
        return os.environ.get("BENCH_REDIS_URL", REDIS_URL)
    return os.environ.get("BENCH_AMQP_URL", AMQP_URL)


# -- the consumer (a process of its own) ---------------------------------------------
async def consume_redis(url: str, name: str, n: int) -> list[float]:
    from redis.asyncio import Redis

    latencies: list[float] = []
    async with Redis.from_url(url) as redis:
        await redis.xgroup_create(name, GROUP, id="$", mkstream=True)
        print("ready", flush=True)
        while len(latencies) < n:
            reply = await redis.xreadgroup(GROUP, "c", {name: ">"}, count=100, block=10_000)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    latencies.append(time.time() - float(fields[b"sent"]))
                    await redis.xack(name, GROUP, entry_id)
    return latencies


def consume_redis_sockets(url: str, name: str, n: int) -> list[float]:
    latencies: list[float] = []
    with _RespSocket(url) as redis:
        redis.call("XGROUP", "CREATE", name, GROUP, "$", "MKSTREAM")
        print("ready", flush=True)
        while len(latencies) < n:
            read = ("XREADGROUP", "GROUP", GROUP, "c", "COUNT", 1, "BLOCK", 10_000)
            reply = redis.call(*read, "STREAMS", name, ">")
            now = time.time()
            start = reply.index(b"sent\r\n$") + 7  # the value's bulk string header
            value = reply.index(b"\r\n", start) + 2
            latencies.append(now - float(reply[value : reply.index(b"\r\n", value)]))
    return latencies


class _RespSocket:
    """A blocking socket speaking just enough RESP: one command, its whole reply (these
    replies each arrive in one read here: small, on loopback)."""

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 6379)

    def __enter__(self) -> _RespSocket:
        self.sock = socket.create_connection(self.address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def call(self, *args: object) -> bytes:
        parts = [str(a).encode() for a in args]
        packed = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(packed)
        reply = self.sock.recv(65536)
        if reply.startswith(b"-"):
            raise RuntimeError(reply.decode(errors="replace").strip())
        return reply


async def consume_amqp(url: str, name: str, n: int) -> list[float]:
    import aio_pika

    latencies: list[float] = []
    done = asyncio.Event()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            latencies.append(time.time() - float(message.body))
            await message.ack()
            if len(latencies) >= n:
                done.set()

        await queue.consume(on_message)
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), timeout=60 + n)
    return latencies


CONSUMERS: dict[str, Callable[[str, str, int], Any]] = {
    "redis": consume_redis,
    "redis-sockets": consume_redis_sockets,
    "amqp": consume_amqp,
}


# -- the producer (this process) -----------------------------------------------------
@asynccontextmanager
async def _redis_sender(url: str, name: str) -> AsyncIterator[Send]:
    from redis.asyncio import Redis

    async with Redis.from_url(url) as redis:
        try:
            yield lambda: redis.xadd(name, {"sent": repr(time.time())})
        finally:
            await redis.delete(name)


@asynccontextmanager
async def _redis_sockets_sender(url: str, name: str) -> AsyncIterator[Send]:
    def send() -> bytes:  # the clock read in the thread, just before the write
        return redis.call("XADD", name, "*", "sent", repr(time.time()))

    with _RespSocket(url) as redis:
        try:
            yield lambda: asyncio.to_thread(send)
        finally:
            redis.call("DEL", name)


@asynccontextmanager
async def _amqp_sender(url: str, name: str) -> AsyncIterator[Send]:
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(on_return_raises=True)  # confirms: the default
        exchange = channel.default_exchange

        def send() -> Awaitable[object]:
            body = repr(time.time()).encode()
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            return exchange.publish(message, routing_key=name, mandatory=True)

        try:
            yield send
        finally:
            await channel.queue_delete(name)


SENDERS = {"redis": _redis_sender, "redis-sockets": _redis_sockets_sender, "amqp": _amqp_sender}


async def one_round(broker: str, n: int, gap_s: float) -> list[float]:
    """One consumer process, ``n`` sends one at a time: its latencies in seconds."""
    url, name = _url(broker), f"ajfloor-{uuid.uuid4().hex[:12]}"
    argv = [sys.executable, "-m", "bench.latency_floor", "--consume", broker, name, str(n)]
    consumer = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    try:
        assert consumer.stdout is not None
        ready = await consumer.stdout.readline()
        if ready != b"ready\n":
            raise RuntimeError(f"the {broker} consumer did not start: {ready!r}")
        async with SENDERS[broker](url, name) as send:
            for _ in range(n):  # the first 20: warm-up, first-call paths on both sides
                await send()
                await asyncio.sleep(gap_s)
            out, _ = await asyncio.wait_for(consumer.communicate(), timeout=120)
    finally:
        if consumer.returncode is None:
            consumer.kill()
            await consumer.wait()
    if consumer.returncode != 0:
        raise RuntimeError(f"the {broker} consumer failed (exit {consumer.returncode})")
    latencies = json.loads(out)
    if len(latencies) != n:
        raise RuntimeError(f"the {broker} consumer received {len(latencies)} of {n}")
    return latencies[20:]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(brokers: list[str], n: int, gap_s: float, rounds: int) -> None:
    print(f"{'broker':<13} {'p50 ms':>7} {'p99 ms':>7}   rounds (p50 / p99)")
    for broker in brokers:
        runs = []
        for _ in range(rounds):
            ms = [x * 1000 for x in await one_round(broker, n, gap_s)]
            runs.append((statistics.median(ms), percentile(ms, 0.99)))
        p50, p99 = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        each = ", ".join(f"{a:.2f} / {b:.2f}" for a, b in runs)
        print(f"{broker:<13} {p50:>7.2f} {p99:>7.2f}   {each}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="enqueue->start latency without a task queue")
    parser.add_argument("--brokers", default="redis,redis-sockets,amqp")
    parser.add_argument("--messages", type=int, default=300, help="per round (20 warm-up)")
    parser.add_argument("--gap", type=float, default=0.01, help="seconds between sends")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--consume", nargs=3, metavar=("BROKER", "NAME", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    import uvloop

    if args.consume:
        broker, name, n = args.consume
        consumer = CONSUMERS[broker]
        if asyncio.iscoroutinefunction(consumer):
            latencies = uvloop.run(consumer(_url(broker), name, int(n)))
        else:
            latencies = consumer(_url(broker), name, int(n))
        print(json.dumps(latencies))
        return 0
    if args.messages <= 20:
        parser.error("--messages must be more than the 20 warm-up messages")
    brokers = [b for b in args.brokers.split(",") if b]
    unknown = set(brokers) - set(SENDERS)
    if unknown:
        parser.error(f"unknown broker(s) {sorted(unknown)}: {', '.join(SENDERS)}")
    uvloop.run(run(brokers, args.messages, args.gap, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
