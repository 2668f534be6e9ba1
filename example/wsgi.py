"""WSGI entry point: ``gunicorn example.wsgi:application`` (sync views in threads).

Sync views send with ``task.kiq_sync(...)``: the broker client lives in one event loop of
asyncjobs' own per process, whichever thread sends.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

application = get_wsgi_application()
