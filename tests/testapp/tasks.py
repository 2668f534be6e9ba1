"""Tasks the worker tests run. Each records what it did in a Redis ledger list under the
configured key prefix, so in-process and subprocess workers report the same way."""

from __future__ import annotations

import asyncio
import time

import redis
from redis.asyncio import Redis

from asyncjobs import Backoff, Reject, current_attempt, current_config, task

FAST = Backoff(base_s=0.1, factor=2.0, max_s=0.2)  # retries that keep tests short
# flaky's backoff: the wait after attempt n is uniform in [0.2, 0.4] * 2 ** (n - 1) s.
FLAKY_BACKOFF = Backoff(base_s=0.4, factor=2.0, max_s=5.0, jitter=0.5)
SLOW_BACKOFF = Backoff(base_s=3.0, max_s=3.0, jitter=0.0)
_background: set[asyncio.Task[None]] = set()


def ledger_key() -> str:
    return f"{current_config().key_prefix}:ledger"


async def record(event: str) -> None:
    config = current_config()
    url = config.effective_result_backend_url or config.broker_url
    async with Redis.from_url(url) as conn:
        await conn.rpush(ledger_key(), event)


def record_sync(event: str) -> None:
    """``record`` from a worker thread (a sync task)."""
    config = current_config()
    with redis.Redis.from_url(config.effective_result_backend_url or config.broker_url) as conn:
        conn.rpush(ledger_key(), event)


def record_despite_cancellation(event: str) -> None:
    """``record`` in a task of its own: a cancel scope that re-cancels every await of the
    cancelled task (anyio's, around a task with a ``timeout``) cannot stop it."""
    background = asyncio.get_running_loop().create_task(record(event))
    _background.add(background)
    background.add_done_callback(_background.discard)


@task
async def add(a: int, b: int) -> int:
    await record(f"add:{a}:{b}")
    return a + b


@task(on_commit=True)
async def add_on_commit(a: int, b: int) -> int:
    """``add`` declared to wait for the surrounding transaction."""
    await record(f"add_on_commit:{a}:{b}")
    return a + b


@task(queue="other")
async def on_other_queue(tag: str) -> str:
    await record(f"other:{tag}")
    return tag


@task
def sync_multiply(a: int, b: int) -> int:
    return a * b


@task(max_attempts=3, backoff=FAST)
async def always_fails(tag: str) -> None:
    await record(f"fail:{tag}")
    raise RuntimeError(f"boom {tag}")


@task
async def rejects(tag: str) -> None:
    await record(f"reject:{tag}")
    raise Reject("not retryable")


@task
async def sleeps(tag: str, seconds: float) -> str:
    await record(f"start:{tag}")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        await asyncio.shield(record(f"cancelled:{tag}"))
        raise
    await record(f"end:{tag}")
    return tag


@task
async def crashes(tag: str) -> None:
    """Kills its worker process outright (a segfault, an OOM kill): never settles."""
    import os

    await record(f"crash:{tag}")
    os._exit(1)


@task
async def stamp(tag: str) -> float:
    """Records when it ran (unix seconds)."""
    now = time.time()
    await record(f"stamp:{tag}:{now:.3f}")
    return now


@task(max_attempts=1)
async def blocks_loop(tag: str, seconds: float) -> None:
    """A bug: ``time.sleep`` in ``async def`` blocks the worker's event loop."""
    await record(f"block-start:{tag}")
    time.sleep(seconds)  # noqa: ASYNC251 - the point of this task


@task(max_attempts=5, backoff=FLAKY_BACKOFF)
async def flaky(tag: str, failures: int) -> int:
    """Fails its first ``failures`` attempts; records each attempt and when it started."""
    return await _fail_first(tag, failures)


@task(max_attempts=2, backoff=SLOW_BACKOFF)
async def flaky_slow(tag: str, failures: int) -> int:
    """``flaky`` with a fixed 3 s wait before the retry: time to kill a worker in it."""
    return await _fail_first(tag, failures)


async def _fail_first(tag: str, failures: int) -> int:
    attempt = current_attempt()
    await record(f"try:{tag}:{attempt}:{time.time():.3f}")
    if attempt <= failures:
        raise ConnectionError(f"flaky {tag} failed attempt {attempt}")
    return attempt


@task(retry_on=LookupError, no_retry_on=KeyError, max_attempts=3, backoff=FAST)
async def picky(tag: str, error: str) -> None:
    """Raises ``error`` (a builtin exception's name): IndexError is retried, KeyError and
    ValueError are not."""
    await record(f"picky:{tag}:{current_attempt()}")
    raise {"IndexError": IndexError, "KeyError": KeyError, "ValueError": ValueError}[error](tag)


@task(timeout=0.5, max_attempts=2, backoff=FAST)
async def overruns(tag: str) -> None:
    """Sleeps past its 0.5 s timeout; records its start and the CancelledError it sees."""
    await record(f"start:{tag}:{current_attempt()}:{time.time():.3f}")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record_despite_cancellation(f"cancelled:{tag}:{current_attempt()}:{time.time():.3f}")
        raise


@task(timeout=0.3, max_attempts=1)
def sync_overruns(tag: str, seconds: float) -> str:
    """A sync task past its timeout: its thread cannot be stopped, so it finishes later."""
    time.sleep(seconds)
    record_sync(f"sync-finished:{tag}")
    return tag


# -- tracing (tests/tracing) -------------------------------------------------------------
@task
async def traced_work(tag: str) -> str:
    """Opens a span of its own inside the task; returns the baggage ``tenant`` it sees."""
    from opentelemetry import baggage, trace

    with trace.get_tracer("tests").start_as_current_span(f"inside {tag}"):
        await record(f"traced:{tag}")
    return str(baggage.get_baggage("tenant") or "")


@task(max_attempts=5, backoff=FLAKY_BACKOFF)
async def flaky_traced(tag: str, failures: int) -> str:
    """``flaky`` that returns the baggage ``tenant`` its successful attempt sees."""
    from opentelemetry import baggage

    await _fail_first(tag, failures)
    return str(baggage.get_baggage("tenant") or "")


@task
def traced_sync_work(tag: str) -> str:
    """``traced_work`` as a sync task (run in the worker's thread pool)."""
    from opentelemetry import baggage, trace

    with trace.get_tracer("tests").start_as_current_span(f"inside {tag}"):
        record_sync(f"traced:{tag}")
    return str(baggage.get_baggage("tenant") or "")


@task
async def gc_frozen() -> int:
    """How many objects the worker process froze out of the cyclic GC (``gc.freeze``)."""
    import gc

    return gc.get_freeze_count()


from tests.testapp import standard_tasks  # noqa: E402,F401 - Django Tasks
