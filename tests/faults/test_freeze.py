"""The ``frozen`` helper the fault tests rely on: inside its block every thread of the
process is stopped, not only signalled (``kill(SIGSTOP)`` returns before that)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.freeze import NOT_RUNNING, frozen, thread_states

# Four threads hashing 64 MiB at a time: hashlib releases the GIL, so they all run at once.
BUSY = """
import hashlib, sys, threading
data = b"x" * (64 << 20)
def spin():
    while True:
        hashlib.sha256(data).digest()
for _ in range(4):
    threading.Thread(target=spin, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""


@pytest.fixture
def busy() -> Iterator[subprocess.Popen[str]]:
    command = [sys.executable, "-c", BUSY]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True) as p:
        try:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
            yield p
        finally:
            p.kill()


@pytest.mark.parametrize("group", [False, True])
def test_every_thread_is_stopped_inside_the_block(busy: subprocess.Popen[str], group: bool) -> None:
    for _ in range(20):
        with frozen(busy.pid, group=group):
            states = thread_states([busy.pid])
            assert len(states) == 5 and all(s in NOT_RUNNING for _, s in states), states
        # ...and running again after it (SIGCONT): the hashing threads get back to work.
        assert any(s == "R" for _, s in _states_once_running(busy.pid)), "not resumed"


def _states_once_running(pid: int) -> list[tuple[int, str]]:
    for _ in range(10_000):  # SIGCONT is asynchronous too: read until a thread runs
        states = thread_states([pid])
        if any(s == "R" for _, s in states):
            return states
    return states
