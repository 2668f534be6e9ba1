"""The shared, auto-pipelined publishing connection: each caller gets its own reply."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from asyncjobs.brokers.redis.connection import connection_pool
from asyncjobs.brokers.redis.pipelining import NotSentError, PipelinedConnection, Unconfirmed
from tests.faults.redis_server import PrivateRedis
from tests.support.freeze import frozen

pytestmark = pytest.mark.redis


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[PipelinedConnection]:
    shared = PipelinedConnection(connection_pool(redis_url, socket_timeout=5))
    yield shared
    await shared.close(1.0)


async def test_concurrent_and_sequential_callers_each_get_their_own_reply(
    publisher: PipelinedConnection, prefix: str, conn: Redis
) -> None:
    stream = f"{prefix}:s"
    first = [await publisher.execute("XADD", stream, "*", "i", i) for i in range(50)]
    burst = await asyncio.gather(
        *(publisher.execute("XADD", stream, "*", "i", i) for i in range(50, 550))
    )
    ids = first + list(burst)
    entries = await conn.xrange(stream)
    # Every reply is the id of that caller's own entry, in the order they were sent.
    assert [fields[b"i"] for _, fields in entries] == [b"%d" % i for i in range(550)]
    assert ids == [entry_id for entry_id, _ in entries]


async def test_an_error_reply_fails_only_its_caller(
    publisher: PipelinedConnection, prefix: str, conn: Redis
) -> None:
    await conn.set(f"{prefix}:str", "x")
    results = await asyncio.gather(
        publisher.execute("XADD", f"{prefix}:s", "*", "i", 1),
        publisher.execute("XADD", f"{prefix}:str", "*", "i", 2),
        publisher.execute("XADD", f"{prefix}:s", "*", "i", 3),
        return_exceptions=True,
    )
    assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])
    assert [fields[b"i"] for _, fields in await conn.xrange(f"{prefix}:s")] == [b"1", b"3"]
    assert results[0] != results[2] and not isinstance(results[2], Exception)


async def test_a_cancelled_caller_leaves_the_others_their_replies(
    publisher: PipelinedConnection, prefix: str, conn: Redis
) -> None:
    await publisher.execute("PING")  # connected: the next calls are written at once
    calls = [
        asyncio.create_task(publisher.execute("XADD", f"{prefix}:s", "*", "i", i)) for i in range(5)
    ]
    await asyncio.sleep(0)  # one step: every call has written its command
    calls[2].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[2], asyncio.CancelledError)
    entries = await conn.xrange(f"{prefix}:s")
    assert [fields[b"i"] for _, fields in entries] == [b"%d" % i for i in range(5)]
    assert [r for i, r in enumerate(results) if i != 2] == [
        entry_id for i, (entry_id, _) in enumerate(entries) if i != 2
    ]


@asynccontextmanager
async def private_publisher(
    tmp_path: Path, timeout_s: float = 10.0
) -> AsyncIterator[tuple[PrivateRedis, PipelinedConnection]]:
    """A publisher on a private redis-server that the test may stop, freeze or restart."""
    with PrivateRedis(tmp_path / "redis") as server:
        pool = connection_pool(server.url, socket_timeout=5)
        publisher = PipelinedConnection(pool, timeout_s)
        try:
            yield server, publisher
        finally:
            await publisher.close(1.0)


async def test_a_dead_server_fails_the_callers_and_a_restarted_one_serves_them(
    prefix: str, tmp_path: Path
) -> None:
    async with private_publisher(tmp_path) as (server, publisher):
        await publisher.execute("XADD", f"{prefix}:s", "*", "i", 0)
        await asyncio.to_thread(server.stop)
        # Refused at once; not a timeout (an OSError too), which a hung caller would get.
        with pytest.raises(RedisConnectionError, match=r"connecting to .*Connect call failed"):
            await asyncio.wait_for(publisher.execute("XADD", f"{prefix}:s", "*", "i", 1), 10)
        await asyncio.to_thread(server.start)
        await publisher.execute("XADD", f"{prefix}:s", "*", "i", 2)
        assert await entries_of(server, f"{prefix}:s") == [b"0", b"2"]


async def test_a_server_that_stops_answering_times_the_callers_out(
    prefix: str, tmp_path: Path
) -> None:
    async with private_publisher(tmp_path, timeout_s=0.5) as (server, publisher):
        await publisher.execute("PING")
        assert server.process is not None
        with frozen(server.process.popen.pid):
            calls = [publisher.execute("XADD", f"{prefix}:s", "*", "i", i) for i in range(3)]
            results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        assert all(isinstance(r, RedisTimeoutError) for r in results), results
        assert all(isinstance(r, Unconfirmed) for r in results), results  # written
        await publisher.execute("PING")  # and it reconnects


async def test_the_deadline_is_the_commands_own_not_the_sockets(
    prefix: str, tmp_path: Path
) -> None:
    """Replies are read without a socket timeout (5 s in this pool): a command waits for
    its own deadline, counted from its call, and no longer."""
    async with private_publisher(tmp_path, timeout_s=0.5) as (server, publisher):
        await publisher.execute("PING")
        assert server.process is not None
        with frozen(server.process.popen.pid):
            started = time.monotonic()
            with pytest.raises(Unconfirmed):
                await publisher.execute("XADD", f"{prefix}:s", "*", "i", 1)
            took = time.monotonic() - started
        assert 0.45 <= took < 1.5, took


async def test_a_command_not_written_by_its_deadline_is_never_sent(
    prefix: str, tmp_path: Path
) -> None:
    """Frozen before the first command: the connection cannot be set up (Redis does not
    answer its handshake), so the command is not written; it fails as not sent, and is
    not sent later either, once Redis answers again."""
    async with private_publisher(tmp_path, timeout_s=0.5) as (server, publisher):
        assert server.process is not None
        with frozen(server.process.popen.pid), pytest.raises(NotSentError):
            await publisher.execute("XADD", f"{prefix}:s", "*", "i", 1)
        await publisher.execute("XADD", f"{prefix}:s", "*", "i", 2)  # after the handshake
        assert await entries_of(server, f"{prefix}:s") == [b"2"]


async def test_the_first_command_after_a_redis_restart_succeeds(
    prefix: str, tmp_path: Path
) -> None:
    """The open connection is stale after a restart: its unanswered command is sent once
    more on a fresh connection instead of failing (redis-py's pool retried once too)."""
    async with private_publisher(tmp_path) as (server, publisher):
        await publisher.execute("XADD", f"{prefix}:s", "*", "i", 0)
        await asyncio.to_thread(server.restart)
        await publisher.execute("XADD", f"{prefix}:s", "*", "i", 1)
        assert await entries_of(server, f"{prefix}:s") == [b"0", b"1"]


async def entries_of(server: PrivateRedis, stream: str) -> list[bytes]:
    async with Redis.from_url(server.url) as check:
        return [fields[b"i"] for _, fields in await check.xrange(stream)]


async def test_the_commands_of_one_loop_step_share_one_socket_write(
    publisher: PipelinedConnection,
) -> None:
    """A gathered ``kiq()`` of 100 was 100 socket writes: now the first, written at
    once, and the 99 called while it was in flight, together; each caller still gets its
    own reply. One caller alone is written at once, one write each."""
    assert await publisher.execute("PING") == b"PONG"  # connected
    writes = publisher.writes
    replies = await asyncio.gather(*(publisher.execute("ECHO", str(i)) for i in range(100)))
    assert replies == [str(i).encode() for i in range(100)]
    assert publisher.writes == writes + 2
    for i in range(3):  # one at a time: one write each
        assert await publisher.execute("ECHO", f"alone{i}") == f"alone{i}".encode()
    assert publisher.writes == writes + 5
