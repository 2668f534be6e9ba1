"""A worker's CPU per no-op task, two source trees alternating (an A/B of a change).

    python -m bench.ab_trees TREE_A TREE_B [--broker redis|amqp] [--tasks N] [--rounds R]

Each tree is a checkout of asyncjobs (a ``git worktree`` of the commit before a change,
say, and this one); ``TREE+/extra/dir`` puts ``/extra/dir`` on that worker's path after
the tree (e.g. a directory whose ``hiredis`` raises ImportError, to run a commit from
before hiredis was a dependency as it ran then). In each round each tree's ``taskiq
worker asyncjobs.django.worker:broker --workers 1 --log-level WARNING`` starts from that
tree, goes idle, drains ``N`` no-op tasks sent gathered by 100 from this process, and
stops; the order alternates from round to round so neither tree always gets the warmer
broker. Printed: each round's worker CPU per task (user + system of the task process,
idle to drained) and rate by the workers' clocks, then each tree's median and B/A.
Every task must run exactly once (``bench.recorder``'s ledger), or the run stops.
CPU time, not the rate, is what a change is judged by on a shared VM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from bench.monitor_cost import _cpu_s, _idle_cpu_s
from bench.recorder import Ledger
from bench.suite import _check, _wait
from bench.workers import AJ_APP, ASYNCJOBS, QUEUES, Producer, Target
from example.processes import ManagedProcess

CHUNK = 100
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _worker(target: Target, tree: str, log: Path) -> ManagedProcess:
    """The worker of ``tree`` (``path[+extra...]``), run from that tree."""
    path, *extra = tree.split("+")
    env = target.env()
    env["PYTHONPATH"] = os.pathsep.join([path, *extra])
    argv = [sys.executable, "-m", "taskiq", "worker", AJ_APP, "--workers", "1"]
    argv += ["--log-level", "WARNING"]
    return ManagedProcess("ab-worker", argv, log_path=log, env=env, cwd=Path(path))


async def _one_round(
    producer: Producer, target: Target, ledger: Ledger, tree: str, phase: str, n: int, log: Path
) -> tuple[float, float]:
    """(worker CPU µs per task, tasks/s by the workers' clocks) of one tree's round."""
    worker = _worker(target, tree, log)
    try:
        before = await _idle_cpu_s(worker)
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            await asyncio.gather(*(producer.kiq("noop", phase, i) for i in range(start, stop)))
        tally = await _wait(ledger, phase, n, worker)
        used = _cpu_s(worker) - before
    finally:
        worker.stop(timeout_s=20)
    problem = _check(tally, n)
    if problem:
        raise RuntimeError(f"{tree}: {problem}")
    return used / n * 1e6, n / tally.span_s


async def ab(trees: tuple[str, str], broker: str, n: int, rounds: int, log_dir: Path) -> None:
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    broker_url = redis_url if broker == "redis" else os.environ.get("BENCH_AMQP_URL", AMQP_URL)
    run = f"ajab-{uuid.uuid4().hex[:8]}"
    target = Target(ASYNCJOBS, broker, broker_url, redis_url, run)
    ledger = Ledger(redis_url)
    cpu: tuple[list[float], list[float]] = ([], [])  # A's rounds, B's
    try:
        async with Producer(target) as producer:
            for i in range(rounds):
                order = (0, 1) if i % 2 == 0 else (1, 0)
                for side in order:
                    tree, label = trees[side], "AB"[side]
                    log = log_dir / f"round{i}-{label}.log"
                    phase = f"{run}:{i}:{label}"
                    used, rate = await _one_round(producer, target, ledger, tree, phase, n, log)
                    cpu[side].append(used)
                    print(
                        f"round {i} {label} {tree}: {used:.1f} us/task, {rate:,.0f}/s", flush=True
                    )
    finally:
        await ledger.delete_prefix(run)
        await ledger.close()
        if broker != "redis":
            from example.processes import delete_amqp_queues

            await delete_amqp_queues(broker_url, run, QUEUES)
    a, b = statistics.median(cpu[0]), statistics.median(cpu[1])
    print(f"A {trees[0]}: median {a:.1f} us/task")
    print(f"B {trees[1]}: median {b:.1f} us/task")
    print(f"B/A {b / a:.3f}")


def main(argv: list[str] | None = None) -> int:
    import uvloop

    parser = argparse.ArgumentParser(description="worker CPU per task, two trees alternating")
    parser.add_argument("tree_a", help="a checkout of asyncjobs (path[+extra/path])")
    parser.add_argument("tree_b")
    parser.add_argument("--broker", choices=("redis", "amqp"), default="redis")
    parser.add_argument("--tasks", type=int, default=10_000, help="no-op tasks per round and tree")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    trees = (args.tree_a, args.tree_b)
    with tempfile.TemporaryDirectory(prefix="asyncjobs-ab-") as tmp:
        uvloop.run(ab(trees, args.broker, args.tasks, args.rounds, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
