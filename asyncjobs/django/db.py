"""Database connection hygiene around tasks.

Django's async ORM runs queries through ``sync_to_async(thread_sensitive=True)``: without
a per-task context every concurrent task in a worker would share *one* thread and so one
connection. Each async task therefore runs in its own ``ThreadSensitiveContext`` (its
own thread and connection, created only if it touches the ORM), and that connection is
closed (or returned to Django's pool) when the task ends, so a restarted database never
leaves a worker holding dead connections. Sync tasks run in the worker's thread pool and
get Django's request semantics: ``close_old_connections()`` before and after.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.db import close_old_connections, connections

from asyncjobs.hooks import Hooks, TaskFunction

_THREAD_CONTEXT = SyncToAsync.thread_sensitive_context


def _close_thread_connections() -> None:
    connections.close_all()


def _entered() -> ThreadSensitiveContext:
    """A ``ThreadSensitiveContext`` entered as ``__aenter__`` enters one when no context
    is set (the caller checked), without its look-up that raises ``LookupError`` each
    time: a tenth of the wrapper's cost, per task. Its own ``__aexit__`` closes it."""
    context = ThreadSensitiveContext()
    context.token = _THREAD_CONTEXT.set(context)
    return context


class DatabaseHygiene(Hooks):
    def wrap_task(self, func: TaskFunction) -> TaskFunction:
        if asyncio.iscoroutinefunction(func):
            return self.wrap_async(func)
        return self.wrap_sync(func)

    def wrap_async(self, func: TaskFunction) -> TaskFunction:
        @functools.wraps(func)
        async def run(*args: Any, **kwargs: Any) -> Any:
            if _THREAD_CONTEXT.get(None) is not None:  # inside one already: it applies
                return await func(*args, **kwargs)
            context = _entered()
            try:
                return await func(*args, **kwargs)
            finally:
                # Only if the task touched the ORM did it get a thread (and a
                # connection) of its own; close it in that thread.
                if context in SyncToAsync.context_to_thread_executor:
                    await sync_to_async(_close_thread_connections)()
                    await context.__aexit__(None, None, None)  # type: ignore[no-untyped-call]
                else:  # all its __aexit__ does then, without a weak-keyed pop per task
                    _THREAD_CONTEXT.reset(context.token)  # type: ignore[arg-type]

        return run

    def wrap_sync(self, func: TaskFunction) -> TaskFunction:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            close_old_connections()
            try:
                return func(*args, **kwargs)
            finally:
                close_old_connections()

        return run
