"""``asyncjobs.brokers.rabbitmq.frames_in.FrameReader`` yields what aiormq's
``FrameReceiver`` yields for the same bytes, however they arrive, and raises what it
raises: frames marshalled by pamqp (and some made by hand: what pamqp does not write,
or malformed), fed to both through an ``asyncio.StreamReader`` in the same chunks."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import random
import struct
from collections.abc import Iterable
from typing import Any

import aio_pika
import pytest
from aiormq.exceptions import AMQPConnectionError
from pamqp import commands as spec
from pamqp import encode
from pamqp.body import ContentBody
from pamqp.header import ContentHeader, ProtocolHeader
from pamqp.heartbeat import Heartbeat

from asyncjobs.brokers.rabbitmq import frames_in
from asyncjobs.brokers.rabbitmq.frames_in import FrameReader, OwnFramesConnection
from tests.support.frame_feed import (
    FrameReceiver,
    chunkings,
    drain,
    entry,
    marshal,
    raw,
    raw_header,
    same,
    shape,
    table,
)

UTC = datetime.UTC
MOMENT = datetime.datetime(2026, 1, 1, 12, 30, tzinfo=UTC)


DELIVERS = [
    spec.Basic.Deliver("ctag", 1, False, "", "q"),
    spec.Basic.Deliver("amq.ctag-xyz", 2**63 - 1, True, "asyncjobs", "asyncjobs.default"),
    spec.Basic.Deliver("", 0, False, "", "ключ ✓"),
    spec.Basic.Deliver("c" * 255, 42, True, "e" * 127, "r" * 255),
]
# pamqp will not write an exchange name outside [-_.:a-zA-Z0-9] (RabbitMQ does)
FOREIGN_DELIVER = raw(
    1,
    9,
    struct.pack(">I", spec.Basic.Deliver.index)
    + encode.short_string("ctäg")
    + encode.long_long_int(7)
    + b"\x01"
    + encode.short_string("ëxchängé ✓")
    + encode.short_string("r" * 200),
)
HEADERS: list[dict[str, Any]] = [
    {},
    {"task_id": "0f8f", "task_name": "shop.tasks:send", "x-asyncjobs-deliveries": 0},
    {"b": -5, "s": -300, "u": 40_000, "I": -70_000, "i": 3_000_000_000, "l": -(2**40)},
    {"big": 2**62, "t": True, "f": False, "none": None, "ratio": 0.5, "ü": "ñ"},
    {"d": decimal.Decimal("1.50"), "d2": decimal.Decimal("-12.345"), "when": MOMENT},
    {"bytes": bytearray(b"\x00\xff"), "empty": "", "nested": {"a": {"b": [1, "x", None]}}},
    {"list": [1, -1, 300, True, [], {}, {"k": [MOMENT, decimal.Decimal(7)]}, bytearray()]},
]
ALL_PROPERTIES: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "headers": HEADERS[1],
    "delivery_mode": 2,
    "priority": 9,
    "correlation_id": "corr",
    "reply_to": "reply.q",
    "expiration": "60000",
    "message_id": "0f8fad5bd9cb469fa16570867728950e",
    "timestamp": MOMENT,
    "message_type": "täsk",
    "user_id": "guest",
    "app_id": "asyncjobs",
    "cluster_id": "c1",
}
NAMES = list(ALL_PROPERTIES)


def properties(names: Iterable[str], **values: Any) -> spec.Basic.Properties:
    props = spec.Basic.Properties()
    for name in names:
        setattr(props, name, values.get(name, ALL_PROPERTIES[name]))
    return props


def delivery(tag: int, headers: dict[str, Any], body: bytes) -> bytes:
    method = spec.Basic.Deliver("ctag", tag, tag % 2 == 0, "ex", f"q.{tag}")
    header = ContentHeader(0, len(body), properties(["headers"], headers=headers))
    return marshal(method, header, ContentBody(body))


@pytest.mark.parametrize("index", range(len(DELIVERS) + 1))
def test_deliver_frames_at_every_split(index: int) -> None:
    data = FOREIGN_DELIVER if index == len(DELIVERS) else marshal(DELIVERS[index])
    for cut in range(len(data) + 1):
        out = same([data[:cut], data[cut:]])
        assert out[0][0] == len(data)


@pytest.mark.parametrize("index", range(len(HEADERS)))
def test_deliveries_with_each_headers_table(index: int) -> None:
    data = delivery(index, HEADERS[index], b'{"args": [1]}')
    for chunks in chunkings(data, index):
        out = same(chunks)
        assert len(out) == 4  # three frames, then the stream's end


def test_content_headers_with_every_property_flag_combination() -> None:
    data = b"".join(
        marshal(ContentHeader(0, 7, properties(n for i, n in enumerate(NAMES) if mask >> i & 1)))
        for mask in range(1 << len(NAMES))
    )
    for chunks in chunkings(data, 1, count=2):
        out = same(chunks)
        assert len(out) == (1 << len(NAMES)) + 1


def test_timestamps_in_seconds_and_in_milliseconds() -> None:
    frames = [
        raw_header(0x0040, struct.pack(">Q", seconds)) for seconds in (0, 1, 2**32 - 1, 2**32)
    ]
    frames.append(raw_header(0x0040, struct.pack(">Q", 1_767_225_600_123)))
    same([b"".join(frames)])


UNWRITTEN = [  # table values pamqp reads but never writes
    entry(b"B", b"B", b"\xff"),
    entry(b"d", b"d", struct.pack(">d", -2.5)),
    entry(b"L", b"L", struct.pack(">q", -7)),
    entry(b"V", b"V", b""),
    entry(b"nul", b"\x00", b""),
    entry(b"bin", b"S", struct.pack(">I", 2) + b"\xff\xfe"),  # not UTF-8: bytes
    entry(b"x", b"x", struct.pack(">I", 3) + b"abc"),
    entry(b"i", b"i", struct.pack(">I", 2**32 - 1)),
    entry(b"I", b"I", struct.pack(">i", -1)),
    entry(b"u", b"u", struct.pack(">H", 65535)),
    entry(b"t2", b"t", b"\x02"),
    entry(b"dup", b"b", b"\x01") + entry(b"dup", b"b", b"\x02"),
    entry(b"arr", b"A", table(b"B\x01" + b"V" + b"F" + table(entry(b"k", b"V", b"")))),
]


def test_table_values_pamqp_reads_but_does_not_write() -> None:
    frames = [raw_header(0x2000, table(e)) for e in UNWRITTEN]
    frames.append(raw_header(0x2000, table(b"".join(UNWRITTEN))))
    for chunks in chunkings(b"".join(frames), 2):
        same(chunks)


def test_bodies_of_one_byte_and_many() -> None:
    big = bytes(range(256)) * 1500  # larger than a read of the stream
    data = marshal(ContentBody(b"x"), ContentBody(big), ContentBody(b"y" * 131_064))
    for chunks in chunkings(data, 3):
        assert len(same(chunks)) == 4


def test_an_empty_body_frame_is_refused_as_by_aiormq() -> None:
    out = same([raw(3, 1, b"")])
    assert out[0][0] == "InvalidFrameError"


def test_other_frames_go_through_pamqp() -> None:
    frames = [
        Heartbeat(),
        spec.Basic.Ack(5, multiple=True),
        spec.Basic.Nack(6, requeue=False),
        spec.Channel.Close(406, "PRECONDITION_FAILED - unknown delivery tag 7", 60, 80),
        spec.Connection.Close(320, "CONNECTION_FORCED - shutdown", 0, 0),
        spec.Connection.Start(server_properties={"product": "RabbitMQ", "caps": {"a": True}}),
        spec.Basic.ConsumeOk("ctag"),
        spec.Queue.DeclareOk("q", 3, 1),
        spec.Basic.Return(312, "NO_ROUTE", "ex", "rk"),
    ]
    data = marshal(*frames[:1], channel=0) + marshal(*frames[1:])
    for chunks in chunkings(data, 4):
        assert len(same(chunks)) == len(frames) + 1


def test_malformed_frames_are_what_pamqp_makes_of_them() -> None:
    deliver = marshal(DELIVERS[0])
    payload = deliver[7:-1]
    cases = [
        raw(1, 1, payload + b"extra"),  # pamqp ignores what is left over
        raw(1, 1, payload[:-1]),  # a routing key cut short
        raw(1, 1, payload[:6]),
        raw(1, 1, payload.replace(b"ctag", b"\xff\xfetg")),  # not UTF-8
        raw(1, 1, struct.pack(">I", 0x00990099)),  # no such method
        raw(2, 1, struct.pack(">HHQH", 60, 0, 1, 0x0001) + b"\x00\x00"),  # a second flag word
        raw(2, 1, struct.pack(">HHQH", 60, 0, 1, 0x0002)),  # a reserved flag
        raw(2, 1, struct.pack(">HHQ", 60, 0, 1)),  # no flags
        raw_header(0x2000, table(entry(b"k", b"S", struct.pack(">I", 99) + b"ab"))),
        raw_header(0x2000, table(entry(b"k", b"?", b""))),  # no such type
        raw_header(0x2000, table(b"\x05ab")),  # a key past the table's end
        raw_header(0x2000, table(b"\x01k")),  # a key without its value
        raw_header(0x2000, struct.pack(">I", 50) + b"\x01kV"),  # longer than the frame
        raw_header(0x2000, table(entry(b"k", b"A", struct.pack(">I", 1) + b"b\x01")) + b"\x00"),
        raw_header(0x8000, b"\x05ab"),  # a short string cut short
        raw_header(0x1000, b""),  # a delivery mode missing
        raw_header(0x0040, struct.pack(">Q", 2**63)),  # a timestamp datetime refuses
        raw(5, 1, b"??"),  # no such frame type
        raw(8, 0, b"x"),  # a heartbeat with a payload
        raw(1, 1, payload, end=b"\x00"),  # not ending in frame-end
        raw(3, 1, b"body", end=b"\x00"),
    ]
    for data in cases:
        for chunks in chunkings(data + marshal(Heartbeat(), channel=0), len(data), count=2):
            same(chunks)


def test_a_protocol_header_is_refused_first_and_read_as_a_frame_later() -> None:
    header = ProtocolHeader().marshal()
    out = same([header])
    assert out[0][0] == "ProtocolSyntaxError"
    later = marshal(Heartbeat(), channel=0) + header + b"\x00" * 100  # a "size" of 1.3 GB
    for chunks in chunkings(later, 7):
        out = same(chunks)
        assert out[-1][0] == "AMQPConnectionError"
        assert out[-1][1].endswith(f"but {0x5000000A} bytes expected")


def test_the_stream_ending_anywhere_in_a_frame_raises_as_in_aiormq() -> None:
    data = delivery(9, HEADERS[1], b"body") + marshal(Heartbeat(), channel=0)
    for cut in range(1, len(data) + 1):
        out = same([data[:cut]])
        assert out[-1][0] == "AMQPConnectionError"  # the stream ended after it waited
        assert same([data[:cut]], eof_first=True)[-1] in ("end", out[-1])


def test_the_stream_ended_before_a_frame_is_asked_for_ends_the_iteration() -> None:
    data = delivery(1, {}, b"b")
    assert same([data], eof_first=True)[-1] == "end"


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(104, "reset"),
        ConnectionRefusedError(),
        BrokenPipeError(),
        OSError(5, "io"),
    ],
)
def test_connection_errors_raise_as_in_aiormq(error: OSError) -> None:
    data = delivery(3, HEADERS[1], b"body")

    async def run(kind: type[Any], cut: int) -> Any:
        stream = asyncio.StreamReader()
        stream.feed_data(data[:cut])
        receiver = kind(stream)
        frames = []
        if cut == len(data):
            frames = [shape((await receiver.get_frame())[2]) for _ in range(3)]
        stream.set_exception(error)
        with pytest.raises(AMQPConnectionError) as caught:
            await receiver.get_frame()
        return frames, type(caught.value), str(caught.value), type(caught.value.__cause__)

    for cut in (0, 5, 20, len(data)):
        assert asyncio.run(run(FrameReader, cut)) == asyncio.run(run(FrameReceiver, cut))


def test_an_error_set_with_frames_still_buffered_is_raised_first_as_in_aiormq() -> None:
    data = delivery(3, {}, b"body")

    async def run(kind: type[Any]) -> Any:
        stream = asyncio.StreamReader()
        stream.feed_data(data)
        receiver = kind(stream)
        await receiver.get_frame()
        stream.set_exception(ConnectionResetError())
        with pytest.raises(AMQPConnectionError) as caught:
            await receiver.get_frame()
        return type(caught.value), str(caught.value)

    assert asyncio.run(run(FrameReader)) == asyncio.run(run(FrameReceiver))


def test_many_deliveries_in_random_chunks() -> None:
    rng = random.Random(5)
    data = b"".join(
        delivery(tag, HEADERS[tag % len(HEADERS)], bytes(rng.randrange(256) for _ in range(tag)))
        for tag in range(1, 300)
    )
    for chunks in chunkings(data, 6, count=6):
        assert len(same(chunks)) == 3 * 299 + 1


def test_install_gives_frame_readers_to_own_transports_only() -> None:
    assert frames_in.supported()
    assert frames_in.install()
    assert frames_in.install()  # idempotent

    async def receivers() -> tuple[Any, Any]:
        ours, theirs = asyncio.StreamReader(), asyncio.StreamReader()
        frames_in._ours.add(ours)
        return frames_in.make_receiver(ours), frames_in.make_receiver(theirs)

    ours, theirs = asyncio.run(receivers())
    assert isinstance(ours, FrameReader)
    assert isinstance(theirs, FrameReceiver)


class NoPamqp:
    """Stands for ``pamqp.frame`` in ``frames_in``: a frame sent to pamqp fails the test."""

    def unmarshal(self, data: bytes) -> Any:
        raise AssertionError(f"went to pamqp: {data[:40]!r}")


def test_well_formed_hot_frames_are_decoded_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparisons above are of this module's decoding, not pamqp's twice."""
    flag_combinations = (
        marshal(ContentHeader(0, 7, properties(n for i, n in enumerate(NAMES) if mask >> i & 1)))
        for mask in range(0, 1 << len(NAMES), 7)
    )
    data = b"".join(
        [
            *(marshal(d) for d in DELIVERS),
            FOREIGN_DELIVER,
            *(delivery(i, headers, b"b" * i) for i, headers in enumerate(HEADERS, 1)),
            *flag_combinations,
            raw_header(0x2000, table(b"".join(UNWRITTEN))),
            marshal(ContentBody(bytes(300_000))),
        ]
    )
    expected = same([data])
    monkeypatch.setattr(frames_in, "pamqp_frame", NoPamqp())
    assert asyncio.run(drain(FrameReader, [data])) == expected


@pytest.mark.rabbitmq
async def test_own_connections_are_read_by_frame_readers_others_by_aiormqs(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[FrameReader] = []
    init = FrameReader.__init__

    def recorded(self: FrameReader, reader: asyncio.StreamReader) -> None:
        made.append(self)
        init(self, reader)

    monkeypatch.setattr(FrameReader, "__init__", recorded)
    own = await aio_pika.connect_robust(amqp_url, connection_class=OwnFramesConnection)
    plain = await aio_pika.connect_robust(amqp_url)
    try:
        assert len(made) == 1
        channel = await own.channel()
        queue = await channel.declare_queue(exclusive=True)
        body, headers = bytes(range(256)) * 1200, {"k": [1, {"n": None}], "ü": "✓"}
        message = aio_pika.Message(body, headers=headers, message_id="m")
        await channel.default_exchange.publish(message, routing_key=queue.name)
        received = await queue.get(timeout=10)
        assert (received.body, received.headers, received.message_id) == (body, headers, "m")
    finally:
        await own.close()
        await plain.close()
