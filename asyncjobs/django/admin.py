"""Registers the operator console on Django's default admin site (``admin.autodiscover``
imports this module only where ``django.contrib.admin`` is installed). A project with its
own ``AdminSite`` calls ``asyncjobs.django.console.register(site)``."""

from __future__ import annotations

from django.contrib import admin

from asyncjobs.django.console import register

register(admin.site)
