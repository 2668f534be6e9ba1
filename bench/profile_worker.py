"""Profile one asyncjobs worker's task process while it drains no-op tasks (issue 22).

As ``bench.monitor_cost`` starts its workers: ``taskiq worker`` with ``--workers 1`` at
``--log-level WARNING`` (``MONITOR`` left at its default), idle first; then py-spy is
attached to the task process (the manager's child), ``--tasks`` no-op tasks are sent
(gathered by 100) and the worker drains them; py-spy stops when the last one is counted.
The raw samples are written to ``--out`` and summarised (``bench.profile_summary``):
self time, areas, named spots, each in % of samples. The worker's CPU time per task over
the same span is printed too (py-spy runs ``--nonblocking``: it does not stop the worker
to sample it, so that figure stays comparable with ``bench.monitor_cost``'s).

py-spy is not a dependency of the project: install it apart, e.g.
``python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy``, then set
``PY_SPY=/tmp/pyspy/bin/py-spy`` (or put it on PATH). It needs ptrace on the worker
(same user; root or ``kernel.yama.ptrace_scope`` 0 in containers).

``python -m bench.profile_worker [--broker redis|amqp] [--tasks N] [--rate HZ] [--out DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from bench.profile_summary import parse, report
from bench.recorder import Ledger
from bench.workers import ASYNCJOBS, QUEUES, Producer, Target
from example.processes import ManagedProcess

INSTALL = "python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy"
URLS = {
    "redis": ("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "amqp": ("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
}


def find_py_spy() -> str | None:
    return os.environ.get("PY_SPY") or shutil.which("py-spy")


async def profile(
    target: Target, n: int, rate: int, out: Path, py_spy: str, lines: bool = False
) -> str:
    """Run the profile; the raw samples go to ``out``; returns the printed header."""
    from bench.monitor_cost import _cpu_s, _idle_cpu_s
    from bench.suite import _check, _wait

    ledger = Ledger(target.redis_url)
    key = f"{target.name}:profile"
    level = os.environ.get("BENCH_LOG_LEVEL", "WARNING")  # INFO: the per-task lines' cost
    worker = target.start_worker(out, "profile", log_level=level)
    try:
        async with Producer(target) as producer:
            before = await _idle_cpu_s(worker)
            spy = _start_py_spy(py_spy, worker, rate, out / "profile.raw.txt", lines)
            try:
                began = time.perf_counter()
                for start in range(0, n, 100):
                    stop = min(n, start + 100)
                    sends = (producer.kiq("noop", key, j) for j in range(start, stop))
                    await asyncio.gather(*sends)
                tally = await _wait(ledger, key, n, worker)
                wall_s = time.perf_counter() - began
                used = _cpu_s(worker) - before
            finally:
                _stop_py_spy(spy)
    finally:
        worker.stop(timeout_s=20)
        await ledger.delete_prefix(target.name)
        await ledger.close()
    problem = _check(tally, n)
    counted = "INVALID " + problem if problem else "each ran once"
    return (
        f"{n:,} no-op tasks on {target.broker}, {counted}; "
        f"drained in {wall_s:.1f} s from the first send ({n / tally.span_s:,.0f}/s by the "
        f"worker's clock); worker CPU {used / n * 1e6:.1f} us per task (idle to drained, "
        f"py-spy sampling at {rate} Hz, nonblocking)"
    )


def _start_py_spy(
    py_spy: str, worker: ManagedProcess, rate: int, raw: Path, lines: bool
) -> subprocess.Popen[bytes]:
    import psutil  # type: ignore[import-untyped]

    children = psutil.Process(worker.pid).children()
    if not children:
        raise RuntimeError(f"no worker process\n{worker.describe()}")
    # --function: one row per function (its first line), unless the lines are wanted.
    argv = [py_spy, "record", "--pid", str(children[0].pid), "--format", "raw"]
    argv += [] if lines else ["--function"]
    argv += ["--rate", str(rate), "--nonblocking", "--output", str(raw)]
    log_dir = raw.parent
    log = (log_dir / "py-spy.log").open("wb")
    spy = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    deadline = time.monotonic() + 10
    # Attached once it says it samples; a refused ptrace ends it with the reason.
    while b"Sampling" not in (log_dir / "py-spy.log").read_bytes():
        if spy.poll() is not None or time.monotonic() > deadline:
            spy.kill()
            message = (log_dir / "py-spy.log").read_text(errors="replace")
            raise RuntimeError(f"py-spy could not attach to pid {children[0].pid}:\n{message}")
        time.sleep(0.05)  # py-spy's start-up, before any task is sent
    return spy


def _stop_py_spy(spy: subprocess.Popen[bytes]) -> None:
    """SIGINT: py-spy writes its samples and exits."""
    with contextlib.suppress(ProcessLookupError):
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()


async def _cleanup_amqp(target: Target) -> None:
    if target.broker == "amqp":
        from example.processes import delete_amqp_queues

        with contextlib.suppress(Exception):
            await delete_amqp_queues(target.broker_url, target.name, QUEUES)


async def _run(broker: str, n: int, rate: int, out: Path, py_spy: str, lines: bool) -> str:
    env_name, default = URLS[broker]
    redis_url = os.environ.get("BENCH_REDIS_URL", URLS["redis"][1])
    name = f"ajbench-{uuid.uuid4().hex[:8]}-profile"
    target = Target(ASYNCJOBS, broker, os.environ.get(env_name, default), redis_url, name)
    try:
        return await profile(target, n, rate, out, py_spy, lines)
    finally:
        await _cleanup_amqp(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="py-spy profile of a worker draining no-ops")
    parser.add_argument("--broker", choices=sorted(URLS), default="redis")
    parser.add_argument("--tasks", type=int, default=20_000, help="no-op tasks to drain")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, help="directory for the samples and logs")
    parser.add_argument("--lines", action="store_true", help="raw samples per line, not function")
    parser.add_argument("--top", type=int, default=25, help="rows of the self-time table")
    args = parser.parse_args(argv)
    py_spy = find_py_spy()
    if py_spy is None:
        print(f"py-spy not found (PY_SPY or PATH); install it apart: {INSTALL}", file=sys.stderr)
        return 2
    import uvloop

    out: Path = args.out or Path(tempfile.mkdtemp(prefix="asyncjobs-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    header = uvloop.run(_run(args.broker, args.tasks, args.rate, out, py_spy, args.lines))
    summary = parse((out / "profile.raw.txt").read_text().splitlines())
    text = f"{date.today()}: {header}\n\n{report(summary, top=args.top)}\n"
    (out / "summary.md").write_text(text)
    print(text)
    print(f"raw samples, logs and summary.md in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
