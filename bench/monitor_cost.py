"""What the worker registry and per-minute counters cost (``MONITOR``), asyncjobs only.

``rounds`` rounds; in each, a worker with ``MONITOR`` on starts, and once it is idle
(imports done, waiting for messages) ``n`` no-op tasks are sent (gathered) and it drains
them; then the same with ``MONITOR`` off (``--log-level WARNING`` both: the per-task log
lines are measured elsewhere), the order alternating from round to round so that neither
side always gets the warmer broker. Two figures per side, the median of its rounds: the
rate from the workers' own clocks as in phase 3 (``bench/suite.py``), and the worker
process's CPU time (user + system) per task from idle to drained. On a shared VM the
rate swings by a quarter from round to round; CPU time per task is what a 3 % budget
can be read from.

Runnable alone, on Redis: ``python -m bench.monitor_cost [--tasks N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import psutil

from bench.recorder import Ledger, Tally
from bench.workers import ASYNCJOBS, Producer, Target
from example.processes import ManagedProcess

ON, OFF = "process_monitor_on_per_s", "process_monitor_off_per_s"
ON_CPU, OFF_CPU = "process_monitor_on_cpu_us", "process_monitor_off_cpu_us"
IDLE_WINDOW_S, IDLE_CPU_S = 0.3, 0.01  # idle: < 10 ms of CPU in 300 ms


async def monitor_cost(
    producer: Producer, target: Target, n: int, rounds: int, ledger: Ledger, log_dir: Path, key: str
) -> dict[str, tuple[float | None, str]]:
    """{figure: (median rate or None, why it is INVALID)}; empty for raw taskiq."""
    from bench.suite import _check, _wait

    if target.kind != ASYNCJOBS or n <= 0 or rounds <= 0:
        return {}
    rates: dict[str, list[float]] = {ON: [], OFF: []}
    cpu: dict[str, list[float]] = {ON: [], OFF: []}  # CPU microseconds per task
    bad: dict[str, str] = {ON: "", OFF: ""}
    for i in range(rounds):
        order = (ON, OFF) if i % 2 == 0 else (OFF, ON)
        for side in order:
            phase = f"{key}:{side}:{i}"
            monitor = "1" if side == ON else "0"
            worker = _worker(target, log_dir, f"monitor-{monitor}-{i}", monitor)
            try:
                # Started and idle first: its CPU from here on is the tasks' (and the
                # heartbeat's), not the imports'; it consumes as fast as they are sent.
                before = await _idle_cpu_s(worker)
                for start in range(0, n, 100):
                    stop = min(n, start + 100)
                    sends = (producer.kiq("noop", phase, j) for j in range(start, stop))
                    await asyncio.gather(*sends)
                tally: Tally = await _wait(ledger, phase, n, worker)
                used = _cpu_s(worker) - before
            finally:
                worker.stop(timeout_s=20)
            problem = _check(tally, n)
            if problem:
                bad[side] = problem
            else:
                rates[side].append(n / tally.span_s)
                cpu[side].append(used / n * 1e6)
    found = {
        side: (None if bad[side] else statistics.median(rates[side]), bad[side])
        for side in (ON, OFF)
    }
    for side, name in ((ON, ON_CPU), (OFF, OFF_CPU)):
        found[name] = (None if bad[side] else statistics.median(cpu[side]), bad[side])
    return found


def _cpu_s(worker: ManagedProcess) -> float:
    """User + system CPU seconds of taskiq's worker process (the manager forks it)."""
    children = psutil.Process(worker.pid).children()
    if not children:
        raise RuntimeError(f"no worker process yet\n{worker.describe()}")
    times = children[0].cpu_times()
    return float(times.user + times.system)


async def _idle_cpu_s(worker: ManagedProcess, timeout_s: float = 60.0) -> float:
    """The worker's CPU seconds once it started and waits for messages: less than
    ``IDLE_CPU_S`` used in ``IDLE_WINDOW_S`` (imports and connecting keep a core busy)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: float | None = None
    while loop.time() < deadline:
        if not worker.alive():
            raise RuntimeError(f"worker died\n{worker.describe()}")
        try:
            now = _cpu_s(worker)
        except (RuntimeError, psutil.Error):
            now = None
        if now is not None and last is not None and now - last < IDLE_CPU_S:
            return now
        last = now
        await asyncio.sleep(IDLE_WINDOW_S)  # sampling the worker's CPU clock
    raise RuntimeError(f"worker not idle after {timeout_s:.0f} s\n{worker.describe()}")


def _worker(target: Target, log_dir: Path, label: str, monitor: str) -> ManagedProcess:
    return target.start_worker(
        log_dir, label, log_level="WARNING", env={"ASYNCJOBS_MONITOR": monitor}
    )


async def _alone(redis_url: str, n: int, rounds: int, log_dir: Path) -> None:
    run = f"ajbench-{uuid.uuid4().hex[:8]}"
    target = Target(ASYNCJOBS, "redis", redis_url, redis_url, f"{run}-monitor")
    ledger = Ledger(redis_url)
    try:
        async with Producer(target) as producer:
            found = await monitor_cost(producer, target, n, rounds, ledger, log_dir, run)
    finally:
        await ledger.delete_prefix(run)
        await ledger.close()
    on, off = found[ON][0], found[OFF][0]
    for side, (value, problem) in found.items():
        unit = "us CPU per task" if side in (ON_CPU, OFF_CPU) else "/s"
        print(f"{side}: {'INVALID ' + problem if value is None else f'{value:,.1f} {unit}'}")
    if on and off:
        print(f"MONITOR on / off: {on / off:.3f}x the rate")
    on_cpu, off_cpu = found[ON_CPU][0], found[OFF_CPU][0]
    if on_cpu and off_cpu:
        print(f"MONITOR on / off: {on_cpu / off_cpu:.3f}x the CPU per task")


def main(argv: list[str] | None = None) -> int:
    import os

    import uvloop

    parser = argparse.ArgumentParser(description="the cost of MONITOR in a worker")
    parser.add_argument("--tasks", type=int, default=10_000, help="no-op tasks per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    with tempfile.TemporaryDirectory(prefix="asyncjobs-bench-") as tmp:
        uvloop.run(_alone(redis_url, args.tasks, args.rounds, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
