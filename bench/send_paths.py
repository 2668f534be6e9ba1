"""Sending from sync code beside ``await kiq()``, asyncjobs only (raw taskiq has no sync
send). Run in a process of its own, as a WSGI server's worker is: no event loop runs in
its main thread, so ``kiq_sync()`` goes through asyncjobs' own loop on a background
thread.

    python -m bench.send_paths KEY N THREADS   (settings: JSON in BENCH_SEND_SETTINGS)

Three phases of N no-op tasks each, one after the other, nothing else running:
``await kiq()`` one after another in ``asyncio.run`` (indexes 0..N-1), ``kiq_sync()``
from one thread (N..2N-1), ``kiq_sync()`` from THREADS threads at once (2N..3N-1).
Prints the three rates as JSON; ``bench.suite`` then drains the 3N tasks with a worker
and counts each ran exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asyncjobs import configure, current_broker, load_config
from asyncjobs.tasks import JobTask


async def _awaits(noop: JobTask[..., Any], key: str, first: int, n: int) -> float:
    # This loop holds the client, as an ASGI server's does (its lifespan claims it).
    await current_broker().home.claim()
    await noop.kiq(f"{key}-warm", 0)  # connections, first-call paths (not counted)
    began = time.perf_counter()
    for i in range(first, first + n):
        await noop.kiq(key, i)
    return n / (time.perf_counter() - began)


def _sync(noop: JobTask[..., Any], key: str, first: int, n: int, threads: int) -> float:
    share = n // threads

    def send(thread: int) -> None:
        start = first + thread * share
        for i in range(start, start + share):
            noop.kiq_sync(key, i)

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(threads)))
    return share * threads / (time.perf_counter() - began)


def main(argv: list[str]) -> int:
    key, n, threads = argv[0], int(argv[1]), int(argv[2])
    configure(load_config(json.loads(os.environ["BENCH_SEND_SETTINGS"]), environ={}))
    from bench.tasksapp.tasks import noop

    # The client lives in asyncio.run's loop, then (that loop gone) in asyncjobs' own.
    awaited = asyncio.run(_awaits(noop, key, 0, n))
    noop.kiq_sync(f"{key}-warm", 1)  # the own loop's connections (not counted)
    rates = {
        "await": awaited,
        "sync_1": _sync(noop, key, n, n, 1),
        f"sync_{threads}": _sync(noop, key, 2 * n, n, threads),
    }
    print(json.dumps(rates))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
