"""A configuration error both trees recognise: ours and Django's."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from asyncjobs.errors import ConfigurationError


class AsyncJobsImproperlyConfigured(ConfigurationError, ImproperlyConfigured):
    """Raised at start-up for a bad ``ASYNCJOBS`` setting or environment override."""
