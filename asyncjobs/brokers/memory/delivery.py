"""A message taken from an in-process queue and how it is settled (see ``memory.broker``).

Each settlement is one step under the server's lock: the entry leaves the in-flight set
and, in the same step, goes back to its queue, into its delayed messages or to its dead
letters, so it can neither be lost nor be in two places. Delivery counts and the
crash-suspect flag travel with the entry as on Redis: a hand-back counts and is no
suspect, a release counts nothing and keeps the flag, a new message (a retry, a replay)
starts again at 1.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from asyncjobs.brokers.base import Delivery
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.brokers.memory.server import Entry

if TYPE_CHECKING:
    from asyncjobs.brokers.memory.broker import MemoryBroker

logger = logging.getLogger("asyncjobs.broker.memory")


class MemoryDelivery(Delivery):
    __slots__ = ("broker", "token")

    def __init__(self, broker: MemoryBroker, queue: str, token: int, entry: Entry) -> None:
        super().__init__(
            entry.data, queue, entry.prior + 1, entry.enqueued_at, suspect=entry.suspect
        )
        self.broker = broker
        self.token = token

    def _forget(self) -> None:
        # After a settlement there is nothing left to forget. Abandoned (the worker could
        # not settle it): it comes back as a dead worker's would after its lease on Redis,
        # counted and a crash suspect; here at once, as there is no lease to wait for.
        if not self.settled:
            self.broker.server.give_back(self.broker.holder, counted=True, token=self.token)

    async def _ack(self) -> None:
        self._settle()

    async def _dead_letter(self, record: DeadLetter, payload: bytes) -> None:
        self._settle(dead=payload)

    async def _hand_back(self) -> None:
        self._settle(back=Entry(self.data, self.delivery_count))

    async def _release(self) -> None:
        self._settle(back=Entry(self.data, self.delivery_count - 1, self.suspect))

    async def _republish(self, body: bytes) -> None:
        self._settle(back=Entry(body))

    async def _retry_at(self, body: bytes, due_unix_s: float) -> None:
        self._settle(later=(body, due_unix_s))

    def _settle(
        self,
        *,
        back: Entry | None = None,
        later: tuple[bytes, float] | None = None,
        dead: bytes | None = None,
    ) -> None:
        if not self.broker.server.settle(self.queue, self.token, back=back, later=later, dead=dead):
            # Its broker crashed (``MemoryBroker.crash``) or gave it up: the message is
            # back in its queue already, as a dead Redis consumer's after its lease.
            logger.debug("delivery %d of queue %s was no longer held", self.token, self.queue)
