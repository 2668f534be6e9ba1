"""RabbitMQ URLs as aio-pika and aiormq read them: what they would refuse, or read
otherwise than written (each silently falls back to a default on a value it cannot parse:
``?heartbeat=abc`` means no heartbeats at all)."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit


def url_problem(url: str) -> str | None:
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
