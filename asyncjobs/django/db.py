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

import functools
from typing import Any

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.db import close_old_connections, connections

from asyncjobs.worker.hooks import AsyncFunc, SyncFunc


def _close_thread_connections() -> None:
    connections.close_all()


class DatabaseHygiene:
    def wrap_async(self, func: AsyncFunc) -> AsyncFunc:
        @functools.wraps(func)
        async def run(*args: Any, **kwargs: Any) -> Any:
            async with ThreadSensitiveContext() as context:
                try:
                    return await func(*args, **kwargs)
                finally:
                    # Only if the task touched the ORM did it get a thread (and a
                    # connection) of its own; close it in that thread.
                    if context in SyncToAsync.context_to_thread_executor:
                        await sync_to_async(_close_thread_connections)()

        return run

    def wrap_sync(self, func: SyncFunc) -> SyncFunc:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            close_old_connections()
            try:
                return func(*args, **kwargs)
            finally:
                close_old_connections()

        return run

    def __eq__(self, other: object) -> bool:  # registering twice is a no-op
        return isinstance(other, DatabaseHygiene)

    def __hash__(self) -> int:
        return hash(DatabaseHygiene)
