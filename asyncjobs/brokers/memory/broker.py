"""``memory://``: tasks run in the calling process, for unit tests of user code.

A thin wrapper over taskiq's ``InMemoryBroker`` (results kept in memory) that routes by
queue like the real transports, so a wrong ``queue=`` fails the same way in tests.
"""

from __future__ import annotations

from taskiq import InMemoryBroker
from taskiq.message import BrokerMessage

from asyncjobs.brokers.base import TransportOptions
from asyncjobs.brokers.envelope import QUEUE as QUEUE_LABEL
from asyncjobs.brokers.errors import UnknownQueueError


class MemoryBroker(InMemoryBroker):
    transport_name = "memory"

    def __init__(self, options: TransportOptions) -> None:
        super().__init__(await_inplace=True)
        self.options = options

    async def kick(self, message: BrokerMessage) -> None:
        queue = message.labels.get(QUEUE_LABEL) or self.options.default_queue
        if queue not in self.options.queues:
            raise UnknownQueueError(
                f"queue {queue!r} is not configured; QUEUES is {list(self.options.queues)}"
            )
        await super().kick(message)
