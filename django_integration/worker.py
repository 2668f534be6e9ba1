"""Entry module for worker and scheduler processes.

    DJANGO_SETTINGS_MODULE=proj.settings taskiq worker django_integration.worker:broker

Django is set up (settings validated, every app's ``tasks.py`` imported) before taskiq
looks at the broker, and the asyncjobs receiver replaces taskiq's default one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys

import django

from asyncjobs.app import current_broker
from asyncjobs.errors import ConfigurationError
from asyncjobs.worker import install_receiver

logger = logging.getLogger("asyncjobs.worker")

EX_CONFIG = 78  # sysexits.h: configuration error


def _fail_start(error: Exception) -> None:
    """A bad setting stops the whole worker instead of a restart loop.

    taskiq's process manager restarts a dead child every second forever; a child that
    cannot even configure itself asks the manager to shut everything down instead.
    """
    logger.critical("cannot start: %s", error)
    print(f"asyncjobs: cannot start: {error}", file=sys.stderr)
    if multiprocessing.parent_process() is not None:
        os.kill(os.getppid(), signal.SIGTERM)
    raise SystemExit(EX_CONFIG)


try:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ConfigurationError(
            "DJANGO_SETTINGS_MODULE is not set: run e.g. `DJANGO_SETTINGS_MODULE=proj.settings "
            "taskiq worker django_integration.worker:broker`"
        )
    django.setup()
except ConfigurationError as exc:
    _fail_start(exc)

install_receiver()

broker = current_broker()
