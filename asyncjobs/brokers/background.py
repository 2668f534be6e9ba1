"""A worker-side loop that runs in its own asyncio task until stopped."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

STOP_TIMEOUT_S = 2.0


class BackgroundLoop(ABC):
    """``start()`` runs ``_run`` in a named task (once); ``stop()`` cancels it and waits at
    most ``STOP_TIMEOUT_S``, even if a library swallows the cancellation."""

    task_name = "asyncjobs-loop"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._starting()
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_TIMEOUT_S)
            self._task = None

    def _starting(self) -> None:  # noqa: B027 - a hook; most loops need nothing here
        """Reset per-run state (in the new loop) before the task starts."""

    @abstractmethod
    async def _run(self) -> None: ...
