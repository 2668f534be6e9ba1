"""Broker URLs: which transport a scheme selects, and how to print one without secrets."""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import SplitResult, urlsplit, urlunsplit

from brokers.errors import ConfigurationError


class Transport(StrEnum):
    REDIS = "redis"
    RABBITMQ = "rabbitmq"
    MEMORY = "memory"


SCHEMES: dict[str, Transport] = {
    "redis": Transport.REDIS,
    "rediss": Transport.REDIS,
    "amqp": Transport.RABBITMQ,
    "amqps": Transport.RABBITMQ,
    "memory": Transport.MEMORY,
}
ALLOWED = ", ".join(f"{scheme}://" for scheme in SCHEMES)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and errors)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    if not password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def transport_for(url: str, setting: str = "BROKER_URL") -> Transport:
    """Validate ``url`` and return the transport its scheme selects.

    Raises ``ConfigurationError`` naming ``setting`` and what is allowed.
    """
    parts = _split(url, setting)
    transport = SCHEMES.get(parts.scheme.lower())
    if transport is None:
        shown = parts.scheme or "(none)"
        raise ConfigurationError(
            f"{setting}: unsupported scheme {shown!r} in {redact_url(url)!r}; use one of {ALLOWED}"
        )
    if transport is not Transport.MEMORY and not parts.hostname:
        raise ConfigurationError(
            f"{setting}: {redact_url(url)!r} has no host; e.g. redis://127.0.0.1:6379/0"
        )
    return transport


def _split(url: str, setting: str) -> SplitResult:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"{setting}: expected a URL such as redis://127.0.0.1:6379/0 ({ALLOWED})"
        )
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigurationError(f"{setting}: malformed URL {redact_url(url)!r}: {exc}") from None
    return parts


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of a broker URL, with the scheme's default port."""
    parts = urlsplit(url)
    default = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}.get(parts.scheme, 0)
    return parts.hostname or "127.0.0.1", parts.port or default
