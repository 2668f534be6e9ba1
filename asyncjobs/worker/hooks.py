"""Execution hooks: code that must run around every task (the Django adapter's DB hygiene).

A hook wraps the task function once per task (not per message). Async and sync functions
are wrapped separately because sync tasks run in the worker's thread pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

AsyncFunc = Callable[..., Awaitable[Any]]
SyncFunc = Callable[..., Any]


class ExecutionHook(Protocol):
    def wrap_async(self, func: AsyncFunc) -> AsyncFunc: ...

    def wrap_sync(self, func: SyncFunc) -> SyncFunc: ...


_hooks: list[ExecutionHook] = []


def add_execution_hook(hook: ExecutionHook) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def wrap_task_function(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with every registered hook around it (innermost registered first)."""
    wrapped = func
    for hook in _hooks:
        if asyncio.iscoroutinefunction(func):
            wrapped = hook.wrap_async(wrapped)
        else:
            wrapped = hook.wrap_sync(wrapped)
    return wrapped
