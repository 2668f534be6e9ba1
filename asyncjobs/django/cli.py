"""The ``asyncjobs`` console script: Django settings when DJANGO_SETTINGS_MODULE is set."""

from __future__ import annotations

import os
import sys

from asyncjobs import cli


def main() -> int:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return cli.main()
    import django

    from asyncjobs.app import current_app
    from asyncjobs.django.conf import reporting_start_errors
    from asyncjobs.errors import ConfigurationError

    # Like `taskiq worker` and `python -m`: the project in the current directory imports.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    try:
        with reporting_start_errors():  # reported below, in one line
            django.setup()  # validates ASYNCJOBS and configures the broker
        current_app()  # raises the bad setting Django recorded without stopping
    except ConfigurationError as exc:
        print(f"asyncjobs: {exc}", file=sys.stderr)
        return 78
    return cli.run(sys.argv[1:])
