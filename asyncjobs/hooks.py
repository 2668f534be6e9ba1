"""One extension point for everything that happens to a task: ``Hooks``.

Subclass ``Hooks`` and override what you need; every hook is an async no-op here, and
one you do not override costs nothing (``HookSet`` calls only overriders). Register
hooks on the app: ``asyncjobs.configure(config, hooks=[MyHooks()])``,
``app.add_hooks(...)``, or in Django ``ASYNCJOBS["HOOKS"] = ["shop.hooks.Audit"]``.
asyncjobs' own tracing, metrics, health probes and the Django adapter's database hygiene
are hooks too. taskiq middlewares still run (``pre_send``, ``post_send``,
``pre_execute``, ``post_execute``, ``post_save``) for compatibility; new code uses hooks.

Where each runs: the send hooks in whatever process calls ``kiq()``, in the caller's
task; the worker hooks in the worker's event loop, the run hooks in the message's own
asyncio task (a context variable set in ``before_run`` is seen by the task and by
``after_run``). A hook must not block the event loop.

An observing hook that raises is logged and otherwise ignored: watching must never
change what happens to a message. Two hooks may decide: ``on_send`` may refuse a send by
raising (``kiq()`` raises it; nothing is sent), and ``before_run`` may raise
``Postpone`` to have the message run later instead of now (rate limits, concurrency
limits: a postponed run is not an attempt and counts no delivery).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from taskiq.message import TaskiqMessage

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.brokers.envelope import Envelope
from asyncjobs.errors import AsyncJobsError

logger = logging.getLogger("asyncjobs.hooks")


class Outcome(StrEnum):
    """How one run of a task ended."""

    SUCCEEDED = "succeeded"
    RETRIED = "retried"  # failed; the next attempt is scheduled
    FAILED = "failed"  # failed for good: dead-lettered
    CUT_OFF = "cut_off"  # still running at the drain deadline: cancelled, handed back
    POSTPONED = "postponed"  # a before_run hook raised Postpone: never started


class Settlement(StrEnum):
    """What the broker was told about a delivery (and confirmed)."""

    ACKED = "acked"
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"
    HANDED_BACK = "handed_back"  # to another worker, now (a drain, a cut-off)
    RELEASED = "released"  # never started here: given back uncounted
    POSTPONED = "postponed"


class Postpone(AsyncJobsError):
    """Raised by a ``before_run`` hook: run this message ``delay_s`` from now, not now."""

    def __init__(self, delay_s: float, reason: str = "") -> None:
        super().__init__(reason or f"postponed by {delay_s:g} s")
        self.delay_s = max(0.0, float(delay_s))
        self.reason = reason


@dataclass(slots=True, eq=False)
class Run:
    """One run of a task in a worker, as the hooks see it."""

    delivery: Delivery
    message: TaskiqMessage  # its labels are the retry's, when on_retry is called
    envelope: Envelope  # its labels as read when it was received
    error: BaseException | None = None  # what the task raised, once it ran and failed

    @property
    def queue(self) -> str:
        return self.delivery.queue

    @property
    def task_name(self) -> str:
        return self.message.task_name

    @property
    def task_id(self) -> str:
        return self.message.task_id

    @property
    def attempt(self) -> int:
        return self.envelope.attempt


TaskFunction = Callable[..., Any]


class Hooks:
    """The task lifecycle. Override what you need; every method is a no-op here."""

    # -- sending (any process) -----------------------------------------------------
    async def on_send(self, message: TaskiqMessage) -> None:
        """Before the message is encoded: read or add labels. Raising refuses the send."""

    async def on_sent(self, message: TaskiqMessage) -> None:
        """The broker has the message."""

    async def on_send_error(self, task_id: str | None, error: BaseException) -> None:
        """``kiq()`` is about to raise ``error`` (``task_id``: None when it failed before
        the message had one)."""

    # -- a worker ------------------------------------------------------------------
    async def on_worker_ready(self) -> None:
        """Connected to the broker; about to consume."""

    async def on_fetched(self, deliveries: Sequence[Delivery]) -> None:
        """A fetch returned (possibly nothing, after its wait): the broker answers."""

    async def on_fetch_error(self, error: BaseException) -> None:
        """A fetch raised: the broker is unreachable or failing."""

    async def on_worker_draining(self) -> None:
        """SIGTERM or SIGINT (or a test) asked the worker to stop."""

    async def on_worker_stopped(self) -> None:
        """The consume loop ended; running tasks are settled or handed back."""

    # -- runs ------------------------------------------------------------------------
    def wrap_task(self, func: TaskFunction) -> TaskFunction:
        """Return ``func`` wrapped (once per task, not per message): code that must run
        around every call, in the task's own thread for a sync task. Async and sync
        functions arrive as they are; keep the kind."""
        return func

    async def before_run(self, run: Run) -> None:
        """The message is valid and its task known; it is about to run. Raise
        ``Postpone`` to run it later instead. ``after_run`` always follows."""

    async def on_retry(self, run: Run, error: BaseException | None, delay_s: float) -> None:
        """The run failed and will be retried in ``delay_s``: called before the retry is
        encoded (``run.message.labels`` are the retry's)."""

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        """The run ended (``duration_s``: the task's own time; 0 when postponed)."""

    async def on_dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        """The message is in its dead letters, run or not (undecodable, unknown task...)."""

    async def on_settled(self, delivery: Delivery, settlement: Settlement) -> None:
        """The broker confirmed what happens to the delivery next."""


Observer = Callable[..., Awaitable[None]]


def _overriders(hooks: Sequence[Hooks], name: str) -> tuple[Any, ...]:
    """The bound ``name`` of each hook that overrides it (the others would do nothing)."""
    default = getattr(Hooks, name)
    return tuple(getattr(h, name) for h in hooks if getattr(type(h), name) is not default)


class HookSet:
    """Calls each hook's overridden methods, in registration order."""

    def __init__(self, hooks: Iterable[Hooks] = ()) -> None:
        self.hooks: tuple[Hooks, ...] = tuple(hooks)
        for hook in self.hooks:
            if not isinstance(hook, Hooks):
                raise TypeError(f"{hook!r} is not an asyncjobs.hooks.Hooks")
        of = self.hooks
        self._on_send = _overriders(of, "on_send")
        self._on_sent = _overriders(of, "on_sent")
        self._on_send_error = _overriders(of, "on_send_error")
        self._on_worker_ready = _overriders(of, "on_worker_ready")
        self._on_fetched = _overriders(of, "on_fetched")
        self._on_fetch_error = _overriders(of, "on_fetch_error")
        self._on_worker_draining = _overriders(of, "on_worker_draining")
        self._on_worker_stopped = _overriders(of, "on_worker_stopped")
        self._wrap_task = _overriders(of, "wrap_task")
        self._before_run = _overriders(of, "before_run")
        self._on_retry = _overriders(of, "on_retry")
        self._after_run = _overriders(of, "after_run")
        self._on_dead_letter = _overriders(of, "on_dead_letter")
        self._on_settled = _overriders(of, "on_settled")

    def with_hooks(self, *more: Hooks) -> HookSet:
        """These hooks, then ``more``."""
        return HookSet((*self.hooks, *more)) if more else self

    # -- deciding ----------------------------------------------------------------------
    async def on_send(self, message: TaskiqMessage) -> None:
        for hook in self._on_send:
            await hook(message)

    async def before_run(self, run: Run) -> None:
        """Raises ``Postpone`` if a hook does; other errors are logged."""
        for hook in self._before_run:
            try:
                await hook(run)
            except Postpone:
                raise
            except Exception:
                logger.exception("hook %r failed on before_run", hook.__self__)

    def wrap_task(self, func: TaskFunction) -> TaskFunction:
        """``func`` inside every hook's wrapper (the first registered innermost)."""
        for hook in self._wrap_task:
            func = hook(func)
        return func

    # -- observing ---------------------------------------------------------------------
    async def on_sent(self, message: TaskiqMessage) -> None:
        await _observe(self._on_sent, message)

    async def on_send_error(self, task_id: str | None, error: BaseException) -> None:
        await _observe(self._on_send_error, task_id, error)

    async def on_worker_ready(self) -> None:
        await _observe(self._on_worker_ready)

    async def on_fetched(self, deliveries: Sequence[Delivery]) -> None:
        await _observe(self._on_fetched, deliveries)

    async def on_fetch_error(self, error: BaseException) -> None:
        await _observe(self._on_fetch_error, error)

    async def on_worker_draining(self) -> None:
        await _observe(self._on_worker_draining)

    async def on_worker_stopped(self) -> None:
        await _observe(self._on_worker_stopped)

    async def on_retry(self, run: Run, error: BaseException | None, delay_s: float) -> None:
        await _observe(self._on_retry, run, error, delay_s)

    async def after_run(
        self, run: Run, outcome: Outcome, error: BaseException | None, duration_s: float
    ) -> None:
        await _observe(self._after_run, run, outcome, error, duration_s)

    async def on_dead_letter(self, delivery: Delivery, record: DeadLetter) -> None:
        await _observe(self._on_dead_letter, delivery, record)

    async def on_settled(self, delivery: Delivery, settlement: Settlement) -> None:
        await _observe(self._on_settled, delivery, settlement)


async def _observe(hooks: tuple[Observer, ...], *args: Any) -> None:
    for hook in hooks:
        try:
            await hook(*args)
        except Exception:
            logger.exception("hook %r failed on %s", hook.__self__, hook.__name__)  # type: ignore[attr-defined]
