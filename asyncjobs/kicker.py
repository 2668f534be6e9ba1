"""The kicker ``fn.kiq()`` and ``fn.kicker()`` use: taskiq's, plus a failure hook and
errors that are asyncjobs' own.

Taskiq calls a middleware's ``pre_send`` before a send and ``post_send`` after it (the
app's ``HookBridge`` turns them into the ``on_send``/``on_sent`` hooks), but nothing
when the send fails: a hook that started something in ``on_send`` (a tracing span) would
never learn how it ended. ``JobKicker`` calls the ``on_send_error`` hooks, then raises
(``task_id``: the failed message's, None when it failed before it had one).

Taskiq wraps every failure of ``broker.kick`` in its ``SendTaskError``, so
``except PayloadTooLargeError`` or ``except AsyncJobsError`` would never match. The
kicker raises the transport's own error instead when it is an ``AsyncJobsError``, and
wraps anything else in a ``BrokerError`` (``BrokerConnectionError`` for connection
failures) that keeps the original as its ``__cause__``. A send whose outcome is unknown
(``SendOutcomeUnknownError``, with the message's task id) reaches the caller as it is.

The handle returned is a ``JobHandle``, whose ``wait_result(timeout=...)`` keeps its
timeout (see ``asyncjobs.handles``).

The send itself is taskiq's ``AsyncKicker.kiq``, step for step, in one coroutine (no
``AsyncTaskiqTask`` made and dropped), and the message is built as taskiq builds it,
without pydantic's validation when nothing could change (``asyncjobs.codec``): about
40% of what a send cost in Python before it reached the transport.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import sys
import uuid
from collections.abc import Callable, Coroutine
from types import CoroutineType
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker
from taskiq.message import TaskiqMessage

from asyncjobs.brokers.errors import (
    AsyncJobsError,
    BrokerConnectionError,
    BrokerError,
    SendOutcomeUnknownError,
)
from asyncjobs.brokers.home import running_loop
from asyncjobs.codec import build_message, prepared_args, task_id_from, wire_labels
from asyncjobs.errors import NoEventLoopError, SyncInEventLoopError
from asyncjobs.handles import JobHandle

if TYPE_CHECKING:
    from taskiq.abc.broker import AsyncBroker

    from asyncjobs.app import App

logger = logging.getLogger("asyncjobs")

# A sync send waits this much longer than SEND_TIMEOUT (which bounds the send itself)
# for its result to cross back from the loop that sent it.
SYNC_MARGIN_S = 5.0

P = ParamSpec("P")
R = TypeVar("R")

_taskiq_logger = logging.getLogger("taskiq")  # taskiq's kicker logs each send there
_NO_PRE_SEND = TaskiqMiddleware.pre_send  # a middleware that keeps these sends nothing
_NO_POST_SEND = TaskiqMiddleware.post_send


F = TypeVar("F", bound=Callable[..., Any])


def coroutine_function(fn: F) -> F:
    """Mark a plain ``def`` that returns a coroutine as a coroutine function, as an
    ``async def`` is (``inspect``/``asyncio.iscoroutinefunction``; ``async_to_sync``
    warns about a callable that is not). ``kiq`` is a plain ``def`` so that a call
    without a running loop fails at once instead of making a coroutine nobody awaits."""
    if sys.version_info >= (3, 12):
        return inspect.markcoroutinefunction(fn)
    fn._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    return fn


class JobKicker(AsyncKicker[P, R]):
    """``fn.kicker()``: taskiq's kicker (``with_labels``, ``with_task_id``) plus
    ``kiq_sync``, ``on_commit`` and asyncjobs' errors."""

    def __init__(
        self,
        task_name: str,
        broker: AsyncBroker,
        labels: dict[str, Any],
        return_type: type[R] | None = None,
        *,
        app: App,
        check_arguments: Callable[[tuple[Any, ...], dict[str, Any]], None] | None = None,
        on_commit: bool = False,
    ) -> None:
        super().__init__(task_name, broker, labels, return_type)
        self.app = app
        self._check_arguments = check_arguments
        self._on_commit = on_commit
        self._using: str | None = None

    def on_commit(self, using: str | None = None) -> Self:
        """Send once the transaction open on database ``using`` commits (at once when none
        is open, or from async code: an event loop's thread holds no transaction)."""
        self._on_commit, self._using = True, using
        return self

    @coroutine_function
    def kiq(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, JobHandle[Any]]:
        """``await fn.kiq(...)``: the broker has the message when it returns. Outside a
        running event loop it fails at once (use ``kiq_sync``); arguments that do not fit
        the task fail here, before anything is sent."""
        if running_loop() is None:
            name = self.task_name.rsplit(":", 1)[-1]
            raise NoEventLoopError(
                f"{self.task_name}.kiq() was called where no event loop runs, so nothing "
                f"would ever send it: from sync code (a sync view, a signal handler, a "
                f"command) use {name}.kiq_sync(...); asyncio.run() and async_to_sync() "
                f"take a function that awaits {name}.kiq(...), not kiq itself"
            )
        self._check(args, kwargs)
        if self.app.local is None:  # no test's capture: one coroutine less per send
            return self._kiq(*args, **kwargs)
        return self._kiq_here(*args, **kwargs)

    def kiq_sync(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[Any]:
        """``kiq()`` for sync code, from any thread: returns once the broker has the
        message (the same meaning), or raises. In an event loop it fails at once (use
        ``await kiq()``: blocking would stall every other coroutine of the loop)."""
        if running_loop() is not None:
            raise SyncInEventLoopError(
                f"{self.task_name}.kiq_sync() was called inside a running event loop, which "
                "it would block; use `await ...kiq(...)` there"
            )
        self._check(args, kwargs)
        if self._on_commit:
            return self._kiq_on_commit(args, kwargs)
        return self._kiq_sync(args, kwargs)

    async def _kiq_here(self, *args: Any, **kwargs: Any) -> JobHandle[Any]:
        handle = await self._kiq(*args, **kwargs)
        if self.app.local is not None:  # a test's capture: an eager one runs it now
            await self.app.local.after_send()
        return handle

    async def _kiq(self, *args: Any, **kwargs: Any) -> JobHandle[Any]:
        """taskiq's ``AsyncKicker.kiq`` (the same steps, middlewares and errors), in one
        coroutine: the message, ``pre_send``, the formatter, ``broker.kick``,
        ``post_send`` in reverse; plus ``on_send_error`` and asyncjobs' errors."""
        task_id: str | None = None
        try:
            _taskiq_logger.debug(
                "Kicking %s with args=%s and kwargs=%s.", self.task_name, args, kwargs
            )
            message = self._prepare_message(*args, **kwargs)
            task_id = message.task_id
            broker = self.broker
            middlewares = broker.middlewares
            for middleware in middlewares:
                if middleware.__class__.pre_send is not _NO_PRE_SEND:
                    prepared: Any = middleware.pre_send(message)
                    message = await prepared if _awaitable(prepared) else prepared
            try:
                await broker.kick(broker.formatter.dumps(message))
            except Exception as exc:
                raise SendTaskError from exc
            for middleware in reversed(middlewares):
                if middleware.__class__.post_send is not _NO_POST_SEND:
                    done: Any = middleware.post_send(message)
                    if _awaitable(done):
                        await done
        except Exception as exc:
            await self.app.hooks.on_send_error(task_id, exc)
            error = send_error(exc, self.task_name, task_id)
            if error is exc:
                raise
            raise error from error.__cause__
        return self._handle(message.task_id)

    def _kiq_sync(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> JobHandle[Any]:
        # The whole send (hooks included) runs in the broker's home loop, in this
        # thread's context (its tracing context and baggage go along).
        wait_s = self.app.config.send_timeout_s + SYNC_MARGIN_S
        try:
            handle = self.app.broker.home.run_sync(self._kiq(*args, **kwargs), wait_s)
        except concurrent.futures.TimeoutError:
            raise SendOutcomeUnknownError(
                f"sending task {self.task_name} did not finish within {wait_s:g} s (the loop "
                "that sends is busy or blocked): it may have been delivered",
                task_id=self.custom_task_id or "",
            ) from None
        if self.app.local is not None:  # in the caller's thread: the test's connection
            self.app.local.after_send_sync()
        return handle

    def _kiq_on_commit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> JobHandle[Any]:
        """Register the send with the transaction; what would fail it (encoding, size)
        fails here, in the caller. The task id is fixed now and returned."""
        later = self._copy()
        task_id = later.custom_task_id = self.custom_task_id or uuid.uuid4().hex
        later.broker.formatter.dumps(later._prepare_message(*args, **kwargs))

        def send() -> None:
            try:
                later._kiq_sync(args, kwargs)
            except Exception:
                logger.exception("sending %s [%s] after the commit failed", self.task_name, task_id)

        transactions = self.app.transactions
        if transactions is None or not transactions.defer(send, self._using):
            return later._kiq_sync(args, kwargs)  # no transaction open: now
        return JobHandle(
            task_id, self.broker.result_backend, self.return_type, self.app.broker.home
        )

    def _handle(self, task_id: str) -> JobHandle[Any]:
        home = self.app.broker.home
        return JobHandle(task_id, self.broker.result_backend, self.return_type, home)

    def _check(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._check_arguments is not None:
            self._check_arguments(args, kwargs)

    def _copy(self) -> JobKicker[P, R]:
        copy = JobKicker[P, R](
            task_name=self.task_name,
            broker=self.broker,
            labels=dict(self.labels),
            return_type=self.return_type,
            app=self.app,
        )
        copy.custom_task_id = self.custom_task_id
        return copy

    def _prepare_message(self, *args: Any, **kwargs: Any) -> TaskiqMessage:
        """taskiq's message of this call, built for less CPU (``asyncjobs.codec``)."""
        listed, named = prepared_args(args, kwargs, self._prepare_arg)
        labels, labels_types = wire_labels(self.labels) if self.labels else ({}, {})
        task_id = self.custom_task_id
        if task_id is None:
            task_id = task_id_from(self.broker.id_generator)
        return build_message(task_id, self.task_name, labels, labels_types, listed, named)


def _awaitable(value: Any) -> bool:
    """As taskiq's ``maybe_awaitable`` asks: a middleware's method may be sync or async."""
    return type(value) is CoroutineType or inspect.isawaitable(value)


def send_error(exc: Exception, task_name: str, task_id: str | None) -> Exception:
    """The error ``kiq()`` raises for ``exc``: always an ``AsyncJobsError``."""
    cause = exc.__cause__ if isinstance(exc, SendTaskError) else exc
    if isinstance(cause, AsyncJobsError):
        return cause
    if cause is None:
        cause = exc
    kind = BrokerConnectionError if isinstance(cause, ConnectionError | OSError) else BrokerError
    error = kind(
        f"sending task {task_name} [{task_id or 'no id'}] failed: "
        f"{type(cause).__qualname__}: {cause}"
    )
    error.__cause__ = cause
    return error
