"""``Basic.Deliver`` and content header payloads decoded directly, into the pamqp objects
pamqp's decoders build (``frames_in`` uses them).

Each decoder reads ``buf[start:end]``, one frame's payload, and raises (``Unusual`` or
whatever ``struct`` or ``bytes.decode`` raise) on anything it is not sure to decode
exactly as pamqp would: a value running past its table, array or payload, bytes left
over, a second property flag word, an unknown field type. The caller then hands the
frame to pamqp, which decodes it its own way or refuses it, as for aiormq. pamqp's
quirks are kept: ``i`` is an unsigned 32-bit integer and ``I`` a signed one, a long
string that is not UTF-8 is ``bytes``, a timestamp past 2106 is taken as milliseconds.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pamqp import commands as spec
from pamqp import decode
from pamqp.header import ContentHeader

Value = tuple[Any, int]  # a decoded value, and where the next one starts
Reader = Callable[[bytes, int, int], Value]  # (buf, at, end)
Plan = tuple[tuple[int, Reader], ...]


class Unusual(Exception):
    """Not decoded here: pamqp decides."""


_new = object.__new__
_u32 = struct.Struct(">I").unpack_from
_u64 = struct.Struct(">Q").unpack_from
_i64 = struct.Struct(">q").unpack_from
_header = struct.Struct(">HHQH").unpack_from  # class, weight, body size, property flags
_from_ts = datetime.fromtimestamp
_Deliver = spec.Basic.Deliver
_Properties = spec.Basic.Properties


def deliver(buf: bytes, start: int, end: int) -> spec.Basic.Deliver:
    """A ``Basic.Deliver`` from its arguments (after the method id)."""
    consumer_tag, at = _shortstr(buf, start, end)
    if at + 9 > end:
        raise Unusual
    delivery_tag = _i64(buf, at)[0]
    redelivered = buf[at + 8] & 1 != 0
    exchange, at = _shortstr(buf, at + 9, end)
    routing_key, at = _shortstr(buf, at, end)
    if at != end:
        raise Unusual
    frame = _new(_Deliver)
    frame.consumer_tag = consumer_tag
    frame.delivery_tag = delivery_tag
    frame.redelivered = redelivered
    frame.exchange = exchange
    frame.routing_key = routing_key
    return frame


def content_header(buf: bytes, start: int, end: int) -> ContentHeader:
    """A content header with its ``Basic.Properties``."""
    if start + 14 > end:
        raise Unusual
    class_id, weight, body_size, flags = _header(buf, start)
    at = start + 14
    values = list(_DEFAULTS)
    for index, read in _PLANS.get(flags) or _plan(flags):
        values[index], at = read(buf, at, end)
    if at != end:
        raise Unusual
    properties = _new(_Properties)
    (
        properties.content_type,
        properties.content_encoding,
        properties.headers,
        properties.delivery_mode,
        properties.priority,
        properties.correlation_id,
        properties.reply_to,
        properties.expiration,
        properties.message_id,
        properties.timestamp,
        properties.message_type,
        properties.user_id,
        properties.app_id,
        properties.cluster_id,
    ) = values
    header = _new(ContentHeader)
    header.class_id = class_id
    header.weight = weight
    header.body_size = body_size
    header.properties = properties
    return header


def _plan(flags: int) -> Plan:
    """Which properties ``flags`` says are there, in order: (index, reader)."""
    if flags & 3:  # another flag word follows, or a reserved bit: pamqp's business
        raise Unusual
    plan = tuple(
        (index, read) for index, read in enumerate(_PROPERTY_READERS) if flags & (0x8000 >> index)
    )
    _PLANS[flags] = plan
    return plan


def _shortstr(buf: bytes, at: int, end: int) -> Value:
    if at >= end:
        raise Unusual
    stop = at + 1 + buf[at]
    if stop > end:
        raise Unusual
    return buf[at + 1 : stop].decode("utf-8"), stop


def _timestamp(buf: bytes, at: int, end: int) -> Value:
    if at + 8 > end:
        raise Unusual
    seconds: float = _u64(buf, at)[0]
    if seconds > 0xFFFFFFFF:  # pamqp: likely milliseconds
        seconds /= 1000.0
    return _from_ts(seconds, tz=UTC), at + 8


def _sized(buf: bytes, at: int, end: int) -> int:
    """Where a value with a 32-bit length prefix at ``at`` ends, if within ``end``."""
    if at + 4 > end:
        raise Unusual
    stop: int = at + 4 + _u32(buf, at)[0]
    if stop > end:
        raise Unusual
    return stop


def _table(buf: bytes, at: int, end: int) -> Value:
    """A field table, entirely within ``end``."""
    stop = _sized(buf, at, end)
    at += 4
    table: dict[str, Any] = {}
    while at < stop:
        key_end = at + 1 + buf[at]
        if key_end >= stop:  # no room for the value's type
            raise Unusual
        key = buf[at + 1 : key_end].decode("utf-8")
        table[key], at = _VALUES[buf[key_end]](buf, key_end + 1, stop)
    if at != stop:
        raise Unusual
    return table, stop


def _array(buf: bytes, at: int, end: int) -> Value:
    """A field array, entirely within ``end``."""
    stop = _sized(buf, at, end)
    at += 4
    items: list[Any] = []
    while at < stop:
        item, at = _VALUES[buf[at]](buf, at + 1, stop)
        items.append(item)
    if at != stop:
        raise Unusual
    return items, stop


def _longstr(buf: bytes, at: int, end: int) -> Value:
    """A long string: text if it is UTF-8, else bytes."""
    stop = _sized(buf, at, end)
    raw = buf[at + 4 : stop]
    try:
        return raw.decode("utf-8"), stop
    except UnicodeDecodeError:
        return raw, stop


def _bytearray(buf: bytes, at: int, end: int) -> Value:
    stop = _sized(buf, at, end)
    return bytearray(buf[at + 4 : stop]), stop


def _boolean(buf: bytes, at: int, end: int) -> Value:
    if at >= end:
        raise Unusual
    return buf[at] != 0, at + 1


def _decimal(buf: bytes, at: int, end: int) -> Value:
    if at + 5 > end:
        raise Unusual
    return decode.decimal(buf[at : at + 5])[1], at + 5  # pamqp's own arithmetic


def _void(buf: bytes, at: int, end: int) -> Value:
    return None, at


def _fixed(fmt: str) -> Reader:
    packer = struct.Struct(fmt)
    unpack, width = packer.unpack_from, packer.size

    def read(buf: bytes, at: int, end: int) -> Value:
        if at + width > end:
            raise Unusual
        return unpack(buf, at)[0], at + width

    return read


_octet = _fixed(">B")
# Values of tables and arrays by their type byte, as pamqp's TABLE_MAPPING reads them.
_VALUES: dict[int, Reader] = {
    ord("S"): _longstr,
    ord("t"): _boolean,
    ord("b"): _fixed(">b"),
    ord("B"): _octet,
    ord("s"): _fixed(">h"),
    ord("u"): _fixed(">H"),
    ord("I"): _fixed(">l"),
    ord("i"): _fixed(">L"),
    ord("l"): _fixed(">q"),
    ord("L"): _fixed(">q"),
    ord("f"): _fixed(">f"),
    ord("d"): _fixed(">d"),
    ord("D"): _decimal,
    ord("A"): _array,
    ord("T"): _timestamp,
    ord("F"): _table,
    ord("V"): _void,
    0: _void,  # as pamqp reads it
    ord("x"): _bytearray,
}
# Basic.Properties in flag order (pamqp's __slots__ order, checked by frames_in).
_PROPERTY_READERS: tuple[Reader, ...] = (
    _shortstr,  # content_type
    _shortstr,  # content_encoding
    _table,  # headers
    _octet,  # delivery_mode
    _octet,  # priority
    _shortstr,  # correlation_id
    _shortstr,  # reply_to
    _shortstr,  # expiration
    _shortstr,  # message_id
    _timestamp,  # timestamp
    _shortstr,  # message_type
    _shortstr,  # user_id
    _shortstr,  # app_id
    _shortstr,  # cluster_id
)
_DEFAULTS: tuple[Any, ...] = (None,) * 13 + ("",)  # as Basic.Properties() has them
_PLANS: dict[int, Plan] = {}  # property flags -> their plan


def reads_as_pamqp() -> bool:
    """Whether pamqp's table value types are the ones decoded here (each as this pamqp
    decodes it: ``tests/brokers/test_amqp_frames_in.py``)."""
    return set(decode.TABLE_MAPPING) == {bytes((kind,)) for kind in _VALUES}
