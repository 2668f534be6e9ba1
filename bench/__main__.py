"""``make bench`` / ``python -m bench``: asyncjobs against raw taskiq, Celery and Dramatiq,
on Redis and RabbitMQ.

    python -m bench [--quick | --smoke] [--json PATH] [--brokers redis,amqp]
        [--sides asyncjobs,raw,celery,dramatiq] [--tracing]

Prints a table per broker and issue 22's goals (see bench/README.md for the method),
then the operator console's
dead-letter pages with 100,000 letters (``bench.console_pages``, 2,000 with ``--smoke``;
a process of its own: it sets Django up); ``--tracing`` also runs
``bench.tracing_overhead`` (runnable on its own: ``python -m bench.tracing_overhead``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import report, tracing_overhead
from bench.recorder import Ledger
from bench.suite import Results, Sizes, run_target
from bench.sync_sides import CELERY, DRAMATIQ, delete_amqp, stray_redis_keys
from bench.workers import ASYNCJOBS, QUEUES, RAW, SIDES, Target, delete_raw_amqp

QUICK = Sizes(enqueue=1_000, latency=50, io=2_000, sends=960, monitor=1_000)
# Checks the bench still runs end to end (tests/test_bench.py); its figures mean little.
SMOKE = Sizes(enqueue=100, latency=10, io=100, sends=160, monitor=100, monitor_rounds=1)


async def bench(
    brokers: dict[str, str], redis_url: str, sizes: Sizes, log_dir: Path, sides: list[str]
) -> dict[str, dict[str, Results]]:
    run = f"ajbench-{uuid.uuid4().hex[:8]}"
    ledger = Ledger(redis_url)
    results: dict[str, dict[str, Results]] = {}
    # The others first, asyncjobs last (as the first version of this suite ran raw
    # taskiq, then asyncjobs): a fixed order, each side on its own queue.
    order = [kind for kind in (RAW, CELERY, DRAMATIQ, ASYNCJOBS) if kind in sides]
    try:
        for broker, url in brokers.items():
            results[broker] = {}
            for kind in order:
                target = Target(kind, broker, url, redis_url, f"{run}-{kind}-{broker}")
                print(f"  {kind} on {broker} ...", flush=True)
                began = time.monotonic()
                try:
                    results[broker][kind] = await run_target(target, sizes, ledger, log_dir, run)
                finally:
                    with contextlib.suppress(Exception):
                        await _clean_up(target, ledger)
                print(f"    done in {time.monotonic() - began:.1f} s", flush=True)
    finally:
        await ledger.delete_prefix(run)  # ledgers, raw streams, asyncjobs keys and results
        await ledger.close()
    return results


async def _clean_up(target: Target, ledger: Ledger) -> None:
    """What the side declared on RabbitMQ under its name, and its Redis keys that do not
    start with the run's prefix (the others go with the ledgers)."""
    from example.processes import delete_amqp_queues

    if target.broker == "redis":
        if keys := stray_redis_keys(target.kind, target.name):
            await ledger.conn.delete(*keys)
    elif target.kind == RAW:
        await delete_raw_amqp(target.broker_url, target.name)
    elif target.kind == ASYNCJOBS:
        await delete_amqp_queues(target.broker_url, target.name, QUEUES)
    else:
        await delete_amqp(target.kind, target.broker_url, target.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="asyncjobs vs raw taskiq, Celery and Dramatiq")
    parser.add_argument("--quick", action="store_true", help="small sizes, ~30 s smoke run")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: does it still run?")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--brokers", default="redis,amqp", help="comma-separated")
    parser.add_argument(
        "--sides", default=",".join(SIDES), help="comma-separated: " + ", ".join(SIDES)
    )
    parser.add_argument("--enqueue", type=int, help="tasks per enqueue phase (x2 processed)")
    parser.add_argument("--tracing", action="store_true", help="also run tracing_overhead")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    amqp_url = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    urls = {"redis": redis_url, "amqp": amqp_url}
    brokers = {b: urls[b] for b in args.brokers.split(",") if b}
    sides = [s for s in args.sides.split(",") if s]
    if unknown := set(sides) - set(SIDES):
        parser.error(f"unknown sides: {', '.join(sorted(unknown))} (known: {', '.join(SIDES)})")
    sizes = SMOKE if args.smoke else QUICK if args.quick else Sizes()
    if args.enqueue:
        sizes = dataclasses.replace(sizes, enqueue=args.enqueue)

    import uvloop

    meta = {**report.machine(), "sizes": sizes.__dict__, "brokers": list(brokers), "sides": sides}
    print(f"bench: {meta}", flush=True)
    with tempfile.TemporaryDirectory(prefix="asyncjobs-bench-") as tmp:
        try:
            results = uvloop.run(bench(brokers, redis_url, sizes, Path(tmp), sides))
        except Exception:
            for log in sorted(Path(tmp).glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
            raise
    print(report.table(results, sizes.io))
    if args.json:
        report.write_json(args.json, meta, results)
        print(f"figures written to {args.json}")
    print()
    letters = ["--letters", "2000", "--rounds", "2"] if args.smoke else []
    argv = [sys.executable, "-m", "bench.console_pages", *letters]
    pages = subprocess.run(argv, check=False)  # noqa: S603 - our own interpreter and module
    if pages.returncode != 0:
        return pages.returncode
    if args.tracing:
        print()
        return tracing_overhead.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
