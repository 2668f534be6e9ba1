"""Broker URLs: which transport a scheme selects, whether its library will read it the
way it was meant, and how to print one without secrets.

Every URL shown anywhere (logs, CLI output, errors, spans) goes through ``redact_url``;
every library error message shown next to one goes through ``scrub``. redis-py also
reads credentials from the query string (``?password=...``, ``?username=...``), so both
mask those too, not just the ``user:password@`` part.

``check_url`` is the start-up check of a broker or store URL: the scheme picks the
transport, and the transport's own parser (``PARSERS``) reads the URL the way its library
will, refusing what the library would silently misread (redis-py takes ``redis://h/x``
as database 0; aiormq takes ``?heartbeat=abc`` as "no heartbeats").
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from urllib.parse import SplitResult, unquote, unquote_plus, urlsplit, urlunsplit

from asyncjobs.brokers.errors import ConfigurationError


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

MASK = "***"
# Query parameters whose values are never shown (any case): redis-py reads ``password``
# and ``username`` from the query string; ``passwd`` is a common misspelling of it.
SECRET_QUERY_KEYS = frozenset({"password", "passwd", "username"})
# Of those, the values ``scrub`` removes from free text (a user name is no secret, and
# removing every "default" from a message would make it unreadable).
PASSWORD_QUERY_KEYS = frozenset({"password", "passwd"})


# -- printing without secrets ------------------------------------------------------------
def redact_url(url: str) -> str:
    """The URL with its password and any ``password``/``passwd``/``username`` query
    parameter shown as ``***`` (safe for logs, errors and output)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if password:
        host = netloc.rsplit("@", 1)[1]
        netloc = f"{parts.username or ''}:{MASK}@{host}"
    query = _masked_query(parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url  # urlunsplit would normalise it ("memory://" -> "memory:")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _masked_query(query: str) -> str:
    pieces = []
    for piece in query.split("&"):
        key, sep, value = piece.partition("=")
        if sep and value and _query_key(key) in SECRET_QUERY_KEYS:
            piece = f"{key}={MASK}"
        pieces.append(piece)
    return "&".join(pieces)


def _query_key(raw: str) -> str:
    return unquote_plus(raw).strip().lower()


def scrub(text: str, *urls: str | None) -> str:
    """``text`` (a library's error message) with each URL redacted and each URL's
    passwords (user info and query string, raw or percent-decoded) replaced by ``***``."""
    for url in urls:
        if not url:
            continue
        text = text.replace(url, redact_url(url))
        for secret in sorted(_passwords(url), key=len, reverse=True):
            text = text.replace(secret, MASK)
    return text


def _passwords(url: str) -> set[str]:
    try:
        parts = urlsplit(url)
        found = {parts.password or ""}
    except ValueError:
        return set()
    for piece in parts.query.split("&"):
        key, _, value = piece.partition("=")
        if _query_key(key) in PASSWORD_QUERY_KEYS:
            found |= {value, unquote_plus(value)}
    found |= {unquote(secret) for secret in found}
    return found - {""}


def describe_failure(doing: str, url: str, exc: BaseException) -> str:
    """``<doing> at <redacted url>: <Type>: <message without secrets>``: one line."""
    message = " ".join(scrub(str(exc), url).split())
    reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"{doing} at {redact_url(url)}: {reason}"


# -- which transport, and is the URL what its library reads ------------------------------
def transport_for(url: str, setting: str = "BROKER_URL") -> Transport:
    """Validate ``url``'s scheme and host and return the transport its scheme selects.

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


def check_url(url: str, setting: str = "BROKER_URL") -> Transport:
    """``transport_for``, then the transport's parser (``PARSERS``): a database, port or
    option its library would refuse or silently misread raises ``ConfigurationError``
    naming ``setting``, the URL (redacted) and the reason. Nothing is connected."""
    transport = transport_for(url, setting)
    problem = PARSERS[transport](url)
    if problem:
        raise ConfigurationError(f"{setting}: {redact_url(url)!r}: {scrub(problem, url)}")
    return transport


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


def _redis_problem(url: str) -> str | None:
    """What redis-py would refuse in ``url`` or read otherwise than written."""
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.connection import parse_url
    from redis.exceptions import RedisError

    path = unquote(urlsplit(url).path)
    if path not in ("", "/") and not re.fullmatch(r"/\d+", path):
        # redis-py ignores a path it cannot read as a number: database 0, silently.
        return f"the database is a number >= 0 after the host (e.g. /0), not {path[1:]!r}"
    try:
        options = parse_url(url)  # the query string's typed options
        # Unknown options and bad SSL flags surface only when a connection is made.
        BlockingConnectionPool.from_url(url).make_connection()  # type: ignore[no-untyped-call]
    except TypeError as exc:
        unknown = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
        return f"unknown option {unknown.group(1)!r}" if unknown else str(exc)
    except (ValueError, RedisError) as exc:
        return str(exc)
    return _redis_ranges(dict(options))


# Query options redis-py parses as numbers, and the smallest value that makes sense.
_REDIS_MINIMUMS: Mapping[str, tuple[float, bool]] = {  # name: (minimum, minimum allowed)
    "db": (0, True),
    "socket_timeout": (0, False),
    "socket_connect_timeout": (0, False),
    "timeout": (0, False),
    "health_check_interval": (0, True),
    "socket_read_size": (1, True),
    "max_connections": (1, True),
}


def _redis_ranges(options: Mapping[str, object]) -> str | None:
    for name, (minimum, inclusive) in _REDIS_MINIMUMS.items():
        value = options.get(name)
        if not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            bound = f">= {minimum}" if inclusive else f"> {minimum}"
            return f"option {name}={value!r} must be a finite number {bound}"
    return None


def _amqp_problem(url: str) -> str | None:
    """What aio-pika and aiormq would refuse in ``url`` or read otherwise than written:
    they read the options below and silently ignore any other, and each falls back to
    its default (0 for ``heartbeat``: no heartbeats at all) on a value it cannot parse."""
    from yarl import URL

    try:
        parsed = URL(url)
    except ValueError as exc:
        return str(exc)
    if re.search(r"%(?![0-9A-Fa-f]{2})", urlsplit(url).path):
        return "the vhost has a malformed %-escape (write '/' as %2F, '%' as %25)"
    for key, value in parsed.query.items():
        check = _AMQP_OPTIONS.get(key)
        if check is None:
            known = ", ".join(sorted(_AMQP_OPTIONS))
            return f"unknown option {key!r} (aio-pika reads {known})"
        expected = check(value)
        if expected:
            return f"option {key}={value!r}: expected {expected}"
    return None


def _integer(low: int, high: int | None = None) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        expected = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        if not re.fullmatch(r"-?\d+", value.strip()):
            return expected
        number = int(value)
        return expected if number < low or (high is not None and number > high) else None

    return check


def _seconds(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return "a number of seconds > 0"
    return None if math.isfinite(number) and number > 0 else "a number of seconds > 0"


def _choice(*allowed: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value.lower() in allowed else "one of " + ", ".join(allowed)

    return check


def _base64(value: str) -> str | None:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "base64 data"
    return None


def _any(value: str) -> str | None:
    return None


_TRUE = ("1", "true", "yes", "y", "on", "enable", "enabled")  # aiormq's parse_bool
_FALSE = ("0", "false", "no", "n", "off", "disable", "disabled")  # (anything else: false)

# aiormq.Connection and aio_pika's (Robust)Connection.PARAMETERS, with what each parses.
_AMQP_OPTIONS: Mapping[str, Callable[[str], str | None]] = {
    "heartbeat": _integer(0, 65534),  # aiormq: anything else means 0, no heartbeats
    "timeout": _integer(0),
    "reconnect_interval": _seconds,  # aio-pika: unparseable means 0, a reconnect storm
    "fail_fast": _choice(*_TRUE, *_FALSE),
    "interleave": _integer(0),
    "happy_eyeballs_delay": _seconds,
    "auth": _choice("plain", "external"),
    "name": _any,
    "cafile": _any,
    "capath": _any,
    "keyfile": _any,
    "certfile": _any,
    "cadata": _base64,
    "no_verify_ssl": _choice("0", "1"),
}


def _no_problem(url: str) -> str | None:
    return None


PARSERS: Mapping[Transport, Callable[[str], str | None]] = {
    Transport.REDIS: _redis_problem,
    Transport.RABBITMQ: _amqp_problem,
    Transport.MEMORY: _no_problem,
}


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of a broker URL, with the scheme's default port."""
    parts = urlsplit(url)
    default = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}.get(parts.scheme, 0)
    return parts.hostname or "127.0.0.1", parts.port or default
