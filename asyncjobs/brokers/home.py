"""The one event loop a broker's client side lives in, and how every other loop and
thread of the process reaches it.

A connection (a Redis socket, an aio-pika channel) belongs to the event loop that opened
it: used from another loop it hangs or fails (``Event loop is closed``). Django runs code
in many loops and threads: an ASGI server's loop, ``runserver``'s loop per request
(several at once), ``async_to_sync`` in WSGI threads, ``asyncio.run`` in a command, sync
views in a thread pool. So each process has one *home* loop for its broker client:

- the first loop of the main thread to start it (an ASGI server's, a worker's, a
  script's ``asyncio.run``): sends from it go straight through, as before;
- otherwise a loop of asyncjobs' own, on a daemon thread started on first use (a WSGI
  server's threads, ``runserver``'s per-request loops, sync code).

A send from any other loop or thread runs in the home loop and is awaited (or waited
for) by its caller. A home that stopped running (its ``asyncio.run`` ended) is replaced
on the next send, and the broker's connections, bound to the old loop, are forgotten. A
process forked after the home started (gunicorn ``--preload``, multiprocessing) gets a
home and connections of its own: the parent's sockets are never used in the child.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from asyncjobs.brokers.errors import BrokerError

T = TypeVar("T")

THREAD_NAME = "asyncjobs-home"

_homes: weakref.WeakSet[ClientHome] = weakref.WeakSet()


class ClientHome:
    """Where one broker's client side lives (see the module docstring)."""

    def __init__(self, forget_client: Callable[[], None]) -> None:
        self._forget_client = forget_client  # drops connections of a loop left behind
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._own: _OwnLoop | None = None
        self._pid = os.getpid()
        _homes.add(self)

    def loop_for(self, current: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
        """The loop a send from ``current`` (None: sync code) must run in: the home."""
        with self._lock:
            if self._pid != os.getpid():
                self._after_fork()
            home = self._loop
            if home is not None and home.is_running():
                return home
            if current is not None and threading.current_thread() is threading.main_thread():
                self._loop = current  # long-lived: an ASGI server's, a worker's
            else:
                self._loop = self._own_loop()
            if home is not None and home is not self._loop:
                self._forget_client()  # bound to a loop that no longer runs
            return self._loop

    def is_home(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self.loop_for(loop) is loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` in the home loop, from whatever loop calls this."""
        loop = asyncio.get_running_loop()
        home = self.loop_for(loop)
        if home is loop:
            return await coro
        return await asyncio.wrap_future(submit(home, coro, contextvars.copy_context()))

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coro`` in the home loop and wait for it from sync code (at most
        ``timeout_s``: then ``concurrent.futures.TimeoutError``, the coroutine cancelled)."""
        future = submit(self.loop_for(None), coro, contextvars.copy_context())
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        if self._own is None or not self._own.alive:
            self._own = _OwnLoop()
        return self._own.loop

    def _after_fork(self) -> None:
        # Threads do not survive a fork, and the parent's sockets are the parent's.
        self._pid, self._loop, self._own = os.getpid(), None, None
        self._forget_client()


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

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        self.loop.run_forever()


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
        task.add_done_callback(lambda done: _settle(future, done))
        future.add_done_callback(lambda done: _cancel_in(loop, task) if done.cancelled() else None)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:  # the loop closed under us
        coro.close()
        raise BrokerError("the event loop that owns the broker client has closed") from None
    return future


def _settle(future: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
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
