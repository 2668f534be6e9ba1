"""One Redis connection that every sender shares, with commands written back to back.

redis-py sends a command by taking a connection from the pool, writing, waiting for the
reply and giving the connection back, under three timeouts and two pool locks: about
120 µs of Python per command, where Redis itself answers an XADD in under 10 µs. That was
most of the cost of ``await kiq()``.

Here (auto-pipelining, as ioredis and Lettuce do it) a command is written at once when
nothing else is in flight, and the commands called in one event-loop step while others
await replies are written together as the step ends (a gathered ``kiq()`` of 100 is two
socket writes, not 100: a write was the largest single cost of a send), or, while connecting
or when the socket's buffer is full, by a writer task that writes whatever callers
queued since its last write in one go; no one waits for replies before writing, and a
reader task hands the replies back in order. Every caller still awaits *its own* reply, so
``await kiq()`` still returns only once Redis has the message; concurrent callers share
round trips instead of taking turns.

A connection that is lost (not one that times out) sends what it had not answered
once more on a fresh connection, as the pool's single retry did per command: after a
Redis restart every open connection is stale, and the first command on it must not
fail. A command that fails again, or times out, fails its caller.
A caller that is cancelled has its command sent anyway (it may be in the socket
already); only its reply is dropped.

Every command has its own deadline (``timeout_s`` from when it was called), not the
connection's socket timeout: replies are read without one. A command not yet written
when its deadline passes is dropped, never sent, and fails with ``NotSentError``. One
that was written (Redis may have applied it) fails with an ``Unconfirmed`` error, and so
does every command written after it on that connection, which is closed: replies come in
order, so none of them can be answered any more. The same holds for a written command
whose connection was lost twice (or lost and not reopened).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from asyncjobs.brokers.redis.connection import CancellationSafe


class NotSentError(RedisTimeoutError):
    """The command's deadline passed before it was written: Redis never saw it."""


class Unconfirmed(Exception):
    """The command was written and no reply came: Redis may or may not have applied it."""


class NoReplyError(Unconfirmed, RedisTimeoutError):
    """Written, and not answered within the deadline."""


class LostReplyError(Unconfirmed, RedisConnectionError):
    """Written, and the connection was lost (also on the one resend) before the reply."""


@dataclass(slots=True)
class _Command:
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    tries: int = 0
    link: _Link | None = None  # the connection it was last written to
    abandoned: bool = False  # its deadline passed: never write it (again)


@dataclass(slots=True)
class _Link:
    """One open connection and the commands written to it, awaiting their replies."""

    conn: AbstractConnection
    waiting: deque[_Command] = field(default_factory=deque)
    reader: asyncio.Task[None] | None = None
    broken: bool = False


