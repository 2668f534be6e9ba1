"""``memory://``: a real transport with in-process queues, for tests of user code.

``memory://`` or ``memory://name``: every broker, result store and schedule storage of
the same URL and key prefix in a process shares one set of queues, results and schedules
(``memory.server``); the receiver consumes them as it consumes Redis or RabbitMQ.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from asyncjobs.brokers.transport import Capabilities, TransportSpec

if TYPE_CHECKING:
    from asyncjobs.brokers.base import ReliableBroker, TransportOptions
    from asyncjobs.brokers.stores import (
        MonitorStore,
        ResultStore,
        ResultStoreOptions,
        ScheduleStorage,
    )

NAME = re.compile(r"[A-Za-z0-9_-]*")


def url_problem(url: str) -> str | None:
    """What is wrong with a ``memory://`` URL: it names at most a server, nothing else."""
    parts = urlsplit(url)
    shape = "expected memory:// or memory://name"
    if "@" in parts.netloc:
        return f"a memory:// URL takes no user or password; {shape}"
    if ":" in parts.netloc:
        return f"a memory:// URL has no host:port, only an optional name; {shape}"
    if not NAME.fullmatch(parts.netloc):
        return f"the name {parts.netloc!r} may use letters, digits, _ and - only; {shape}"
    if parts.path not in ("", "/"):
        return f"a memory:// URL takes no path ({parts.path!r}); {shape}"
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        return f"a memory:// URL takes no options; {shape}"
    return None


def _broker(url: str, options: TransportOptions) -> ReliableBroker:
    from asyncjobs.brokers.memory.broker import MemoryBroker

    return MemoryBroker(url, options)


def _results(url: str, options: ResultStoreOptions) -> ResultStore:
    from asyncjobs.brokers.memory.results import MemoryResultStore

    return MemoryResultStore(url, options)


def _schedules(url: str, key_prefix: str) -> ScheduleStorage:
    from asyncjobs.brokers.memory.schedules import MemoryScheduleStorage

    return MemoryScheduleStorage(url, key_prefix)


def _monitor(url: str, key_prefix: str) -> MonitorStore:
    from asyncjobs.brokers.memory.monitor import MemoryMonitorStore

    return MemoryMonitorStore(url, key_prefix)


def _discard(url: str, key_prefix: str) -> None:
    from asyncjobs.brokers.memory.server import discard_server

    discard_server(url, key_prefix)


TRANSPORT = TransportSpec(
    name="memory",
    capabilities=Capabilities(
        stores_results=True,
        stores_schedules=True,
        needs_promoter=False,
        shared=False,
        needs_host=False,
        locates=True,
    ),
    default_port=0,
    build_broker=_broker,
    url_problem=url_problem,
    build_result_store=_results,
    build_schedule_storage=_schedules,
    build_monitor_store=_monitor,
    discard_state=_discard,
)
