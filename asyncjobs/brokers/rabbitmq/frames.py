"""The AMQP frames of one publish, byte for byte those aio-pika and pamqp would write.

aio-pika builds a ``Message``, then a ``Basic.Properties`` and pamqp encodes it
property by property through generic, type-dispatched encoders: ~40 µs of a send that
RabbitMQ answers in a few. A publish of ours always has the same shape (headers,
persistent, priority 0, message id, timestamp), so its content header is packed here directly;
header values other than ``str`` and plain ``int``, or keys pamqp would truncate, go
through pamqp's own table encoder. The ``Basic.Publish`` method frame of an exchange
and routing key never changes: pamqp encodes it once per channel
(``tests/brokers/test_amqp_frames.py`` compares every piece with pamqp's).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from pamqp import commands as spec
from pamqp import encode
from pamqp import frame as pamqp_frame

FRAME_HEADER, FRAME_BODY = 2, 3
FRAME_END = b"\xce"
BASIC = 60  # the class of Basic.Publish and of its content header
PERSISTENT = 2
# Property flags (AMQP 0-9-1, Basic): headers, delivery-mode, priority (0, as aio-pika
# sends it), message-id, timestamp.
FLAGS = 0x2000 | 0x1000 | 0x0800 | 0x0080 | 0x0040
MAX_KEY_BYTES = 128  # pamqp truncates longer field names

_frame_head = struct.Struct(">BHI").pack
_header_head = struct.Struct(">HHQH").pack  # class, weight, body size, property flags
_u32 = struct.Struct(">I").pack
_u64 = struct.Struct(">Q").pack


def publish_method(channel: int, exchange: str, routing_key: str) -> bytes:
    """The ``Basic.Publish`` frame (mandatory: an unroutable message comes back)."""
    method = spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True)
    return pamqp_frame.marshal(method, channel)


def content_frames(
    channel: int,
    body: bytes,
    headers: Mapping[str, Any],
    message_id: str,
    timestamp_s: int,
    max_body_frame: int,
) -> bytes:
    """The content header frame (persistent, ``headers``, ``message_id``, ``timestamp``
    in whole seconds) and the body frames, each body frame at most ``max_body_frame``."""
    mid = message_id.encode()
    payload = b"".join(
        (
            _header_head(BASIC, 0, len(body), FLAGS),
            field_table(headers),
            b"\x02\x00",  # delivery mode: persistent; priority 0
            bytes((len(mid),)),
            mid,
            _u64(timestamp_s),
        )
    )
    parts = [_frame_head(FRAME_HEADER, channel, len(payload)), payload, FRAME_END]
    for start in range(0, len(body), max_body_frame):
        chunk = body[start : start + max_body_frame]
        parts += (_frame_head(FRAME_BODY, channel, len(chunk)), chunk, FRAME_END)
    return b"".join(parts)


def field_table(headers: Mapping[str, Any]) -> bytes:
    """pamqp's ``field_table``: keys sorted, ``str`` as a long string, ``int`` as its
    smallest integer type; anything else by pamqp itself."""
    data: list[bytes] = []
    for key, value in sorted(headers.items()):
        name = key.encode()
        if len(name) > MAX_KEY_BYTES:
            return encode.field_table(dict(headers))
        data += (bytes((len(name),)), name)
        if type(value) is str:
            text = value.encode()
            data += (b"S", _u32(len(text)), text)
        elif type(value) is int:
            data.append(encode.table_integer(value))
        else:
            data.append(encode.encode_table_value(value))
    output = b"".join(data)
    return _u32(len(output)) + output
