"""What a queue holds, read straight from the broker (not through asyncjobs), and which
connections a process holds there: the evidence of the sending tests.

Sync functions: they run in a test's thread, where no event loop runs or one runs that
must not be blocked (call them with ``asyncio.to_thread`` there).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time

import orjson
import redis

from asyncjobs.brokers.rabbitmq.names import queue_name
from asyncjobs.brokers.redis.streams import stream_key
from asyncjobs.config import AsyncJobsConfig

RABBITMQCTL_TIMEOUT_S = 60
HEARTBEAT_FRAMES = 5


def queued_task_ids(config: AsyncJobsConfig, queue: str = "default") -> list[str]:
    """The task ids of the messages waiting in ``queue``, in order. On RabbitMQ they are
    taken off the queue (it cannot be read otherwise); on Redis they stay."""
    if config.transport.name == "rabbitmq":
        bodies = asyncio.run(_drain_amqp(config.broker_url, queue_name(config.key_prefix, queue)))
    else:
        with redis.Redis.from_url(config.broker_url) as conn:
            entries = conn.xrange(stream_key(config.key_prefix, queue))
        bodies = [fields[b"data"] for _, fields in entries]
    return [str(orjson.loads(body)["task_id"]) for body in bodies]


async def _drain_amqp(url: str, queue: str) -> list[bytes]:
    import aio_pika
    from aiormq.exceptions import ChannelNotFoundEntity

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            declared = await channel.get_queue(queue, ensure=True)
        except ChannelNotFoundEntity:
            return []  # never declared: nothing was ever sent to it
        bodies = []
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            bodies.append(message.body)
        return bodies
    finally:
        await connection.close()


def last_redis_client_id(url: str) -> int:
    """Redis numbers connections in order: a connection opened after this call has a
    higher id (connections a process left behind earlier are told apart that way)."""
    with redis.Redis.from_url(url) as conn:
        return int(conn.client_id())


def redis_connections(url: str, pids: set[int], after_id: int = 0) -> dict[int, int]:
    """How many connections each of ``pids`` holds on Redis (asyncjobs names them
    ``asyncjobs:<host>:<pid>``), of those opened after client id ``after_id``."""
    counts = dict.fromkeys(pids, 0)
    with redis.Redis.from_url(url) as conn:
        for client in conn.client_list():
            pid = _pid_in(str(client.get("name", "")))
            if pid in counts and int(client["id"]) > after_id:
                counts[pid] += 1
    return counts


def amqp_connections(pids: set[int], since_ms: int = 0) -> dict[int, int]:
    """How many connections each of ``pids`` holds on RabbitMQ, from ``rabbitmqctl
    list_connections`` (asyncjobs names them ``asyncjobs <role> <host>:<pid>``), of
    those opened at or after ``since_ms`` (ms since the epoch)."""
    listed = _rabbitmqctl("list_connections", "connected_at", "client_properties")
    counts = dict.fromkeys(pids, 0)
    for line in listed.splitlines():
        opened, _, properties = line.partition("\t")
        named = re.search(r'\{"connection_name","([^"]*)"\}', properties)
        pid = _pid_in(named.group(1)) if named else None
        if pid in counts and opened.isdigit() and int(opened) >= since_ms:
            counts[pid] += 1
    return counts


class NewConnections:
    """The connections opened on ``config``'s broker from the moment this is made, by
    the pid of the process that named them."""

    def __init__(self, config: AsyncJobsConfig) -> None:
        self.config = config
        self.rabbitmq = config.transport.name == "rabbitmq"
        self.since_ms = int(time.time() * 1000) - 1
        self.after_id = 0 if self.rabbitmq else last_redis_client_id(config.broker_url)

    def of(self, *pids: int) -> dict[int, int]:
        if self.rabbitmq:
            return amqp_connections(set(pids), self.since_ms)
        return redis_connections(self.config.broker_url, set(pids), self.after_id)

    def count(self, pid: int) -> int:
        return self.of(pid)[pid]

    def activity(self, pid: int) -> dict[str, int]:
        """Per connection of ``pid`` opened since: Redis, seconds idle; RabbitMQ,
        frames received (heartbeats included)."""
        if self.rabbitmq:
            return amqp_activity(pid, self.since_ms)
        return redis_idle(self.config.broker_url, pid, self.after_id)

    def untouched(self, before: dict[str, int], after: dict[str, int], elapsed_s: float) -> bool:
        """Whether the connections of ``before`` are all still there, unused for the
        ``elapsed_s`` seconds between the two readings (RabbitMQ: at most a few
        heartbeats; a single publish is 3 frames)."""
        if before.keys() != after.keys():
            return False
        if self.rabbitmq:
            return all(after[key] - before[key] <= HEARTBEAT_FRAMES for key in before)
        return all(after[key] >= before[key] + int(elapsed_s) - 1 for key in before)


def redis_idle(url: str, pid: int, after_id: int) -> dict[str, int]:
    with redis.Redis.from_url(url) as conn:
        return {
            str(client["id"]): int(client["idle"])
            for client in conn.client_list()
            if _pid_in(str(client.get("name", ""))) == pid and int(client["id"]) > after_id
        }


def amqp_activity(pid: int, since_ms: int) -> dict[str, int]:
    listed = _rabbitmqctl("list_connections", "connected_at", "recv_cnt", "client_properties")
    found = {}
    for line in listed.splitlines():
        opened, received, properties = [*line.split("\t", 2), "", ""][:3]
        named = re.search(r'\{"connection_name","([^"]*)"\}', properties)
        mine = named is not None and _pid_in(named.group(1)) == pid
        if named and mine and opened.isdigit() and int(opened) >= since_ms:
            found[f"{named.group(1)}@{opened}"] = int(received)
    return found


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=RABBITMQCTL_TIMEOUT_S,
    ).stdout


def _pid_in(name: str) -> int | None:
    found = re.fullmatch(r"asyncjobs[: ].*:(\d+)", name)
    return int(found.group(1)) if found else None
