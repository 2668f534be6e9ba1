"""The app: one configured asyncjobs, owning its settings, transport, tasks, hooks and
static schedules.

``configure(config)`` builds an ``App`` and makes it the process's current one (the
Django adapter does this at start-up, or, when a setting is bad, records the error with
``unconfigure(error)``, which every send then raises); ``@task`` functions send through
the current app's broker, workers and the scheduler run the current app. Tests (and
scripts) use ``async with asyncjobs.configured(settings) as app:``, which restores what
was current before and shuts the app's broker down afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from taskiq import TaskiqMiddleware
from taskiq.message import TaskiqMessage

from asyncjobs.brokers.base import ReliableBroker
from asyncjobs.brokers.factory import build_broker
from asyncjobs.brokers.stores import MonitorStore, ResultStore
from asyncjobs.brokers.transport import transport_for
from asyncjobs.codec import JsonFormatter
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.errors import ConfigurationError, NotConfiguredError, ResultsDisabledError
from asyncjobs.handles import JobHandle
from asyncjobs.hooks import Hooks, HookSet
from asyncjobs.schedules.definitions import Schedule
from asyncjobs.schedules.registry import static_schedules
from asyncjobs.tasks import JobTask, registered_tasks, registry
from asyncjobs.transactions import Transactions

CLOSE_TIMEOUT_S = 10.0


class LocalRuns(Protocol):
    """What runs sends in the sender's own process (``asyncjobs.testing``)."""

    def after_send_sync(self) -> None: ...

    async def after_send(self) -> None: ...


@dataclass(eq=False)
class App:
    config: AsyncJobsConfig
    broker: ReliableBroker
    hooks: HookSet = field(default_factory=HookSet)
    # What defers a send to a transaction's commit (the Django adapter's); None: no
    # transactions here, every send goes out at once.
    transactions: Transactions | None = None
    # A test's capture (asyncjobs.testing): the kicker tells it of each send, so an eager
    # capture runs it before kiq() returns. None outside tests.
    local: LocalRuns | None = None
    _monitor: MonitorStore | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_config(cls, config: AsyncJobsConfig, hooks: Iterable[Hooks] = ()) -> App:
        """The app ``config`` describes: its broker (not connected yet) and result store,
        the hooks of ``HOOKS``, tracing's when ``TRACING`` is on, then ``hooks``."""
        broker = build_broker(
            config.broker_url,
            config.transport_options(),
            result_backend_url=config.effective_result_backend_url,
            result_ttl_s=config.result_ttl_s,
        )
        broker.with_formatter(JsonFormatter(config.max_payload_bytes))
        app = cls(config, broker)
        # Sends through a plain taskiq kicker reach the hooks too.
        broker.add_middlewares(HookBridge(app))
        found = [_hook_from_path(path) for path in config.hooks]
        if config.tracing_settings is not None:
            from asyncjobs.tracing import enable_tracing

            found.append(enable_tracing(config))  # send spans; a provider unless one is set
        app.add_hooks(*found, *hooks)
        return app

    def add_hooks(self, *hooks: Hooks) -> None:
        """Run these hooks too (after those added before). A worker takes the hooks it
        finds when it starts."""
        self.hooks = self.hooks.with_hooks(*hooks)

    @property
    def tasks(self) -> dict[str, JobTask[Any, Any]]:
        """The registered tasks by name (``module:function``)."""
        return registered_tasks()

    @property
    def schedules(self) -> list[Schedule]:
        """The static schedules: declared with ``@task(schedule=...)`` and in SCHEDULES."""
        return static_schedules(self.config)

    @property
    def result_store(self) -> ResultStore | None:
        store = self.broker.result_backend
        return store if isinstance(store, ResultStore) else None

    @property
    def monitor_store(self) -> MonitorStore | None:
        """Where workers keep their registry and per-minute counters (built on first
        use, not connected); None when MONITOR is off or no configured URL can keep
        them (``AsyncJobsConfig.effective_monitor_url``)."""
        if self._monitor is None and self.config.monitor:
            url = self.config.effective_monitor_url
            build = transport_for(url).build_monitor_store if url else None
            if url and build is not None:
                self._monitor = build(url, self.config.key_prefix)
        return self._monitor if self.config.monitor else None

    def check(self) -> None:
        """Fail when a task is routed to a queue that is not configured, or a schedule
        names a task that does not exist."""
        check_tasks(self.config)

    def activate(self) -> Current:
        """Make this the process's current app; what was current before (an app, the
        configuration error that left the process without one, or None)."""
        global _current
        previous, _current = _current, self
        registry.default_broker(self.broker)
        return previous

    async def close(self) -> None:
        """Shut the broker (and the monitor store) down if it started (bounded: its
        server may be gone), in the loop its connections belong to, whichever loop
        calls this."""
        broker = self.broker
        monitor, self._monitor = self._monitor, None
        if monitor is not None:  # its connections live where it was used: the home loop
            with contextlib.suppress(Exception):
                close = broker.home.run_where_it_lives(monitor.aclose())
                await asyncio.wait_for(close, CLOSE_TIMEOUT_S)
        if broker.started:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(broker.shutdown(), CLOSE_TIMEOUT_S)
        broker.home.stop()  # asyncjobs' own loop, if sync code started one


