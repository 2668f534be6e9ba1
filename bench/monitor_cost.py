"""What the worker registry and per-minute counters cost (``MONITOR``), asyncjobs only.

``rounds`` rounds; in each, ``n`` no-op tasks (gathered) are drained by a worker with
``MONITOR`` on, and ``n`` more by one with it off (``--log-level WARNING`` both: the
per-task log lines are measured elsewhere), the order alternating from round to round so
that neither side always gets the warmer broker. Each figure is the median rate of its
side's rounds, from the workers' own clocks as in phase 3 (``bench/suite.py``).

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

from bench.recorder import Ledger, Tally
from bench.workers import ASYNCJOBS, Producer, Target
from example.processes import ManagedProcess

ON, OFF = "process_monitor_on_per_s", "process_monitor_off_per_s"


async def monitor_cost(
    producer: Producer, target: Target, n: int, rounds: int, ledger: Ledger, log_dir: Path, key: str
) -> dict[str, tuple[float | None, str]]:
    """{figure: (median rate or None, why it is INVALID)}; empty for raw taskiq."""
    from bench.suite import _check, _wait

    if target.kind != ASYNCJOBS or n <= 0 or rounds <= 0:
        return {}
    rates: dict[str, list[float]] = {ON: [], OFF: []}
    bad: dict[str, str] = {ON: "", OFF: ""}
    for i in range(rounds):
        order = (ON, OFF) if i % 2 == 0 else (OFF, ON)
        for side in order:
            phase = f"{key}:{side}:{i}"
            for start in range(0, n, 100):
                stop = min(n, start + 100)
                await asyncio.gather(*(producer.kiq("noop", phase, j) for j in range(start, stop)))
            monitor = "1" if side == ON else "0"
            worker = _worker(target, log_dir, f"monitor-{monitor}-{i}", monitor)
            try:
                tally: Tally = await _wait(ledger, phase, n, worker)
            finally:
                worker.stop(timeout_s=20)
            problem = _check(tally, n)
            if problem:
                bad[side] = problem
            else:
                rates[side].append(n / tally.span_s)
    return {
        side: (None if bad[side] else statistics.median(rates[side]), bad[side])
        for side in (ON, OFF)
    }


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
    for side, (rate, problem) in found.items():
        print(f"{side}: {'INVALID ' + problem if rate is None else f'{rate:,.0f} /s'}")
    if on and off:
        print(f"MONITOR on / off: {on / off:.3f}x")


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
