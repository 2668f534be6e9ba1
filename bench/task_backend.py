"""Django's ``aenqueue()`` on the asyncjobs backend beside ``await kiq()``, in one process
and one run (asyncjobs only). The process is a Django one (``bench.settings``, whose
``TASKS`` names the backend), its loop holding the client as an ASGI server's does.

    python -m bench.task_backend KEY N   (ASYNCJOBS_* variables: the target's settings)

N sends by each path, in alternating blocks of ``BLOCK`` so that neither profits from a
warmer broker or a quieter machine: ``await noop.kiq(KEY, i)`` (indexes 0..N-1) and
``await dj_noop.aenqueue(KEY, i)`` (N..2N-1), each call timed. Prints JSON: each path's
rate (sends / the time spent in its calls) and p50 per call; ``bench.suite`` then
drains the 2N tasks with a worker and counts each ran exactly once.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

BLOCK = 200


async def _timed(send: Callable[[int], Awaitable[Any]], indexes: range) -> list[float]:
    spent = []
    for i in indexes:
        began = time.perf_counter()
        await send(i)
        spent.append(time.perf_counter() - began)
    return spent


async def _measure(key: str, n: int) -> dict[str, float]:
    from asyncjobs import current_broker
    from bench.tasksapp.standard import dj_noop
    from bench.tasksapp.tasks import noop

    await current_broker().startup()  # this loop holds the client (an ASGI lifespan's)
    for i in range(20):  # connections, first-call paths (not counted)
        await noop.kiq(f"{key}-warm", i)
        await dj_noop.aenqueue(f"{key}-warm", i)
    kiq: list[float] = []
    aenqueue: list[float] = []
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        kiq += await _timed(lambda i: noop.kiq(key, i), range(start, stop))
        aenqueue += await _timed(lambda i: dj_noop.aenqueue(key, i), range(n + start, n + stop))
    await current_broker().shutdown()
    return {
        "kiq_per_s": len(kiq) / sum(kiq),
        "kiq_p50_us": statistics.median(kiq) * 1e6,
        "aenqueue_per_s": len(aenqueue) / sum(aenqueue),
        "aenqueue_p50_us": statistics.median(aenqueue) * 1e6,
    }


def main(argv: list[str]) -> int:
    import django

    django.setup()
    print(json.dumps(asyncio.run(_measure(argv[0], int(argv[1])))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
