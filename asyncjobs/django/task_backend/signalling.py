"""``task_enqueued`` from async code without a thread hop that would do nothing.

``Signal.asend`` runs the sync receivers in a thread (``sync_to_async``), and Django
itself connects one to every task signal: a log line at DEBUG for ``task_enqueued``.
Crossing to a thread and back costs more than the send itself when that log is off,
which it is unless configured. When the only receiver is Django's own and its logger
is not enabled for its level, nothing would happen: nothing is sent. Any other
receiver, or the log on, and ``asend`` runs as Django's backends run it.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncjobs.django.task_backend import compat


async def send_enqueued(sender: type, result: Any) -> None:
    signal = compat.signals.task_enqueued
    if _only_quiet_logging(signal, sender, compat.signals.log_task_enqueued, logging.DEBUG):
        return
    await signal.asend(sender, task_result=result)


def _only_quiet_logging(signal: Any, sender: type, log_receiver: Any, level: int) -> bool:
    sync, asynchronous = signal._live_receivers(sender)
    if asynchronous or any(receiver is not log_receiver for receiver in sync):
        return False
    logger: logging.Logger = compat.signals.logger
    return not logger.isEnabledFor(level)
