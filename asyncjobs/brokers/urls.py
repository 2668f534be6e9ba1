"""Broker URLs: how to print one without secrets.

Every URL shown anywhere (logs, CLI output, errors, spans) goes through ``redact_url``;
every library error message shown next to one goes through ``scrub``. redis-py also
reads credentials from the query string (``?password=...``, ``?username=...``), so both
mask those too, not just the ``user:password@`` part.

Which transport a URL selects, and whether its library reads it as written, is
``asyncjobs.brokers.transport`` (each transport checks its own URLs).
"""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

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
