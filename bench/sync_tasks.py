"""The bench's three tasks as plain sync functions, for the sides whose workers run sync
code in threads (Celery's ``--pool threads``, Dramatiq's actors): the same work as
``bench.raw_app``'s async ones, recorded through ``recorder.record_threaded``."""

from __future__ import annotations

import time
from collections.abc import Callable

from bench import recorder


def noop(key: str, i: int) -> None:
    recorder.record_threaded(key, i, time.time())


def sleep(key: str, i: int) -> None:
    started = time.time()
    time.sleep(0.05)  # a blocking call, as I/O in a sync task is
    recorder.record_threaded(key, i, started)


def latency(key: str, i: int, sent: float) -> None:
    recorder.record_threaded(key, i, time.time(), sent)


TASKS: dict[str, Callable[..., None]] = {"noop": noop, "sleep": sleep, "latency": latency}
