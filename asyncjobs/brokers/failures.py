"""Library errors (redis-py, aiormq/aio-pika, sockets) as asyncjobs' own, in one line.

A transport operation that fails inside a library raises that library's exception, whose
message may name the server but never says what asyncjobs was doing, and whose traceback
is all a CLI user would see. ``translating`` turns it into a ``BrokerError`` (a
``BrokerConnectionError`` for connection failures) reading
``<what failed> at <redacted url>: <Type>: <message>``, secrets scrubbed. Errors that are
already asyncjobs' own pass through unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from asyncjobs.brokers.errors import AsyncJobsError, BrokerConnectionError, BrokerError
from asyncjobs.brokers.transport import loaded_transports
from asyncjobs.brokers.urls import describe_failure

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")
Method = Callable[Concatenate[S, P], Coroutine[Any, Any, T]]
Pages = Callable[Concatenate[S, P], AsyncIterator[T]]


def library_errors() -> tuple[type[BaseException], ...]:
    """The exception classes a broker library raises: sockets', and those of every
    transport this process imported (one it never imported raised nothing)."""
    errors: list[type[BaseException]] = [OSError]  # sockets, TimeoutError, ConnectionError
    for spec in loaded_transports():
        errors += spec.library_errors()
    return tuple(errors)


def connection_errors() -> tuple[type[BaseException], ...]:
    """Of ``library_errors``, those that mean the broker could not be reached or was lost."""
    errors: list[type[BaseException]] = [OSError]
    for spec in loaded_transports():
        errors += spec.connection_errors()
    return tuple(errors)


def broker_failure(doing: str, url: str, exc: BaseException) -> BrokerError:
    """``exc`` (a library's error) as a ``BrokerError`` whose message says what failed,
    where (the URL redacted) and why (secrets scrubbed)."""
    kind = BrokerConnectionError if isinstance(exc, connection_errors()) else BrokerError
    return kind(describe_failure(f"{doing} failed", url, exc))


def translating(doing: str) -> Callable[[Method[S, P, T]], Method[S, P, T]]:
    """Decorate a broker's async method: a library error it raises becomes
    ``broker_failure(doing, broker.url, error)``. The broker needs a ``url``."""

    def decorate(method: Method[S, P, T]) -> Method[S, P, T]:
        @functools.wraps(method)
        async def translated(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await method(self, *args, **kwargs)
            except AsyncJobsError:
                raise  # already ours (BrokerConnectionError is an OSError too)
            except library_errors() as exc:
                raise broker_failure(doing, str(getattr(self, "url", "")), exc) from None

        return translated

    return decorate


def translating_pages(doing: str) -> Callable[[Pages[S, P, T]], Pages[S, P, T]]:
    """``translating`` for an async generator method (pages of dead letters)."""

    def decorate(method: Pages[S, P, T]) -> Pages[S, P, T]:
        @functools.wraps(method)
        async def translated(self: S, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            try:
                async for page in method(self, *args, **kwargs):
                    yield page
            except AsyncJobsError:
                raise
            except library_errors() as exc:
                raise broker_failure(doing, str(getattr(self, "url", "")), exc) from None

        return translated

    return decorate
