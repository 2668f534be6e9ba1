"""Entry module for worker and scheduler processes.

    DJANGO_SETTINGS_MODULE=proj.settings taskiq worker asyncjobs.django.worker:broker

Django is set up (settings validated, every app's ``tasks.py`` imported) before taskiq
looks at the broker, and the asyncjobs receiver replaces taskiq's default one. A bad
setting, which Django records without stopping, stops the worker and the scheduler here
(exit status 78).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from typing import Any

import django

from asyncjobs.app import current_broker
from asyncjobs.django.conf import reporting_start_errors
from asyncjobs.errors import ConfigurationError
from asyncjobs.worker import install_receiver

logger = logging.getLogger("asyncjobs.worker")

EX_CONFIG = 78  # sysexits.h: configuration error
# How long a child that cannot start waits for the manager to stop it before it exits
# anyway (the manager checks its queue once a second).
MANAGER_STOP_WAIT_S = 30.0


def _fail_start(error: Exception) -> None:
    """A bad setting stops the whole worker instead of a restart loop.

    taskiq's process manager restarts a dead child every second forever; a child that
    cannot even configure itself asks the manager to shut everything down instead: one
    child (worker-0) sends it one SIGTERM, and every child stays alive until the manager
    stops it. The manager's SIGTERM handler puts to a queue under a lock that is not
    reentrant: a second SIGTERM arriving inside it, or the handler interrupting the
    manager's own put (the restart it queues when it sees a dead child), hangs it forever.
    """
    logger.critical("cannot start: %s", error)
    print(f"asyncjobs: cannot start: {error}", file=sys.stderr)
    if multiprocessing.parent_process() is not None:
        if multiprocessing.current_process().name == "worker-0":
            os.kill(os.getppid(), signal.SIGTERM)
        _wait_to_be_stopped(MANAGER_STOP_WAIT_S)
    raise SystemExit(EX_CONFIG)


def _wait_to_be_stopped(limit_s: float) -> None:
    """Sleep until SIGINT (the manager stopping its children) or SIGTERM, or ``limit_s``."""
    stopped: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: stopped.append(received))
    deadline = time.monotonic() + limit_s
    while not stopped and time.monotonic() < deadline:
        time.sleep(0.05)


try:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ConfigurationError(
            "DJANGO_SETTINGS_MODULE is not set: run e.g. `DJANGO_SETTINGS_MODULE=proj.settings "
            "taskiq worker asyncjobs.django.worker:broker`"
        )
    with reporting_start_errors():  # _fail_start reports a bad setting, once
        django.setup()
    # A bad setting left the process without an app (Django itself starts regardless):
    # current_broker() raises the error start-up recorded.
    if not current_broker().capabilities.shared:
        raise ConfigurationError(
            f"BROKER_URL: {current_broker().transport_name}:// keeps its queues inside one "
            "process: a worker or scheduler process would never see what others send (run "
            "tasks in the test's own process, or use a redis:// or amqp:// URL)"
        )
except ConfigurationError as exc:
    _fail_start(exc)

install_receiver()

broker = current_broker()


def __getattr__(name: str) -> Any:
    """``scheduler``: `taskiq scheduler asyncjobs.django.worker:scheduler` (any number of
    replicas), built on first access: a worker process never imports the scheduler."""
    if name != "scheduler":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from asyncjobs.scheduling import AsyncJobsScheduler

    scheduler = globals()["scheduler"] = AsyncJobsScheduler(broker)
    return scheduler
