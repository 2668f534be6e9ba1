"""``python manage.py asyncjobs ...``: the asyncjobs CLI with this project's settings."""

from __future__ import annotations

import argparse
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

from asyncjobs import cli


class Command(BaseCommand):
    help = "asyncjobs operations: inspect, dlq, schedules (see `asyncjobs --help`)"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER)

    def handle(self, *args: Any, **options: Any) -> None:
        status = cli.run(options["arguments"] or ["--help"], out=cast(TextIO, self.stdout))
        if status:
            raise CommandError(f"asyncjobs exited with status {status}", returncode=status)
