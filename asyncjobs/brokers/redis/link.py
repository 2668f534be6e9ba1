"""One connection of its own for raw packed commands whose replies hiredis parses, with
no redis-py command object, reply callback or per-reply timeout on the way.

The settling batcher (``batch``) writes its pipelines through a ``Link``, a worker's
fetch its ``XREADGROUP``: redis-py's ``execute_command`` (pool checkout and release,
retry wrapper, observability hooks, the reply callback that turns XREADGROUP's reply
into dicts) runs between the reply and its caller; a consumer blocked in XREADGROUP got
one message at a time 0.40-0.43 ms p50 after its send through it, 0.26 ms through the
raw read (bench/README.md, "Enqueue->start latency and its floor").
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A raw command: ("SET", key, value, "EX", 60); its reply comes back raw (b"OK").
Command = tuple[Any, ...]


class Link:
    """A connection of its own, made from its client's pool, for one caller at a time
    (the batcher sends the next batch only after the last one's replies; a worker
    fetches once at a time)."""

    def __init__(self) -> None:
        self._conn: AbstractConnection | None = None
        self._pool: object = None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect(nowait=True)

    async def round_trip(
        self, client: Redis, commands: list[Command], timeout_s: float
    ) -> list[Any]:
        """Write ``commands`` at once, then read one raw reply each (a command's error
        is its reply). Any other failure closes the connection: the replies still owed
        on it could not be told apart from the next batch's."""
        conn = await self._connected(client)
        try:
            async with asyncio.timeout(timeout_s):
                await conn.send_packed_command(packed(commands), check_health=False)
                return [await raw_reply(conn) for _ in commands]
        except BaseException as exc:
            self._conn = None
            await conn.disconnect(nowait=True)
            if isinstance(exc, TimeoutError):
                raise RedisTimeoutError(f"no reply within {timeout_s:g} s") from None
            raise

    async def _connected(self, client: Redis) -> AbstractConnection:
        pool = client.connection_pool
        conn = self._conn
        if conn is None or self._pool is not pool or not conn.is_connected:
            if conn is not None:
                await conn.disconnect(nowait=True)
            conn = pool.make_connection()  # type: ignore[no-untyped-call]
            await conn.connect()
            self._conn, self._pool = conn, pool
        return conn


def packed(commands: list[Command]) -> bytes:
    """``commands`` in RESP, as redis-py's ``pack_commands`` writes them, for the argument
    types a batch carries (bytes, str as UTF-8, int, float): redis-py's packer takes
    anything (memoryviews, its encoder's options) and cost more than the round trip's
    other Python. Anything else is refused (a bug of ours, never sent)."""
    out: list[bytes] = []
    for args in commands:
        out.append(b"*%d\r\n" % len(args))
        for arg in args:
            if isinstance(arg, bytes):
                data = arg
            elif isinstance(arg, str):
                data = arg.encode()
            elif isinstance(arg, int) and not isinstance(arg, bool):
                data = b"%d" % arg
            elif isinstance(arg, float):
                data = repr(arg).encode()
            else:
                raise TypeError(f"cannot send a {type(arg).__name__} in a batch: {arg!r}")
            out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


async def raw_reply(conn: AbstractConnection) -> Any:
    try:
        # No per-reply timeout: the batch has one (see round_trip).
        return await conn.read_response(disable_decoding=True, timeout=math.inf)
    except ResponseError as exc:  # that command's error; the stream is intact
        return exc