class PipelinedConnection:
    def __init__(self, pool: BlockingConnectionPool, timeout_s: float = 10.0) -> None:
        self._pool = pool
        self._timeout_s = timeout_s  # per command, from the call to its reply
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queued: list[_Command] = []
        self._link: _Link | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._step: list[_Command] = []  # called in this loop step, written as it ends
        self.writes = 0  # socket writes without the writer task (tests, benchmarks)

    async def execute(self, *args: Any) -> Any:
        """Send one command (``"XADD", key, "*", field, value``); its raw reply."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a connection belongs to the loop that opened it
            self._loop, self._queued, self._link, self._writer = loop, [], None, None
            self._step = []
        command = _Command(args, loop.create_future())
        if not self._write_now(command):
            self._queued.append(command)
            if self._writer is None:
                self._writer = loop.create_task(self._write_all())
        try:
            async with asyncio.timeout(self._timeout_s) as deadline:
                return await command.future
        except TimeoutError:
            if not deadline.expired():  # a TimeoutError of the command's own
                raise
        future = command.future
        if future.done() and not future.cancelled():  # answered as the deadline passed
            return future.result()
        raise self._give_up(command) from None

    def _give_up(self, command: _Command) -> Exception:
        """The error of a command whose deadline passed; it will never be written again."""
        command.abandoned = True
        waited = f"no reply from Redis within {self._timeout_s:g} s"
        link = command.link
        if link is None:  # still queued, or its writer is still connecting
            return NotSentError(f"{waited}; the command was never written")
        if not link.broken:
            # Replies come in order: nothing written after it can be answered either.
            self._broke(link, NoReplyError(waited))
        return NoReplyError(f"{waited} after writing the command")

    def _write_now(self, command: _Command) -> bool:
        """The common case, without a writer task: connected, nothing queued before it.
        A command with nothing else in flight is written at once (a caller sending one
        at a time waits no extra loop step); one called while others await their replies
        joins this loop step's, written together as the step ends (``_write_step``)."""
        link = self._link
        if self._writer is not None or link is None or link.broken:
            return False
        if self._step:
            self._step.append(command)
            return True
        conn = link.conn
        if not isinstance(conn, CancellationSafe) or conn.closed_by_peer():
            return False
        if not link.waiting:
            return self._written(link, [command])
        self._step.append(command)
        asyncio.get_running_loop().call_soon(self._write_step, link)
        return True

    def _write_step(self, link: _Link) -> None:
        """Write the step's commands at once; if that cannot be done now (the connection
        went, or its buffer is full), the writer task sends them, ahead of the rest."""
        step, self._step = [c for c in self._step if not c.abandoned], []
        if not step:
            return
        if self._written(link, step):
            return
        self._queued[:0] = step
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_all())

    def _written(self, link: _Link, step: list[_Command]) -> bool:
        conn = link.conn
        if link is not self._link or link.broken or not isinstance(conn, CancellationSafe):
            return False
        if not conn.write_nowait(conn.pack_commands([c.args for c in step])):
            return False
        self.writes += 1
        self._expect(link, step)
        return True

    def _expect(self, link: _Link, commands: list[_Command]) -> None:
        for command in commands:
            command.link = link  # from now on Redis may see it
        link.waiting.extend(commands)
        if link.reader is None:
            link.reader = asyncio.get_running_loop().create_task(self._read(link))

    async def close(self, timeout_s: float) -> None:
        """Let what was queued be answered (bounded), then close the connection."""
        if self._loop is not asyncio.get_running_loop():
            return
        pending = [c.future for c in self._step + self._queued]
        if self._link is not None:
            pending += [c.future for c in self._link.waiting]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        self._step = []  # what is left of a step must not open a connection again
        for task in (self._writer, self._link.reader if self._link else None):
            if task is not None:
                task.cancel()
        if self._link is not None:
            await self._link.conn.disconnect(nowait=True)
            self._link = None

    async def _write_all(self) -> None:
        try:
            while self._queued:
                self._drop_if_closed()
                batch, self._queued = self._queued, []
                try:
                    link = await self._connected()
                except Exception as exc:  # cannot connect: these fail now
                    _fail(batch, exc)
                    continue
                # Connecting took time: drop what its caller gave up on meanwhile.
                batch = [c for c in batch if not c.abandoned]
                if not batch:
                    continue
                packed = link.conn.pack_commands([c.args for c in batch])
                self._expect(link, batch)
                try:
                    await link.conn.send_packed_command(packed, check_health=False)
                except Exception as exc:
                    self._broke(link, exc)
        finally:
            self._writer = None

    def _drop_if_closed(self) -> None:
        """Give up a connection the server closed before writing more to it (what it
        had not answered is sent once more, ahead of the rest)."""
        link = self._link
        conn = link.conn if link is not None else None
        if link is not None and isinstance(conn, CancellationSafe) and conn.closed_by_peer():
            self._broke(link, RedisConnectionError("Connection closed by server."))

    async def _connected(self) -> _Link:
        link = self._link
        if link is None or link.broken:
            conn = self._pool.make_connection()  # type: ignore[no-untyped-call]
            await conn.connect()
            link = self._link = _Link(conn)
        return link

    async def _read(self, link: _Link) -> None:
        try:
            while link.waiting and not link.broken:
                try:
                    # No socket timeout: each command has its deadline (see execute).
                    reply: Any = await link.conn.read_response(
                        disable_decoding=True, timeout=math.inf
                    )
                except ResponseError as exc:  # that command's error; the stream is intact
                    reply = exc
                except Exception as exc:
                    self._broke(link, exc)
                    return
                command = link.waiting.popleft()
                if command.future.done():  # its caller was cancelled
                    continue
                if isinstance(reply, ResponseError):
                    command.future.set_exception(reply)
                else:
                    command.future.set_result(reply)
        finally:
            link.reader = None

    def _broke(self, link: _Link, exc: Exception) -> None:
        if link.broken:
            return
        link.broken = True
        if self._link is link:
            self._link = None
        retry: list[_Command] = []
        stale = isinstance(exc, RedisConnectionError) and not isinstance(exc, Unconfirmed)
        unconfirmed = _unconfirmed(exc)  # everything waiting here was written
        for command in link.waiting:
            if stale and command.tries == 0 and not command.abandoned:
                command.tries += 1
                retry.append(command)
            elif not command.future.done():
                command.future.set_exception(unconfirmed)
        link.waiting.clear()
        self._queued[:0] = retry
        if link.reader is not None and link.reader is not asyncio.current_task():
            link.reader.cancel()
        loop = asyncio.get_running_loop()
        closing = loop.create_task(link.conn.disconnect(nowait=True))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        if self._queued and self._writer is None:
            self._writer = loop.create_task(self._write_all())


def _fail(commands: list[_Command], exc: Exception) -> None:
    """Fail commands that could not be written now (no connection); one written before
    (waiting for its resend) may have been applied then."""
    unconfirmed = _unconfirmed(exc)
    for command in commands:
        if not command.future.done():
            command.future.set_exception(unconfirmed if command.link else exc)


def _unconfirmed(exc: Exception) -> Exception:
    """``exc`` for a command that was written: Redis may have applied it."""
    if isinstance(exc, Unconfirmed):
        return exc
    kind = NoReplyError if isinstance(exc, RedisTimeoutError | TimeoutError) else LostReplyError
    error = kind(f"the command was written, then: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
