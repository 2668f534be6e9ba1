"""ASGI entry point: ``uvicorn example.asgi:application``.

asyncjobs' ``get_asgi_application`` is Django's plus lifespan events, so the server's
shutdown closes the broker client cleanly.
"""

from __future__ import annotations

import os

from asyncjobs.django.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

application = get_asgi_application()
