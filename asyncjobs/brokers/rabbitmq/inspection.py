"""Queue figures for the RabbitMQ transport: over AMQP, or from the management API.

Per queue: the quorum queue ``{prefix}.{queue}``, its dead letters ``{prefix}.{queue}.dead``
and its delay queues ``{prefix}.{queue}.delay.{ms}`` (``asyncjobs.brokers.rabbitmq.delay``).

**Over AMQP** (no ``AMQP_MANAGEMENT_URL``): a passive ``queue.declare`` answers with the
*ready* messages and the consumer count, nothing more. ``in_flight`` (unacknowledged)
and ``scheduled`` (the delay queues, whose names AMQP cannot list) are unknown (None),
and ``backlog`` is the ready count alone: what KEDA's ``rabbitmq`` trigger reads with
``protocol: amqp``.

**From the management API** (``AMQP_MANAGEMENT_URL``, ``http(s)://user:pass@host:15672/``):
one listing of the vhost's queues under the prefix gives ready, unacknowledged and
consumers per queue, and finds the delay queues. ``backlog`` is ready + unacknowledged,
the ``messages`` field KEDA's ``rabbitmq`` trigger reads with ``mode: QueueLength`` and
``protocol: http`` (unless ``excludeUnacknowledged``). These figures are RabbitMQ's
statistics, refreshed every ``collect_statistics_interval`` (5 s by default), so they
lag that much behind, for KEDA too. The user needs the ``monitoring`` tag (or
``management`` with access to the vhost).

Neither tells the age of the oldest ready message of a quorum queue (reading one would
count as a delivery), so ``oldest_waiting_age_s`` is always None on RabbitMQ.
"""

from __future__ import annotations

import asyncio
import base64
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import orjson

from asyncjobs.brokers.errors import BrokerConnectionError, BrokerError
from asyncjobs.brokers.failures import translating
from asyncjobs.brokers.inspection import QueueStats
from asyncjobs.brokers.rabbitmq.delay import delay_queue_name
from asyncjobs.brokers.rabbitmq.names import dead_letter_queue_name, queue_name
from asyncjobs.brokers.urls import redact_url

if TYPE_CHECKING:
    from asyncjobs.brokers.rabbitmq.broker import AmqpBroker

HTTP_TIMEOUT_S = 10.0
PAGE_SIZE = 500  # the management API's maximum
COLUMNS = "name,messages_ready,messages_unacknowledged,consumers"

AGE_NOTE = "RabbitMQ does not tell the age of the oldest message of a quorum queue"
AMQP_NOTE = (
    "in_flight and scheduled are unknown (?) without AMQP_MANAGEMENT_URL: over AMQP "
    "RabbitMQ reports ready messages and consumers only, so backlog counts ready messages"
)
STATS_NOTE = "management API statistics, refreshed every 5 s by default"


async def inspect_amqp(
    broker: AmqpBroker, queues: Sequence[str], *, management_url: str | None = None
) -> list[QueueStats]:
    if management_url:
        return await _from_management(broker, queues, management_url)
    return await _over_amqp(broker, queues)


# -- over AMQP -----------------------------------------------------------------------
@translating("reading queue figures from RabbitMQ")  # e.g. no access to the vhost
async def _over_amqp(broker: AmqpBroker, queues: Sequence[str]) -> list[QueueStats]:
    await broker.ensure_started()
    prefix = broker.options.key_prefix
    found: list[QueueStats] = []
    for queue in queues:
        ready, consumers = await broker.declared_counts(queue_name(prefix, queue))
        dead, _ = await broker.declared_counts(dead_letter_queue_name(prefix, queue))
        found.append(
            QueueStats(
                queue=queue,
                transport="rabbitmq",
                waiting=ready,
                in_flight=None,
                scheduled=None,
                dead_letters=dead,
                oldest_waiting_age_s=None,
                consumers=consumers,
                backlog=ready,
                notes=(AMQP_NOTE, AGE_NOTE),
            )
        )
    return found


