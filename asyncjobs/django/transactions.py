"""``Transactions`` for Django: a send registered inside ``transaction.atomic()`` goes out
when that database's transaction commits (``transaction.on_commit``), never if it rolls
back; a savepoint that rolls back drops the sends registered inside it, Django's own
semantics. Callbacks are ``robust``: one send that fails after the commit (logged with
its task id by the kicker) does not keep the others from running.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction


class DjangoTransactions:
    def defer(self, send: Callable[[], None], using: str | None) -> bool:
        if not transaction.get_connection(using).in_atomic_block:
            return False
        transaction.on_commit(send, using=using, robust=True)
        return True
