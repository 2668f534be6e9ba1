"""``memory://``: in-process queues, for tests of user code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncjobs.brokers.transport import Capabilities, TransportSpec, no_url_problem

if TYPE_CHECKING:
    from asyncjobs.brokers.base import ReliableBroker, TransportOptions


def _broker(url: str, options: TransportOptions) -> ReliableBroker:
    from asyncjobs.brokers.memory.broker import MemoryBroker

    return MemoryBroker(options)  # type: ignore[return-value]


TRANSPORT = TransportSpec(
    name="memory",
    capabilities=Capabilities(shared=False, needs_host=False),
    default_port=0,
    build_broker=_broker,
    url_problem=no_url_problem,
)
