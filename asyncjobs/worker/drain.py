"""Signals and the hard deadline of a draining worker.

taskiq's worker installs ``signal.signal`` handlers that set an asyncio event without
waking the event loop, and its process manager forwards SIGTERM as SIGINT. We replace
them with loop-aware handlers (``add_signal_handler`` wakes the loop), treat every later
signal as "keep draining" (a second Ctrl-C must not skip the hand-back), and arm a
watchdog thread so the process ends by the deadline even when a broker stops answering
and the event loop never gets control back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable

logger = logging.getLogger("asyncjobs.worker")

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop, on_signal: Callable[[str], None]
) -> None:
    for sig in DRAIN_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig.name)


def remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for sig in DRAIN_SIGNALS:
        loop.remove_signal_handler(sig)


class Watchdog:
    """Ends the process with ``os._exit`` if the drain overruns its deadline."""

    def __init__(self, deadline_s: float, on_expire: Callable[[], None] | None = None) -> None:
        self._deadline_s = deadline_s
        self._on_expire = on_expire
        self._timer = threading.Timer(deadline_s, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        logger.error(
            "drain overran its %.1f s deadline (a broker not answering?); exiting now: "
            "unfinished messages will be redelivered when their lease expires",
            self._deadline_s,
        )
        if self._on_expire is not None:
            try:
                self._on_expire()
            except Exception:
                logger.exception("flushing before the forced exit failed")
        logging.shutdown()
        os._exit(0)
