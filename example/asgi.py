"""ASGI entry point: ``uvicorn example.asgi:application``.

asyncjobs' ``get_asgi_application`` is Django's plus lifespan events, so the server's
shutdown closes the broker client cleanly.
"""

from __future__ import annotations

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from asyncjobs.django.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

# The admin's CSS and JavaScript (STATIC_URL) come straight from the installed apps, as
# `runserver` serves them, whatever DEBUG says: the example has no web server in front
# of uvicorn. A real project runs `collectstatic` and lets its web server or CDN serve
# STATIC_ROOT. Every other request, and the lifespan events, reach the application.
application = ASGIStaticFilesHandler(get_asgi_application())
