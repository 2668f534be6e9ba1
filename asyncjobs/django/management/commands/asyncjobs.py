"""``python manage.py asyncjobs ...``: the asyncjobs CLI with this project's settings."""

from __future__ import annotations

import argparse
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from asyncjobs import cli
from asyncjobs.app import current_app
from asyncjobs.errors import ConfigurationError

EX_CONFIG = 78  # as the `asyncjobs` console script: a bad setting


class Command(BaseCommand):
    help = "asyncjobs operations: inspect, workers, dlq, task, schedules (see `asyncjobs --help`)"
    # Like the console script: its own failures are one line, and a bad setting is
    # reported below (the system checks would print theirs before every command).
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            current_app()  # raises the bad setting Django recorded at start-up
        except ConfigurationError as exc:
            raise CommandError(str(exc), returncode=EX_CONFIG) from None
        status = cli.run(options["arguments"] or ["--help"], out=cast(TextIO, self.stdout))
        if status:
            raise CommandError(f"asyncjobs exited with status {status}", returncode=status)
