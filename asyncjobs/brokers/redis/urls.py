"""Redis URLs as redis-py reads them: what it would refuse, or read otherwise than written."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit


def url_problem(url: str) -> str | None:
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
