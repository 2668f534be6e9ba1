"""The one event loop a broker's client side lives in, and how every other loop and
thread of the process reaches it.

A connection (a Redis socket, an aio-pika channel) belongs to the event loop that opened
it: used from another loop it hangs or fails (``Event loop is closed``). Django runs code
in many loops and threads: an ASGI server's loop, ``runserver``'s loop per request
(several at once), ``async_to_sync`` in WSGI threads, ``asyncio.run`` in a command, sync
views in a thread pool. So each process has one *home* loop for its broker client:

- the loop that started the broker (a worker's), or that an ASGI server's lifespan
  claimed: loops that live as long as the process; sends from it go straight through;
- otherwise a loop of asyncjobs' own, on a daemon thread started on first use (a WSGI
  server's threads, ``runserver``'s per-request loops, sync code, a script's or a
  command's ``asyncio.run``: a loop that ends would take its connections with it,
  unclosed). It is closed at exit.

A send from any other loop or thread runs in the home loop and is awaited (or waited
for, bounded) by its caller, in the caller's context. A claimed loop that stopped is
replaced on the next send by asyncjobs' own, and the broker's connections, bound to the
old loop, are forgotten. A process forked after the home started (gunicorn
``--preload``, multiprocessing) gets a home and connections of its own: the parent's are
never used in the child, and never closed there either (see ``_inherited``).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from asyncjobs.brokers.errors import BrokerError

T = TypeVar("T")

THREAD_NAME = "asyncjobs-home"
MOVE_TIMEOUT_S = 10.0  # closing a client in the loop it leaves
MOVE_POLL_S = 0.01
WIND_DOWN_S = 1.0  # what a closing client scheduled may finish before the loop ends
EXIT_CLOSE_TIMEOUT_S = 5.0  # closing it when the process exits

_homes: weakref.WeakSet[ClientHome] = weakref.WeakSet()
# What a forked child inherited from its parent's client: loops, their selectors,
# sockets. Referenced until the child exits: collected, they would close themselves,
# and a socket or self-pipe unregistered from the epoll instance parent and child share
# is unregistered for the parent too (its sends would hang).
_inherited: list[object] = []


class Client(Protocol):
    """What a home needs of the client it holds (a ``ReliableBroker``)."""

    def forget_client(self) -> None:
        """Drop the connections (bound to a loop that is gone, or to the parent)."""

    def client_state(self) -> object:
        """References to everything the client holds now."""

    async def disconnect(self) -> None:
        """Close the connections, in the loop that opened them."""


class ClientHome:
    """Where one broker's client side lives (see the module docstring)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._own: _OwnLoop | None = None
        self._pid = os.getpid()
        # Operations handed to each loop and not finished yet: a claim lets those of the
        # loop it takes the client from finish before closing it there.
        self._pending: dict[asyncio.AbstractEventLoop, int] = {}
        _homes.add(self)

    def loop_for(self) -> asyncio.AbstractEventLoop:
        """The loop every send must run in: the home (asyncjobs' own loop unless a
        long-lived loop claimed the client)."""
        with self._lock:
            self._check_pid()
            home = self._loop
            if home is not None and home.is_running():
                return home
            self._loop = self._own_loop()
            if home is not None:
                self._client.forget_client()  # bound to a loop that no longer runs
            return self._loop

    async def claim(self) -> None:
        """The running loop holds the client from now on: the broker is being started
        in it (a worker's), or a server says it lives as long as the process (ASGI
        lifespan). A client that lives in another loop still running is closed there
        first, once what was handed to that loop finished (a connection is only ever
        used from the loop that opened it); asyncjobs' own loop then ends."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._check_pid()
            home, self._loop = self._loop, loop
            if home is None or home is loop or not home.is_running():
                return
            own, self._own = (self._own, None) if self._owns(home) else (None, self._own)
        with contextlib.suppress(Exception):  # closing is best effort: it is left behind
            await asyncio.wait_for(self._close_in(home), MOVE_TIMEOUT_S)
        self._client.forget_client()
        if own is not None:
            await asyncio.to_thread(own.stop)

    async def _close_in(self, home: asyncio.AbstractEventLoop) -> None:
        # Counted from other threads too: polled (an asyncio.Event is not thread-safe).
        while self._pending.get(home, 0):  # noqa: ASYNC110 - sends handed there earlier
            await asyncio.sleep(MOVE_POLL_S)
        await asyncio.wrap_future(self._submit(home, self._client.disconnect()))

    def _owns(self, loop: asyncio.AbstractEventLoop | None) -> bool:
        return self._own is not None and loop is self._own.loop

    @property
    def own_loop_running(self) -> bool:
        """Whether the client lives in asyncjobs' own loop (no long-lived loop of the
        main thread was there to hold it)."""
        own = self._own
        return own is not None and own.alive and self._loop is own.loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` in the home loop, from whatever loop calls this."""
        loop = asyncio.get_running_loop()
        home = self.loop_for()
        if home is loop:
            return await coro
        return await asyncio.wrap_future(self._submit(home, coro))

    async def run_where_it_lives(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` in the home loop if one is running elsewhere, else here (a
        shutdown: it must not start a home just to close nothing)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._check_pid()
            home = self._loop
        if home is None or home is loop or not home.is_running():
            return await coro
        return await asyncio.wrap_future(self._submit(home, coro))

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coro`` in the home loop and wait for it from sync code (at most
        ``timeout_s``: then ``concurrent.futures.TimeoutError``, the coroutine cancelled)."""
        future = self._submit(self.loop_for(), coro)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        """End asyncjobs' own loop and its thread, if they run (the app closes); a
        client that lived there is forgotten, the next send starts afresh."""
        with self._lock:
            own, self._own = self._own, None
            held = own is not None and self._loop is own.loop
            if held:
                self._loop = None
        if own is not None:
            own.stop()
        if held:
            self._client.forget_client()

    def _submit(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]
    ) -> concurrent.futures.Future[T]:
        """``submit``, counted in ``_pending`` until it is done."""
        with self._lock:
            self._pending[loop] = self._pending.get(loop, 0) + 1
        try:
            future = submit(loop, coro, contextvars.copy_context())
        except BaseException:
            self._finished(loop)
            raise
        future.add_done_callback(lambda _: self._finished(loop))
        return future

    def _finished(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            left = self._pending.get(loop, 0) - 1
            if left > 0:
                self._pending[loop] = left
            else:
                self._pending.pop(loop, None)

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        if self._own is None or not self._own.alive:
            self._own = _OwnLoop()
            atexit.register(_close_at_exit, weakref.ref(self))
        return self._own.loop

    def close_own_loop(self, timeout_s: float) -> None:
        """Close the client in asyncjobs' own loop, then end the loop (the process
        exits: its broker sees the connections closed, not dropped)."""
        own = self._own
        if own is None or not own.alive or self._pid != os.getpid():
            return
        closing = self._submit(own.loop, self._client.disconnect())
        with contextlib.suppress(Exception):
            closing.result(timeout_s)
        self.stop()

    def _check_pid(self) -> None:
        if self._pid != os.getpid():
            # A forked child: threads do not survive a fork, the parent's sockets are
            # the parent's (kept, never closed here: see _inherited).
            _inherited.append((self._loop, self._own, self._client.client_state()))
            self._pid, self._loop, self._own = os.getpid(), None, None
            self._pending = {}
            self._client.forget_client()


def _close_at_exit(home_ref: weakref.ref[ClientHome]) -> None:
    home = home_ref()
    if home is not None:
        home.close_own_loop(EXIT_CLOSE_TIMEOUT_S)


def _unlock_in_child() -> None:
    # A fork while another thread held a home's lock would leave it held for good in
    # the child, where that thread does not exist.
    for home in list(_homes):
        home._lock = threading.Lock()


os.register_at_fork(after_in_child=_unlock_in_child)


class _OwnLoop:
    """An event loop running on a daemon thread (ends with the process)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name=THREAD_NAME, daemon=True
        )
        self._thread.start()
        started.wait()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.loop.is_running()

    def stop(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(RuntimeError):  # closed already
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        try:
            self.loop.run_forever()
        finally:
            self._wind_down()

    def _wind_down(self) -> None:
        """As ``asyncio.run`` ends a loop: what closing the client scheduled (a library's
        close callbacks) may finish briefly, the rest is cancelled and awaited, so no
        task is destroyed pending nor left to a closed loop."""
        loop = self.loop
        pending = asyncio.all_tasks(loop)
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=WIND_DOWN_S))
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def submit(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
    context: contextvars.Context,
) -> concurrent.futures.Future[T]:
    """Run ``coro`` as a task of ``loop`` (another thread's) in ``context`` (the caller's:
    its tracing context and baggage go along); cancelling the future cancels the task."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def start() -> None:
        if future.cancelled():  # before it started: it never runs
            coro.close()
            return
        task = loop.create_task(coro, context=context)
        task.add_done_callback(lambda done: settle_future(future, done))
        future.add_done_callback(lambda done: _cancel_in(loop, task) if done.cancelled() else None)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:  # the loop closed under us
        coro.close()
        raise BrokerError("the event loop that owns the broker client has closed") from None
    return future


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread; None in sync code."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def settle_future(future: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
    """Give ``task``'s outcome to ``future`` (a thread waits on it)."""
    # The caller may cancel the future from its thread at any moment: then it is done.
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if task.cancelled():
            future.cancel()
        elif (error := task.exception()) is not None:
            future.set_exception(error)
        else:
            future.set_result(task.result())


def _cancel_in(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    if not task.done():
        with contextlib.suppress(RuntimeError):  # a closed loop took the task with it
            loop.call_soon_threadsafe(task.cancel)
