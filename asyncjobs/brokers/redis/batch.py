"""Idempotent Redis commands from many callers, sent as one pipeline per event-loop step.

A worker that finishes 200 tasks in one step used to make 200 round trips to
acknowledge them and 200 more to store their results; taskiq-redis does one per task
too. Here every caller still awaits the replies to *its own* commands, so
``await delivery.ack()`` returns only once Redis has the XACK, never before: batching
changes how many round trips there are, not what an ``await`` means.

While one pipeline is in flight, new commands wait for the next one, so batches grow
with the load and an idle worker sends each command at once (no timer, no added delay).

Acknowledgements are merged: the acks of one stream in a batch become one
``XACK stream group id...`` and one ``XDEL stream id...`` (two commands and two replies
for the whole batch, instead of two per task).

Only idempotent commands may go through a batcher (SET, XACK, XDEL, EXPIRE): a batch
cut short by a dropped connection or a Redis restart is sent again whole, for up to
``retry_for_s``. A command's own error (a ``ResponseError``) fails only its callers.

A batch goes out on the batcher's own connection as raw packed commands, and its replies
are read raw, under one deadline for the whole batch. Through a redis-py ``Pipeline``
each command cost a method call with its argument checks, a command-stack entry, a
reply callback and an ``asyncio.timeout`` per reply: in a worker draining no-op tasks
that was a third of its CPU (bench/README.md, "Worker hot path").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from asyncjobs.brokers.redis.connection import retrying
from asyncjobs.brokers.redis.link import Command, Link

logger = logging.getLogger("asyncjobs.broker.redis")


@dataclass(frozen=True, slots=True)
class _Ack:
    stream: str
    group: str
    entry_id: bytes


Request = tuple["tuple[Command, ...] | _Ack", "asyncio.Future[list[Any]]"]


class PipelineBatcher:
    def __init__(
        self,
        client: Callable[[], Redis],
        retry_for_s: float,
        *,
        max_batch: int = 2000,
        timeout_s: float = 10.0,
    ) -> None:
        self._client = client
        self.retry_for_s = retry_for_s
        self.max_batch = max_batch  # commands per pipeline (a bound on one reply's size)
        self.timeout_s = timeout_s  # one batch's round trip, writing to the last reply
        self._link = Link()
        self._pending: list[Request] = []
        self._sender: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # What the batching saved is observable (tests, benchmarks).
        self.pipelines_sent = 0
        self.commands_sent = 0

    async def execute(self, *commands: Command) -> list[Any]:
        """Send ``commands`` (in order, in one pipeline) and return their replies."""
        return await self._submit(commands)

    async def acknowledge(self, stream: str, group: str, entry_id: bytes) -> None:
        """XACK then XDEL one entry, merged with the batch's other acks of ``stream``."""
        await self._submit(_Ack(stream, group, entry_id))

    def _submit(self, request: tuple[Command, ...] | _Ack) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: nothing of the old one can finish
            self._loop, self._pending, self._sender = loop, [], None
            self._link = Link()  # its connection belonged to the old loop
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._pending.append((request, future))
        if self._sender is None:
            self._sender = loop.create_task(self._send_all())
        return future

    async def wait_idle(self, timeout_s: float) -> None:
        """Wait (bounded) until what was handed to the batcher has been sent."""
        sender = self._sender
        if sender is not None and self._loop is asyncio.get_running_loop():
            await asyncio.wait({sender}, timeout=timeout_s)

    async def close(self, timeout_s: float) -> None:
        """Let what was handed over be sent (bounded), then close the connection."""
        if self._loop is not asyncio.get_running_loop():
            return  # its connection belonged to a loop that has ended
        await self.wait_idle(timeout_s)
        await self._link.close()

    async def _send_all(self) -> None:
        try:
            while self._pending:
                batch = self._take_batch()
                await self._send(batch)
        except asyncio.CancelledError:  # the loop is shutting down: nobody will send these
            for _, future in self._pending:
                future.cancel()
            self._pending = []
            raise
        finally:
            self._sender = None

    def _take_batch(self) -> list[Request]:
        size, cut = 0, 0
        for request, _ in self._pending:
            weight = 1 if isinstance(request, _Ack) else len(request)
            if cut and size + weight > self.max_batch:
                break
            size += weight
            cut += 1
        batch, self._pending = self._pending[:cut], self._pending[cut:]
        return batch

    async def _send(self, batch: list[Request]) -> None:
        commands, slots = _pipeline_of(batch)

        async def attempt() -> list[Any]:
            return await self._link.round_trip(self._client(), commands, self.timeout_s)

        def warn(exc: Exception) -> None:
            logger.warning("sending %d commands failed (%s); retrying", len(commands), exc)

        try:
            replies = await retrying(attempt, self.retry_for_s, warn)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.pipelines_sent += 1
        self.commands_sent += len(commands)
        _hand_out(batch, slots, replies)


def _hand_out(batch: list[Request], slots: list[range], replies: list[Any]) -> None:
    """Each request's replies to its caller: its first error, else all of them."""
    for (_, future), mine_at in zip(batch, slots, strict=True):
        if future.done():  # its caller was cancelled; the commands went out anyway
            continue
        mine = replies[mine_at.start : mine_at.stop]  # a request's replies are contiguous
        for reply in mine:
            if isinstance(reply, Exception):
                future.set_exception(reply)
                break
        else:
            future.set_result(mine)


def _pipeline_of(batch: list[Request]) -> tuple[list[Command], list[range]]:
    """The batch's commands (acks merged per stream, after the rest) and, per request,
    the positions of its replies."""
    commands: list[Command] = []
    slots: list[range] = []
    acks: dict[tuple[str, str], list[bytes]] = {}
    for request, _ in batch:
        if isinstance(request, _Ack):
            acks.setdefault((request.stream, request.group), []).append(request.entry_id)
            slots.append(range(0))  # filled in below
        else:
            slots.append(range(len(commands), len(commands) + len(request)))
            commands.extend(request)
    at: dict[tuple[str, str], range] = {}
    for (stream, group), ids in acks.items():
        at[(stream, group)] = range(len(commands), len(commands) + 2)
        commands.append(("XACK", stream, group, *ids))
        commands.append(("XDEL", stream, *ids))
    for i, (request, _) in enumerate(batch):
        if isinstance(request, _Ack):
            slots[i] = at[(request.stream, request.group)]
    return commands, slots
