"""``capture()``: a test's sends, kept in this process, run when the test says so.

Inside ``with capture() as jobs:`` (or ``async with``) the current app is a copy of the
configured one whose transport is ``memory://`` (a server of its own, dropped at the
end): nothing reaches Redis or RabbitMQ. Every send is recorded (``jobs.sent``);
``jobs.run_pending()`` runs what waits through the real worker path in the test's own
thread (see ``asyncjobs.testing.local``). With ``eager=True`` each send runs at once,
before ``kiq()`` returns.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Self

from asgiref.sync import async_to_sync
from taskiq.result import TaskiqResult

from asyncjobs.app import App, Current, current_app, restore
from asyncjobs.app import job as asyncjobs_job
from asyncjobs.brokers.home import running_loop
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import AsyncJobsError, SyncInEventLoopError
from asyncjobs.handles import JobHandle
from asyncjobs.hooks import Hooks
from asyncjobs.testing.local import LocalWorker, Ran
from asyncjobs.testing.sent import SendRecorder, SentTask

_servers = itertools.count(1)


def _carried(source: App | None) -> tuple[Hooks, ...]:
    """The configured app's hooks that keep state the tested code reads back (a hook
    with ``carry_into_tests = True``: the django.tasks backend's status documents)."""
    hooks = source.hooks.hooks if source is not None else ()
    return tuple(h for h in hooks if getattr(h, "carry_into_tests", False))


def memory_config(config: AsyncJobsConfig, broker_url: str | None = None) -> AsyncJobsConfig:
    """``config`` on a ``memory://`` server of its own (or ``broker_url``'s): results and
    schedules there too, no tracing exporter, no management API; every other setting as
    configured."""
    return config.model_copy(
        update={
            "broker_url": broker_url or f"memory://asyncjobs-test-{next(_servers)}",
            "result_backend_url": None,
            "schedule_store_url": None,
            "amqp_management_url": None,
            "tracing": False,
        }
    )


