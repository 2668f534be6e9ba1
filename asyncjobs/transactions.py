"""Sends that wait for a database transaction to commit.

The kernel knows no database: a framework adapter (``asyncjobs.django``) gives the app
a ``Transactions`` that can tell whether a transaction is open on a connection and run a
callback once it commits. Without one, nothing is deferred: every send goes out at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Transactions(Protocol):
    def defer(self, send: Callable[[], None], using: str | None) -> bool:
        """Run ``send`` once the transaction open on ``using`` (None: the default
        database) commits, and never if it rolls back; False, and nothing registered,
        when no transaction is open there (the caller sends at once)."""
        ...
