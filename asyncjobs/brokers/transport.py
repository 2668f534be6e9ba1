"""What a transport says about itself, and the scheme table that finds it.

A transport is a folder ``asyncjobs/brokers/<name>/`` whose ``__init__`` defines
``TRANSPORT``, a ``TransportSpec``: its name, what it can do (``Capabilities``, in the
style of ``django.tasks`` backends' flags), and how to build its broker, its result
store, its schedule storage and its monitor store. Nothing outside the folder imports it:
the kernel, the scheduler and the Django adapter find it here, by a URL's scheme, and
talk to the objects it builds through the port (``brokers.base``, ``brokers.stores``).

Adding a transport: a new folder with ``TRANSPORT``, one line in ``SCHEMES``, one test
parameter (the contract suite's ``transport`` fixture).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.brokers.urls import redact_url, scrub

if TYPE_CHECKING:
    from asyncjobs.brokers.base import ReliableBroker, TransportOptions
    from asyncjobs.brokers.stores import (
        MonitorStore,
        ResultStore,
        ResultStoreOptions,
        ScheduleStorage,
    )

# scheme -> the package that defines TRANSPORT (imported when a URL names it: a Redis
# deployment never imports aio-pika, nor the reverse).
SCHEMES: dict[str, str] = {
    "redis": "asyncjobs.brokers.redis",
    "rediss": "asyncjobs.brokers.redis",
    "amqp": "asyncjobs.brokers.rabbitmq",
    "amqps": "asyncjobs.brokers.rabbitmq",
    "memory": "asyncjobs.brokers.memory",
}
ALLOWED = ", ".join(f"{scheme}://" for scheme in SCHEMES)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport can do; the kernel asks these instead of checking names."""

    # Its URL can keep task results (the default RESULT_BACKEND_URL is the broker's own).
    stores_results: bool = False
    # Its URL can keep dynamic schedules and the scheduler's exactly-once claims.
    stores_schedules: bool = False
    # Delayed messages move into their queue only while some process runs the broker's
    # promoter (``ReliableBroker.promoter``): the scheduler runs it for every queue.
    needs_promoter: bool = False
    # Messages are seen by other processes (False: in-process queues, for tests).
    shared: bool = True
    # A URL host is required (False: ``memory://``).
    needs_host: bool = True
    # ``ReliableBroker.locate`` can find a task's message in its queue (False: AMQP
    # cannot look into a queue without taking its messages).
    locates: bool = False


@dataclass(frozen=True, slots=True)
class TransportSpec:
    """One transport, as the scheme table knows it."""

    name: str  # messaging.system of spans, the TRANSPORT column of inspect
    capabilities: Capabilities
    default_port: int
    build_broker: Callable[[str, TransportOptions], ReliableBroker]
    # What the transport's library would refuse in a URL, or read otherwise than written
    # (None: nothing). Nothing is connected.
    url_problem: Callable[[str], str | None]
    build_result_store: Callable[[str, ResultStoreOptions], ResultStore] | None = None
    build_schedule_storage: Callable[[str, str], ScheduleStorage] | None = None
    # (URL, key prefix) -> the workers' registry and per-minute counters; None: its
    # URLs cannot keep them (the kernel then looks at the other configured URLs).
    build_monitor_store: Callable[[str, str], MonitorStore] | None = None
    # The exception classes its library raises, and those of them that mean the broker
    # could not be reached or was lost (``brokers.failures`` turns them into ours).
    library_errors: Callable[[], tuple[type[BaseException], ...]] = lambda: ()
    connection_errors: Callable[[], tuple[type[BaseException], ...]] = lambda: ()
    # A transport whose queues live in this process: drop the state of (URL, key
    # prefix), as a test does when it ends. None: the state lives in a server.
    discard_state: Callable[[str, str], None] | None = None


def transport_for(url: str, setting: str = "BROKER_URL") -> TransportSpec:
    """The transport ``url``'s scheme selects; its scheme and host checked.

    Raises ``ConfigurationError`` naming ``setting`` and what is allowed.
    """
    parts = _split(url, setting)
    package = SCHEMES.get(parts.scheme.lower())
    if package is None:
        shown = parts.scheme or "(none)"
        raise ConfigurationError(
            f"{setting}: unsupported scheme {shown!r} in {redact_url(url)!r}; use one of {ALLOWED}"
        )
    spec: TransportSpec = importlib.import_module(package).TRANSPORT
    if spec.capabilities.needs_host and not parts.hostname:
        raise ConfigurationError(
            f"{setting}: {redact_url(url)!r} has no host; e.g. redis://127.0.0.1:6379/0"
        )
    return spec


def check_url(url: str, setting: str = "BROKER_URL") -> TransportSpec:
    """``transport_for``, then the transport's own reading of the URL: a database, port
    or option its library would refuse or silently misread raises ``ConfigurationError``
    naming ``setting``, the URL (redacted) and the reason. Nothing is connected."""
    spec = transport_for(url, setting)
    problem = spec.url_problem(url)
    if problem:
        raise ConfigurationError(f"{setting}: {redact_url(url)!r}: {scrub(problem, url)}")
    return spec


def loaded_transports() -> list[TransportSpec]:
    """The transports this process has imported (the others raised nothing here)."""
    packages = dict.fromkeys(SCHEMES.values())
    return [sys.modules[package].TRANSPORT for package in packages if package in sys.modules]


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of a broker URL, with its transport's default port."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or transport_for(url).default_port


def _split(url: str, setting: str) -> SplitResult:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"{setting}: expected a URL such as redis://127.0.0.1:6379/0 ({ALLOWED})"
        )
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a malformed or out-of-range port
    except ValueError as exc:
        raise ConfigurationError(f"{setting}: malformed URL {redact_url(url)!r}: {exc}") from None
    if port == 0:
        raise ConfigurationError(
            f"{setting}: malformed URL {redact_url(url)!r}: port 0 cannot be connected to"
        )
    return parts


def no_url_problem(url: str) -> str | None:
    return None
