"""The handle ``kiq()`` and ``asyncjobs.job(task_id)`` return: taskiq's, with a
``wait_result(timeout=...)`` that keeps its word.

taskiq's ``AsyncTaskiqTask.wait_result`` polls ``is_ready()`` and compares the time with
its timeout only between polls, and each poll can block for as long as the result
backend's socket timeout: ``wait_result(timeout=2)`` on a frozen Redis took 10 s. Here
one ``asyncio.timeout`` bounds the whole wait, a poll in progress included, and the error
is both asyncjobs' own and taskiq's ``TaskiqResultTimeoutError``.

Without a result store (RabbitMQ without ``RESULT_BACKEND_URL``) taskiq's
``DummyResultBackend`` answers every read with a made-up success (ready at once,
``is_err=False``, ``return_value=None``): a caller would take a task that has not run, or
failed, for one that succeeded. Here every read raises ``ResultsDisabledError`` instead.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from taskiq import AsyncTaskiqTask
from taskiq.abc.result_backend import AsyncResultBackend
from taskiq.result import TaskiqResult

from asyncjobs.brokers.home import ClientHome
from asyncjobs.brokers.stores import ResultStore
from asyncjobs.errors import ResultsDisabledError, ResultTimeoutError

R = TypeVar("R")


class JobHandle(AsyncTaskiqTask[R]):
    """A sent task: ``task_id``, ``is_ready()``, ``get_result()``, ``wait_result()``.

    With ``home`` (the broker's ``ClientHome``) its reads of the result store run in the
    loop the client lives in, whichever loop awaits them (a store's connections belong
    to one loop). Every read raises ``ResultsDisabledError`` when ``result_backend`` is
    no result store (none is configured)."""

    def __init__(
        self,
        task_id: str,
        result_backend: AsyncResultBackend[R],
        return_type: type[R] | None = None,
        home: ClientHome | None = None,
    ) -> None:
        super().__init__(task_id, result_backend, return_type)
        self._home = home

    async def is_ready(self) -> bool:
        self._require_results()
        if self._home is None:
            return await super().is_ready()
        return await self._home.run(super().is_ready())

    async def get_result(self, with_logs: bool = False) -> TaskiqResult[R]:
        self._require_results()
        if self._home is None:
            return await super().get_result(with_logs)
        return await self._home.run(super().get_result(with_logs))

    async def wait_result(
        self,
        check_interval: float = 0.2,
        timeout: float = -1.0,  # noqa: ASYNC109 (taskiq's signature)
        with_logs: bool = False,
    ) -> TaskiqResult[R]:
        """The task's result once it is stored. With ``timeout`` > 0 (seconds), raises
        ``ResultTimeoutError`` by then (plus a few ms), whatever the result backend
        does; without, waits for ever (as taskiq does). ``ResultsDisabledError`` at once
        when no result store is configured."""
        self._require_results()
        if not timeout > 0:
            return await super().wait_result(check_interval, timeout, with_logs)
        try:
            async with asyncio.timeout(timeout) as deadline:
                return await super().wait_result(check_interval, -1.0, with_logs)
        except TimeoutError:
            if not deadline.expired():  # not ours: raised by a poll
                raise
        raise ResultTimeoutError(task_id=self.task_id, timeout=timeout)

    def _require_results(self) -> None:
        if not isinstance(self.result_backend, ResultStore):
            raise ResultsDisabledError.reading(f"the result of task {self.task_id}")
