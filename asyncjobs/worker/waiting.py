"""Small waiting tools of the worker loop."""

from __future__ import annotations

import asyncio
from typing import Any


def backoff_s(failures: int) -> float:
    """Seconds to wait after ``failures`` failed connection attempts: 0.5 s doubling to 30 s."""
    return min(30.0, 0.5 * 2.0 ** min(failures - 1, 6))


async def first_done(*waitables: Any) -> None:
    """Wait until the first of ``waitables`` is done; cancel the coroutines we made."""
    tasks = [w if isinstance(w, asyncio.Future) else asyncio.ensure_future(w) for w in waitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t, w in zip(tasks, waitables, strict=True):
            if t is not w and not t.done():
                t.cancel()
