"""Freezing a server with SIGSTOP, for tests of a broker that stops answering.

``kill(SIGSTOP)`` returns before the process has stopped: the kernel wakes one thread to
take the signal, and that thread then stops the others (the "group stop"). A
multi-threaded server keeps running for a while after ``kill()`` returns: RabbitMQ's
Erlang VM (21 threads) was seen with most threads still running 3 ms later (median) and
up to 12 ms, long enough to take a publish and confirm it, which made a "frozen"
broker confirm a send once in a CI run. ``frozen`` returns only when every thread of
the process (or of its process group) is stopped, as ``/proc`` reports it, so what the
test does inside the block truly meets a broker that cannot answer.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROC = Path("/proc")
NOT_RUNNING = frozenset("TtZX")  # stopped (by a signal, a tracer), or a process gone


@contextmanager
def frozen(pid: int, *, group: bool = False, timeout_s: float = 10.0) -> Iterator[None]:
    """SIGSTOP ``pid`` (its whole process group if ``group``) and wait until all its
    threads are stopped; SIGCONT when the block ends, whatever happens in it."""
    send = os.killpg if group else os.kill
    send(pid, signal.SIGSTOP)
    try:
        wait_stopped(group_pids(pid) if group else [pid], timeout_s)
        yield
    finally:
        send(pid, signal.SIGCONT)


def wait_stopped(pids: list[int], timeout_s: float) -> None:
    """Return once every thread of ``pids`` is stopped; ``AssertionError`` after
    ``timeout_s``, naming the threads still running."""
    deadline = time.monotonic() + timeout_s
    while True:
        running = [tid for tid, state in thread_states(pids) if state not in NOT_RUNNING]
        if not running:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"threads {running} of {pids} did not stop in {timeout_s} s")
        time.sleep(0.0005)  # re-read /proc: the group stop is on its way


def thread_states(pids: list[int]) -> list[tuple[int, str]]:
    """``(tid, state)`` of every thread of ``pids`` (``R``, ``S``, ``T``...)."""
    states = []
    for pid in pids:
        for task in (PROC / str(pid) / "task").iterdir():
            try:
                states.append((int(task.name), _state(task / "stat")))
            except FileNotFoundError:  # the thread ended meanwhile
                continue
    return states


def group_pids(pgid: int) -> list[int]:
    """The processes of process group ``pgid``."""
    pids = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(_fields(stat)[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def _state(stat_file: Path) -> str:
    return _fields(stat_file.read_text())[0]


def _fields(stat: str) -> list[str]:
    # The command name (field 2) is in parentheses and may hold spaces: read after it.
    return stat[stat.rindex(")") + 2 :].split()
