"""Django's task signals from async code, without a thread hop that would do nothing.

``Signal.asend`` runs the sync receivers in a thread (``sync_to_async``), and Django
itself connects one to every task signal: a log line (``task_enqueued`` at DEBUG,
``task_started`` and a success's ``task_finished`` at INFO, a failure's at ERROR).
Crossing to a thread and back costs more than sending the task when that log is off,
which it is unless configured (Django logs WARNING and up). When the only receiver is
Django's own and its logger is not enabled for its level, nothing would happen, so
nothing is sent. Any other receiver, or the log on, and the signal goes out as Django's
backends send it.

``task_finished`` of a failure is sent while the exception is being handled, as
Django's backends do (its log receiver reads ``sys.exc_info()`` for the traceback):
``asend`` would run sync receivers in a thread where there is none, so the signal is
sent from that thread, inside an ``except`` there.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async

from asyncjobs.django.task_backend import compat


async def enqueued(sender: type, result: Any) -> None:
    signals = compat.signals
    if not _quiet(signals.task_enqueued, sender, signals.log_task_enqueued, logging.DEBUG):
        await signals.task_enqueued.asend(sender, task_result=result)


async def started(sender: type, result: Any) -> None:
    signals = compat.signals
    if not _quiet(signals.task_started, sender, signals.log_task_started, logging.INFO):
        await signals.task_started.asend(sender, task_result=result)


async def finished(sender: type, result: Any, error: BaseException | None) -> None:
    signals = compat.signals
    signal, level = signals.task_finished, logging.INFO if error is None else logging.ERROR
    if _quiet(signal, sender, signals.log_task_finished, level):
        return
    if error is None:
        await signal.asend(sender, task_result=result)
        return

    def send_while_handling() -> None:
        try:
            raise error
        except BaseException:
            signal.send(sender, task_result=result)

    await sync_to_async(send_while_handling)()


def _quiet(signal: Any, sender: type, log_receiver: Any, level: int) -> bool:
    """Whether sending would do nothing: Django's log is the only receiver, and off."""
    sync, asynchronous = signal._live_receivers(sender)
    if asynchronous or any(receiver is not log_receiver for receiver in sync):
        return False
    logger: logging.Logger = compat.signals.logger
    return not logger.isEnabledFor(level)
