"""The worker task process's RSS, idle and after no-op tasks (issue 22's memory goal).

``python -m bench.memory [--brokers redis,amqp] [--rounds 3] [--tasks 20000] [--raw]``

Per round and broker, a worker is started as ``make bench`` starts it (``taskiq worker
... --workers 1`` at the default log level; asyncjobs with ``DJANGO_SETTINGS_MODULE=
bench.settings``, i.e. Django and the example app), and once it is idle (its CPU clock
still: imports done, connected) the ``VmRSS`` of its task process (the manager's child,
``bench.workers.worker_rss_mb``) is read; then a tenth of ``--tasks`` no-op tasks are sent
(gathered by 100) and drained, RSS read again, then the rest, RSS read a last time. The
growth from a tenth to all of them is what a per-task leak would show. ``--raw`` also
measures raw taskiq (``bench.raw_app``), alternating with asyncjobs round by round.
Medians of the rounds are printed; every drained phase is checked (each task ran once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from bench.monitor_cost import _idle_cpu_s
from bench.recorder import Ledger
from bench.workers import ASYNCJOBS, QUEUES, RAW, Producer, Target, delete_raw_amqp, worker_rss_mb

URLS = {
    "redis": ("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "amqp": ("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
}
POINTS = ("idle", "tenth", "all")


async def _send(producer: Producer, key: str, start: int, stop: int) -> None:
    for first in range(start, stop, 100):
        last = min(stop, first + 100)
        await asyncio.gather(*(producer.kiq("noop", key, i) for i in range(first, last)))


async def one_round(target: Target, n: int, ledger: Ledger, log_dir: Path) -> dict[str, float]:
    """{point: RSS MiB} of one worker: idle, after n // 10 tasks, after n."""
    from bench.suite import _check, _wait

    key = f"{target.name}:memory"
    found: dict[str, float] = {}
    worker = target.start_worker(log_dir, f"memory-{uuid.uuid4().hex[:4]}")
    try:
        async with Producer(target) as producer:
            await _idle_cpu_s(worker)
            found["idle"] = worker_rss_mb(worker) or float("nan")
            for point, (start, stop) in (("tenth", (0, n // 10)), ("all", (n // 10, n))):
                await _send(producer, key, start, stop)
                tally = await _wait(ledger, key, stop, worker)
                if problem := _check(tally, stop):
                    raise RuntimeError(f"{target.kind} on {target.broker}: {problem}")
                found[point] = worker_rss_mb(worker) or float("nan")
    finally:
        worker.stop(timeout_s=20)
    return found


async def _cleanup(target: Target) -> None:
    if target.broker != "amqp":
        return
    from example.processes import delete_amqp_queues

    with contextlib.suppress(Exception):
        if target.kind == RAW:
            await delete_raw_amqp(target.broker_url, target.name)
        else:
            await delete_amqp_queues(target.broker_url, target.name, QUEUES)


async def measure(
    brokers: list[str], kinds: list[str], rounds: int, n: int, log_dir: Path
) -> dict[tuple[str, str], list[dict[str, float]]]:
    redis_url = os.environ.get("BENCH_REDIS_URL", URLS["redis"][1])
    run = f"ajbench-{uuid.uuid4().hex[:8]}"
    ledger = Ledger(redis_url)
    found: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        for i in range(rounds):
            for broker in brokers:
                env_name, default = URLS[broker]
                url = os.environ.get(env_name, default)
                for kind in kinds if i % 2 == 0 else kinds[::-1]:
                    target = Target(kind, broker, url, redis_url, f"{run}-{kind}-{broker}-{i}")
                    try:
                        rss = await one_round(target, n, ledger, log_dir)
                    finally:
                        await _cleanup(target)
                    found.setdefault((kind, broker), []).append(rss)
                    print(f"  round {i + 1} {kind} on {broker}: {_row(rss)}", flush=True)
    finally:
        await ledger.delete_prefix(run)
        await ledger.close()
    return found


def _row(rss: dict[str, float]) -> str:
    return ", ".join(f"{point} {rss[point]:.1f}" for point in POINTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="worker task process RSS, idle and after tasks")
    parser.add_argument("--brokers", default="redis,amqp", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--raw", action="store_true", help="raw taskiq too")
    args = parser.parse_args(argv)
    import uvloop

    brokers = [b for b in args.brokers.split(",") if b]
    kinds = [ASYNCJOBS, RAW] if args.raw else [ASYNCJOBS]
    with tempfile.TemporaryDirectory(prefix="asyncjobs-memory-") as tmp:
        try:
            found = uvloop.run(measure(brokers, kinds, args.rounds, args.tasks, Path(tmp)))
        except Exception:
            for log in sorted(Path(tmp).glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
            raise
    tenth = f"{args.tasks // 10:,}"
    print(
        f"\nRSS MiB of the task process, median of {args.rounds}: idle / {tenth} / {args.tasks:,}"
    )
    for (kind, broker), rows in found.items():
        medians = {p: statistics.median(row[p] for row in rows) for p in POINTS}
        print(f"  {kind:9} {broker:5} {_row(medians)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
