"""Entry module for worker and scheduler processes.

    DJANGO_SETTINGS_MODULE=proj.settings taskiq worker django_integration.worker:broker

Django is set up (settings validated, every app's ``tasks.py`` imported) before taskiq
looks at the broker, and the asyncjobs receiver replaces taskiq's default one.
"""

from __future__ import annotations

import os

import django

from asyncjobs.app import current_broker
from asyncjobs.errors import ConfigurationError
from asyncjobs.worker import install_receiver

if not os.environ.get("DJANGO_SETTINGS_MODULE"):
    raise ConfigurationError(
        "DJANGO_SETTINGS_MODULE is not set: run e.g. "
        "`DJANGO_SETTINGS_MODULE=proj.settings taskiq worker django_integration.worker:broker`"
    )

django.setup()
install_receiver()

broker = current_broker()