class HookBridge(TaskiqMiddleware):
    """taskiq's send hooks, forwarded to the app's: ``fn.kiq()`` and a plain taskiq
    kicker alike reach ``on_send``/``on_sent`` (``JobKicker`` reports failures)."""

    def __init__(self, app: App) -> None:
        super().__init__()
        self.app = app

    async def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        await self.app.hooks.on_send(message)
        return message

    async def post_send(self, message: TaskiqMessage) -> None:
        await self.app.hooks.on_sent(message)


# The process's current app; or, when it has none, the configuration error that left it
# without one. The Django adapter records a bad setting at start-up instead of raising
# it, so that commands that send nothing (migrate, collectstatic, shell) still run;
# current_app() raises that error at the first send, where a generic "not configured"
# would hide the reason. One variable, not a sibling "why": making an app current
# forgets the reason, and configured() restores the reason with the state it replaced.
Current = App | ConfigurationError | None
_current: Current = None


def configure(config: AsyncJobsConfig, *, hooks: Iterable[Hooks] = ()) -> App:
    """Build the app ``config`` describes and make it the process's current one."""
    app = App.from_config(config, hooks)
    app.activate()
    return app


@contextlib.asynccontextmanager
async def configured(
    settings: AsyncJobsConfig | Mapping[str, Any], *, hooks: Iterable[Hooks] = ()
) -> AsyncIterator[App]:
    """An app current for the block (``settings``: a config, or an ``ASYNCJOBS`` dict,
    environment variables ignored); afterwards its broker is shut down and the app that
    was current before is current again."""
    config = settings if isinstance(settings, AsyncJobsConfig) else load_config(settings, {})
    app = App.from_config(config, hooks)
    previous = app.activate()
    try:
        yield app
    finally:
        await app.close()
        restore(previous)


def restore(previous: Current) -> None:
    """Make ``previous`` current again: an app, or the reason there was none (None:
    nothing was configured)."""
    global _current
    if isinstance(previous, App):
        previous.activate()
    else:
        _current = previous


def unconfigure(reason: ConfigurationError) -> None:
    """Leave the process without a current app because of ``reason`` (a bad setting):
    ``current_app()``, hence every send and result lookup, raises it from now on."""
    global _current
    _current = reason


def configuration_error() -> ConfigurationError | None:
    """The configuration error that left the process without a current app, if any."""
    return _current if isinstance(_current, ConfigurationError) else None


def current_app() -> App:
    """The current app; raises the recorded configuration error when a bad setting left
    the process without one, else ``NotConfiguredError``."""
    if isinstance(_current, App):
        return _current
    if _current is not None:
        # A copy: one instance raised again and again (from many threads) would gather
        # every raise's traceback.
        raise copy.copy(_current)
    raise NotConfiguredError(
        "asyncjobs is not configured: add 'asyncjobs.django' to INSTALLED_APPS "
        "(with settings.ASYNCJOBS or ASYNCJOBS_BROKER_URL), or call asyncjobs.configure()"
    )


def current_broker() -> ReliableBroker:
    return current_app().broker


def current_config() -> AsyncJobsConfig:
    return current_app().config


def job(task_id: str) -> JobHandle[Any]:
    """The handle of a task sent earlier, by id: ``is_ready()``, ``get_result()``,
    ``wait_result()`` (e.g. in a view that reports on a task another request sent)."""
    broker = current_broker()
    return JobHandle(task_id, broker.result_backend, home=broker.home)


async def failed_attempts(task_id: str) -> list[dict[str, Any]]:
    """The failed attempts of a task so far, oldest first: ``attempt``, ``error_type``,
    ``error_message``, ``at`` (unix seconds); empty when none failed. Raises
    ``ResultsDisabledError`` when no result store is configured: the record is kept with
    the results, and an empty list would claim that no attempt failed (the worker's log
    has the same lines)."""
    app = current_app()
    store = app.result_store
    if store is None:
        raise ResultsDisabledError.reading(f"the failed attempts of task {task_id}")
    # In the loop the store's connections live in, whichever loop asks.
    return await app.broker.home.run(store.attempts(task_id))


def check_tasks(config: AsyncJobsConfig) -> None:
    """Fail at start-up when a task is routed to a queue that is not configured."""
    problems = [
        f"{name} (queue={t.options.queue!r})"
        for name, t in sorted(registered_tasks().items())
        if t.options.queue is not None and t.options.queue not in config.queues
    ]
    if problems:
        raise ConfigurationError(
            f"QUEUES {list(config.queues)} lacks the queue of: {', '.join(problems)}"
        )
    tasks = registered_tasks()
    unknown = [s.describe() for s in static_schedules(config) if s.task_name not in tasks]
    if unknown:
        raise ConfigurationError(f"SCHEDULES name tasks that do not exist: {'; '.join(unknown)}")


def _hook_from_path(path: str) -> Hooks:
    """An instance of the ``Hooks`` subclass at ``path`` (a HOOKS entry)."""
    module_name, _, name = path.replace(":", ".").rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"HOOKS: cannot import {path!r}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, Hooks)):
        raise ConfigurationError(f"HOOKS: {path!r} is not a subclass of asyncjobs.hooks.Hooks")
    try:
        return found()
    except Exception as exc:
        raise ConfigurationError(
            f"HOOKS: {path!r} cannot be built without arguments: {exc}"
        ) from None
