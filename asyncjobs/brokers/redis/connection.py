"""Redis connections whose socket writes do not swallow cancellations.

redis-py (8.x) sends every command under ``asyncio.wait_for(write, socket_timeout)``, and
sets a socket timeout by default. On Python 3.11, ``wait_for`` returns normally when the
inner write completes in the same loop step as an outer cancellation (CPython
gh-86296), so the task never sees its ``CancelledError``: a worker cancelled while sending
a command goes on as if nothing happened, and a drain or shutdown that waits for it
hangs. That is how a taskiq worker was seen hanging for minutes after SIGTERM.

``CancellationSafe`` sends with ``asyncio.timeout()`` instead, which propagates the
cancellation. Everything else is redis-py's, including the error translation below,
copied from ``redis.asyncio.connection.AbstractConnection.send_packed_command``.

A pool built with ``from_url`` also never retries, so after a Redis restart (or a proxy
closing idle connections) the first command on *each* pooled connection fails with
"Connection closed by server", although Redis is back: a result was lost, a ``kiq()``
failed. ``connection_pool`` retries a connection error once, on a fresh connection.

Its connections are named ``asyncjobs:<host>:<pid>`` (unless the URL names them), so
``CLIENT LIST`` shows which process holds which connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from asyncjobs.brokers.base import process_name

WRITE_BUFFER_LIMIT = 1 << 20  # bytes buffered by write_nowait before senders must wait


class CancellationSafe(Connection):
    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        try:
            if isinstance(command, str):
                command = command.encode()
            if isinstance(command, bytes):
                command = [command]
            async with asyncio.timeout(self.socket_timeout):
                await self._send_packed_command(command)
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            await self.disconnect(nowait=True)
            err_no, errmsg = ("UNKNOWN", e.args[0]) if len(e.args) == 1 else (e.args[0], e.args[1])
            raise RedisConnectionError(f"Error {err_no} while writing to socket. {errmsg}.") from e
        except BaseException:
            await self.disconnect(nowait=True)
            raise

    def closed_by_peer(self) -> bool:
        """The server closed this connection (it stopped or restarted): nothing written
        to it now would be read, so a command must not be counted as sent on it."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None or writer.transport.is_closing():
            return True
        return reader.at_eof()

    def write_nowait(self, chunks: list[bytes]) -> bool:
        """Buffer packed commands for sending, without awaiting (auto-pipelining). False,
        and nothing written, when not connected or over the buffer's high-water mark:
        then ``send_packed_command`` must be awaited (it waits for the buffer to drain)."""
        writer = self._writer
        if writer is None or writer.transport.is_closing():
            return False
        if writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            return False
        writer.writelines(chunks)
        return True


class CancellationSafeSSL(CancellationSafe, SSLConnection):
    pass


class CancellationSafeUnix(CancellationSafe, UnixDomainSocketConnection):
    pass


T = TypeVar("T")

SAFE_CLASSES: dict[type[Any], type[Any]] = {
    Connection: CancellationSafe,
    SSLConnection: CancellationSafeSSL,
    UnixDomainSocketConnection: CancellationSafeUnix,
}


def connection_pool(url: str, **kwargs: Any) -> BlockingConnectionPool:
    """``BlockingConnectionPool.from_url`` with cancellation-safe connections that retry
    a connection error once (a stale connection; a timeout is not retried)."""
    kwargs.setdefault("retry", Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
    pool = BlockingConnectionPool.from_url(url, **kwargs)
    # Built in the process that uses it (a forked child builds its own): its pid.
    pool.connection_kwargs.setdefault("client_name", f"asyncjobs:{process_name()}")
    pool.connection_class = SAFE_CLASSES.get(pool.connection_class, pool.connection_class)
    return pool


RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)


async def retrying(
    operation: Callable[[], Awaitable[T]],
    for_s: float,
    on_retry: Callable[[Exception], None] | None = None,
) -> T:
    """``operation()``, retried through dropped connections and restarts for ``for_s``
    seconds (backoff 0.1 s doubling to 2 s); the last error after that."""
    deadline = time.monotonic() + for_s
    delay = 0.1
    while True:
        try:
            return await operation()
        except RETRYABLE as exc:
            if time.monotonic() + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
