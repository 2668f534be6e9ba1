"""What ``make demo`` prints, checked cheaply: it says what it is doing before the long
first set-up, and it reports how each process ended in words: "web stopped (SIGTERM, by
the demo)", never "web exited -15"; a process that ended on its own is a crash."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from example.demo import DemoRun
from example.processes import REPO_ROOT, ExampleStack, ManagedProcess, ProcessError
from tests.support.helpers import wait_until

SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"
# Exits 0 on SIGTERM, as taskiq's worker does after its drain.
DRAINER = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_make_says_what_it_does_before_the_first_long_step(tmp_path: Path) -> None:
    """A fresh clone: the first line comes before the virtualenv is even created (the
    step is stopped there: nothing is installed)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shim = tmp_path / "python"
    shim.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then echo "VENV STEP"; exit 3; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    shim.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "--no-print-directory", "demo", f"VENV={venv}", f"PYTHON={shim}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert done.returncode != 0 and "VENV STEP" in lines, done.stdout + done.stderr
    assert lines[0] == f"==> setting up {venv} (first run only: a few minutes)"
    assert lines.index("VENV STEP") > 0
    # pip lists the packages as it installs them: not --quiet.
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", f"VENV={venv}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installs = [line for line in dry.stdout.splitlines() if "-e '.[dev,demo]'" in line]
    assert installs and all("--quiet" not in line for line in installs), dry.stdout


def stack_of(tmp_path: Path) -> ExampleStack:
    return ExampleStack(
        broker_url="redis://127.0.0.1:1/0",  # never reached: nothing here sends
        result_backend_url=None,
        db_path=tmp_path / "db.sqlite3",
        log_dir=tmp_path / "logs",
    )


def demo_run(tmp_path: Path, stack: ExampleStack) -> DemoRun:
    return DemoRun(
        started=time.monotonic(),
        work=tmp_path,
        broker_url=stack.broker_url,
        result_url="",
        own_prefix=None,
        stack=stack,
    )


async def ready(proc: ManagedProcess) -> None:
    async def said_ready() -> bool:
        return "ready" in proc.tail()

    await wait_until(said_ready, what=f"{proc.name} to start")


async def test_the_demo_says_it_stopped_the_web_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = stack_of(tmp_path)
    clean = frozenset({0, -signal.SIGTERM})  # as uvicorn's, in ExampleStack.start_web
    web = stack.start("web", [sys.executable, "-c", SLEEPER], clean_exit_codes=clean)
    worker = stack.start("worker", [sys.executable, "-c", DRAINER])
    await ready(web)
    await ready(worker)
    run = demo_run(tmp_path, stack)

    run.stop()

    printed = capsys.readouterr().out
    assert "web stopped (SIGTERM, by the demo), worker stopped (exit 0)" in printed
    assert "-15" not in printed and "exited" not in printed
    assert run.error is None


async def test_a_process_that_ended_on_its_own_is_reported_as_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even with the code a clean stop has: a SIGTERM from elsewhere is no stop of ours."""
    stack = stack_of(tmp_path)
    clean = frozenset({0, -signal.SIGTERM})
    web = stack.start("web", [sys.executable, "-c", SLEEPER], clean_exit_codes=clean)
    worker = stack.start("worker", [sys.executable, "-c", "raise SystemExit(3)"])
    await ready(web)
    os.kill(web.pid, signal.SIGTERM)  # not through the stack: someone else's signal
    assert web.wait(30) == -signal.SIGTERM and worker.wait(30) == 3
    run = demo_run(tmp_path, stack)

    run.stop()

    printed = capsys.readouterr().out
    assert (
        "web crashed (killed by SIGTERM) before the demo stopped it, "
        "worker crashed (exit 3) before the demo stopped it"
    ) in printed
    assert stack.unclean_exits() == {"web": -signal.SIGTERM, "worker": 3}
    assert isinstance(run.error, ProcessError)