class TaskCapture:
    """The sends of a test and the means to run them; see the module docstring."""

    def __init__(
        self,
        config: AsyncJobsConfig | None = None,
        *,
        eager: bool = False,
        retries: bool = False,
        raise_errors: bool = True,
        hooks: tuple[Hooks, ...] = (),
    ) -> None:
        self.eager, self.retries, self.raise_errors = eager, retries, raise_errors
        self._config = config
        self._hooks = hooks
        self._previous: Current = None
        self._recorder: SendRecorder | None = None
        self._worker: LocalWorker | None = None
        self._running = threading.Lock()  # eager sends made by a running task wait

    # -- entering and leaving --------------------------------------------------------
    def start(self) -> Self:
        """Make the test app current (what ``with`` does)."""
        previous = _current_or_none()
        base = self._config or (previous.config if previous is not None else None)
        if base is None:
            previous = current_app()  # raises: nothing to copy the settings from
        assert base is not None
        self._previous = self._build(memory_config(base), previous)
        return self

    def stop(self) -> None:
        """Restore the app that was current before; drop the test's queues."""
        app = self.app
        app.broker.home.stop()  # asyncjobs' own loop, if a sync send started it
        discard = app.config.transport.discard_state
        if discard is not None:
            discard(app.config.broker_url, app.config.key_prefix)
        restore(self._previous)

    def reconfigure(self, config: AsyncJobsConfig) -> None:
        """Follow a settings change (``override_settings(ASYNCJOBS=...)``): the app now
        has ``config``'s settings, still on this capture's ``memory://`` server, with
        what was sent so far."""
        self._build(memory_config(config, self.app.config.broker_url), None, self._recorder)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def _build(
        self, config: AsyncJobsConfig, previous: App | None, keep: SendRecorder | None = None
    ) -> Current:
        """Build and activate the test app; what was current before (an app, or why
        there was none)."""
        recorder = keep or SendRecorder(config.default_queue)
        source = previous or _current_or_none()
        app = App.from_config(config, (*self._hooks, *_carried(source), recorder))
        # Sends on commit still wait for the commit (captureOnCommitCallbacks).
        app.transactions = source.transactions if source is not None else None
        app.local = self
        before = app.activate()
        self.app, self._recorder = app, recorder
        self._worker = LocalWorker(app)
        return before

    # -- what was sent ---------------------------------------------------------------
    @property
    def sent(self) -> list[SentTask]:
        """Every send so far, in order (sends made by tasks that ran included)."""
        return self._sent_recorder().snapshot()

    @property
    def pending(self) -> list[SentTask]:
        """The sends that have not run to an end yet (a retry waiting included)."""
        finished = {r.task_id for r in self._ran() if r.outcome.value in _FINAL}
        return [s for s in self.sent if s.task_id not in finished]

    @property
    def ran(self) -> list[Ran]:
        """Every run so far, in order, with how it ended."""
        return self._ran()

    def sent_of(self, fn: Any) -> list[SentTask]:
        """The sends of one task (the ``@task`` function or its name)."""
        name = _task_name(fn)
        return [s for s in self.sent if s.task_name == name]

    def assert_enqueued(
        self,
        fn: Any,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        count: int | None = None,
    ) -> SentTask:
        """Fail unless ``fn`` was sent with these arguments (None: any) and queue; with
        ``count``, exactly that many times. Returns the last matching send."""
        matching = [s for s in self.sent_of(fn) if s.matches(_tuple(args), kwargs, queue)]
        if not matching or (count is not None and len(matching) != count):
            wanted = "" if count is None else f" {count} time(s)"
            raise AssertionError(
                f"expected {_task_name(fn)} sent{wanted} with args={args!r} "
                f"kwargs={kwargs!r} queue={queue!r}; matching: {len(matching)}; "
                f"sent: {self._listing()}"
            )
        return matching[-1]

    def assert_not_enqueued(
        self,
        fn: Any,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Fail if ``fn`` was sent (with these arguments, when given)."""
        matching = [s for s in self.sent_of(fn) if s.matches(_tuple(args), kwargs, None)]
        if matching:
            raise AssertionError(
                f"expected no send of {_task_name(fn)} with args={args!r} "
                f"kwargs={kwargs!r}; sent: {', '.join(s.describe() for s in matching)}"
            )

    def clear(self) -> None:
        """Forget what was sent (what waits still waits)."""
        self._sent_recorder().clear()

    # -- running -----------------------------------------------------------------------
    def run_pending(
        self, *, retries: bool | None = None, raise_errors: bool | None = None
    ) -> list[Ran]:
        """Run every waiting message, and what those send, until none is left; from
        sync code (a ``TestCase`` method). See ``arun_pending``."""
        if running_loop() is not None:
            raise SyncInEventLoopError(
                "run_pending() was called inside a running event loop; use "
                "`await jobs.arun_pending()` there"
            )
        return async_to_sync(self.arun_pending)(retries=retries, raise_errors=raise_errors)

    async def arun_pending(
        self, *, retries: bool | None = None, raise_errors: bool | None = None
    ) -> list[Ran]:
        """Run every waiting message through the worker path, one at a time, in order;
        delays and backoffs are not waited for. ``retries`` (default: the capture's,
        off) runs failed attempts again per the task's policy; ``raise_errors``
        (default on) raises the first task exception that ended a message for good."""
        worker = self._worker
        assert worker is not None, "the capture is not started"
        return await worker.run_pending(
            retries=self.retries if retries is None else retries,
            raise_errors=self.raise_errors if raise_errors is None else raise_errors,
        )

    def result(self, job: JobHandle[Any] | str) -> TaskiqResult[Any]:
        """The stored result of a task that ran (its handle or task id); from sync code."""
        if running_loop() is not None:
            raise SyncInEventLoopError(
                "result() was called inside a running event loop; use `await jobs.aresult()`"
            )
        return async_to_sync(self.aresult)(job)

    async def aresult(self, job: JobHandle[Any] | str) -> TaskiqResult[Any]:
        """The stored result of a task that ran; ``AssertionError`` if it has not."""
        handle = asyncjobs_job(job if isinstance(job, str) else job.task_id)
        if not await handle.is_ready():
            raise AssertionError(f"task {handle.task_id} has no result: it has not run")
        return await handle.get_result()

    # -- eager sends (called by the kicker after a send) --------------------------------
    def after_send_sync(self) -> None:
        if self.eager and self._running.acquire(blocking=False):
            try:
                self.run_pending()
            finally:
                self._running.release()

    async def after_send(self) -> None:
        if self.eager and self._running.acquire(blocking=False):
            try:
                await self.arun_pending()
            finally:
                self._running.release()

    # -- internals -----------------------------------------------------------------------
    def _sent_recorder(self) -> SendRecorder:
        assert self._recorder is not None, "the capture is not started"
        return self._recorder

    def _ran(self) -> list[Ran]:
        return [] if self._worker is None else list(self._worker.outcomes.ran)

    def _listing(self) -> str:
        sent = self.sent
        return "; ".join(s.describe() for s in sent) if sent else "nothing"


_FINAL = frozenset({"succeeded", "failed"})


def capture(
    config: AsyncJobsConfig | None = None,
    *,
    eager: bool = False,
    retries: bool = False,
    raise_errors: bool = True,
) -> TaskCapture:
    """``with capture() as jobs:``: the configured settings (or ``config``) on an
    in-process ``memory://`` transport for the block; see ``TaskCapture``."""
    return TaskCapture(config, eager=eager, retries=retries, raise_errors=raise_errors)


def _current_or_none() -> App | None:
    try:
        return current_app()
    except AsyncJobsError:  # not configured (or configured wrong): nothing to restore
        return None


def _task_name(fn: Any) -> str:
    name = fn if isinstance(fn, str) else getattr(fn, "task_name", None)
    if not isinstance(name, str):
        raise TypeError(f"expected a @task function or a task name, got {fn!r}")
    return name


def _tuple(args: tuple[Any, ...] | list[Any] | None) -> tuple[Any, ...] | None:
    return None if args is None else tuple(args)


__all__ = ["TaskCapture", "capture", "memory_config"]
