"""The CPU time a worker spends on a backlog: its process tree, sampled while it drains.

A worker started on a backlog consumes as soon as it has started up, with no idle moment
in between, so the moment it starts consuming is read from the ledger (the earliest task
start, ``Tally.first``) and its CPU clock at that moment from samples taken every
``PERIOD_S`` (user + system, psutil, summed over the worker's whole process tree: the
task process and whatever supervises or feeds it), interpolated between the two samples
around it. Used = the last sample (taken once the ledger counted every task) minus that.
Linux counts process CPU in 10 ms ticks: on 20,000 tasks that is 0.5 µs a task per tick.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time

import psutil  # type: ignore[import-untyped]

from example.processes import ManagedProcess

PERIOD_S = 0.01
REFRESH = 5  # samples between two looks for new processes in the tree


class CpuSampler:
    """``async with CpuSampler(worker) as cpu:`` samples until the block ends; then
    ``cpu.used_since(t)``: CPU seconds from unix time ``t`` to the last sample."""

    def __init__(self, worker: ManagedProcess) -> None:
        self.worker = worker
        self.times: list[float] = []
        self.cpu: list[float] = []
        self._procs: dict[int, psutil.Process] = {}
        self._last: dict[int, float] = {}  # each process's latest reading
        self._gone: float = 0.0  # the last readings of processes that ended meanwhile
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CpuSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample(refresh=True)

    async def _run(self) -> None:
        n = 0
        while True:
            self._sample(refresh=n % REFRESH == 0)
            n += 1
            await asyncio.sleep(PERIOD_S)  # the sampling period

    def _sample(self, refresh: bool) -> None:
        if refresh:
            self._find_processes()
        for pid, proc in list(self._procs.items()):
            try:
                t = proc.cpu_times()
            except psutil.Error:  # ended: its last reading stays counted
                del self._procs[pid]
                self._gone += self._last.pop(pid, 0.0)
                continue
            self._last[pid] = float(t.user + t.system)
        self.times.append(time.time())
        self.cpu.append(self._gone + sum(self._last.values()))

    def _find_processes(self) -> None:
        for pid in tree(self.worker.pid):
            if pid not in self._procs:
                with contextlib.suppress(psutil.Error):
                    self._procs[pid] = psutil.Process(pid)

    def used_since(self, t: float) -> float | None:
        """CPU seconds between unix time ``t`` (interpolated) and the last sample; None
        when ``t`` is outside the samples."""
        if len(self.times) < 2 or not self.times[0] <= t <= self.times[-1]:
            return None
        k = bisect.bisect_right(self.times, t)
        k = min(max(k, 1), len(self.times) - 1)
        t0, t1 = self.times[k - 1], self.times[k]
        c0, c1 = self.cpu[k - 1], self.cpu[k]
        at = c0 if t1 == t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)
        return self.cpu[-1] - at


def tree(root: int) -> list[int]:
    """``root`` and its descendants. Read from /proc/<pid>/task/<pid>/children (the
    children each main thread forked: taskiq's manager and Dramatiq's supervisor fork
    from theirs), which costs a file read a process; psutil's ``children()`` scans all of
    /proc (~3 ms here, too much at 20 looks a second) and is the fallback where the
    kernel lacks that file."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as listing:
                todo += [int(child) for child in listing.read().split()]
        except FileNotFoundError:
            if pid != root:
                continue  # ended meanwhile
            try:
                return [root, *(p.pid for p in psutil.Process(root).children(recursive=True))]
            except psutil.Error:
                return found
        except OSError:
            continue
    return found