# -- from the management API ---------------------------------------------------------
async def _from_management(
    broker: AmqpBroker, queues: Sequence[str], management_url: str
) -> list[QueueStats]:
    prefix = broker.options.key_prefix
    listed = await list_queues(management_url, vhost_of(broker.url), prefix + ".")
    found: list[QueueStats] = []
    for queue in queues:
        main = listed.get(queue_name(prefix, queue), {})
        dead = listed.get(dead_letter_queue_name(prefix, queue), {})
        # Its delay queues: the name of a 0 ms one, with any number of ms instead.
        delays = re.compile(re.escape(delay_queue_name(prefix, queue, 0)[:-1]) + r"\d+")
        ready, unacked = _count(main, "messages_ready"), _count(main, "messages_unacknowledged")
        found.append(
            QueueStats(
                queue=queue,
                transport="rabbitmq",
                waiting=ready,
                in_flight=unacked,
                scheduled=sum(
                    _messages(info) for name, info in listed.items() if delays.fullmatch(name)
                ),
                dead_letters=_messages(dead),
                oldest_waiting_age_s=None,
                consumers=_count(main, "consumers"),
                backlog=ready + unacked,
                notes=(STATS_NOTE, AGE_NOTE),
            )
        )
    return found


def vhost_of(amqp_url: str) -> str:
    """The vhost an AMQP URL names: its path without the slash, "/" when empty."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


async def list_queues(
    management_url: str, vhost: str, name_prefix: str
) -> dict[str, dict[str, Any]]:
    """Every queue of ``vhost`` whose name starts with ``name_prefix``, by name."""
    parts = urlsplit(management_url)
    # Credentials go in a header (urllib does not send a URL's user info), never in a URL.
    auth = None
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(token.encode()).decode()
    netloc = parts.netloc.rsplit("@", 1)[-1]
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    pattern = "^" + re.escape(name_prefix)
    listed: dict[str, dict[str, Any]] = {}
    page, pages = 1, 1
    while page <= pages:
        query = urlencode(
            {
                "page": page,
                "page_size": PAGE_SIZE,
                "name": pattern,
                "use_regex": "true",
                "columns": COLUMNS,
            }
        )
        url = f"{base}/api/queues/{quote(vhost, safe='')}?{query}"
        reply = await asyncio.to_thread(_get_json, url, auth, management_url)
        if not isinstance(reply, dict) or not isinstance(reply.get("items"), list):
            raise BrokerError(
                f"RabbitMQ's management API at {redact_url(management_url)} answered "
                "an unexpected document; is AMQP_MANAGEMENT_URL the management port (15672)?"
            )
        for item in reply["items"]:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                listed[item["name"]] = item
        pages = int(reply.get("page_count") or 1)
        page += 1
    return listed


def _get_json(url: str, auth: str | None, management_url: str) -> Any:
    where = redact_url(management_url)
    headers = {"Accept": "application/json"}
    if auth:
        headers["Authorization"] = auth
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s), validated
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        hint = {
            401: "check the user and password in AMQP_MANAGEMENT_URL",
            403: "the user needs the 'monitoring' tag (or 'management' and access to the vhost)",
            404: "no such vhost (it comes from BROKER_URL's path)",
        }.get(exc.code, "")
        raise BrokerError(
            f"RabbitMQ's management API at {where} answered {exc.code} {exc.reason}"
            + (f": {hint}" if hint else "")
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BrokerConnectionError(
            f"cannot reach RabbitMQ's management API at {where} ({reason}); check "
            "AMQP_MANAGEMENT_URL and that the rabbitmq_management plugin is enabled"
        ) from None
    except orjson.JSONDecodeError:
        raise BrokerError(
            f"RabbitMQ's management API at {where} did not answer JSON; is "
            "AMQP_MANAGEMENT_URL the management port (15672)?"
        ) from None


def _count(info: dict[str, Any], key: str) -> int:
    # A queue declared a moment ago has no statistics yet: nothing counted so far.
    value = info.get(key)
    return value if isinstance(value, int) and value > 0 else 0


def _messages(info: dict[str, Any]) -> int:
    return _count(info, "messages_ready") + _count(info, "messages_unacknowledged")
