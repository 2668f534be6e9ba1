"""The frames RabbitMQ sends asyncjobs' connections, read as aiormq's ``FrameReceiver``
would, at a fraction of its cost.

aiormq reads each frame under an ``asyncio.Lock`` into a ``BytesIO`` with three awaited
``readexactly`` calls, then decodes it through pamqp's generic, type-dispatched
decoders: about 38 µs of the ~127 µs a worker spent per delivery (a delivery is three
frames: ``Basic.Deliver``, its content header, its body). ``FrameReader`` has one reader
(aiormq's connection reader task, and ``connect`` before it), so it needs no lock: it
takes what the socket has in one read and cuts frames out of it, and decodes those three
frame kinds directly with ``struct``. Every other frame, and any of the three that is
anything but well-formed and exactly as long as its frame (which pamqp may still decode
its own way, or refuse), goes to ``pamqp.frame.unmarshal`` unchanged. It yields what
aiormq's yields, ``(weight, channel, frame)`` with equal pamqp objects, and raises what
it raises (``tests/brokers/test_amqp_frames_in.py`` compares the two on the same bytes).

aiormq creates its receiver by the module-global name ``aiormq.connection.FrameReceiver``
in ``Connection.connect``; there is no hook for it. ``install()`` (at each of asyncjobs'
RabbitMQ connections) replaces that name, process-wide, by ``make_receiver``, which gives
a ``FrameReader`` only to a stream whose transport asyncjobs' ``OwnTransport`` opened
(``transport_factory=``, aiormq's own TCP/TLS factory underneath) and aiormq's receiver
to every other connection. With an aiormq or pamqp lacking what this relies on, nothing
is replaced and asyncjobs' connections keep aiormq's receiver.
"""

from __future__ import annotations

import asyncio
import inspect
import struct
import weakref
from typing import Any

import aiormq.connection as aiormq_connection
from aio_pika import RobustConnection
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader
from yarl import URL

from asyncjobs.brokers.rabbitmq.frames_decode import content_header, deliver, reads_as_pamqp

Received = tuple[int, int, Any]  # weight (bytes), channel, pamqp frame

CHUNK = 1 << 18  # bytes asked of the stream at once: all it has, in practice
FRAME_METHOD, FRAME_HEADER, FRAME_BODY = 1, 2, 3
FRAME_END = 0xCE
DELIVER = spec.Basic.Deliver.index

_head = struct.Struct(">BHI").unpack_from  # type, channel, payload size
_u32 = struct.Struct(">I").unpack_from
_new = object.__new__


class FrameReader:
    """aiormq's ``FrameReceiver`` for one reader task (see the module docstring)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.started = False  # as aiormq's: a protocol header is refused until a frame came
        self._buf = b""
        self._pos = 0  # where the next frame starts in _buf

    def __aiter__(self) -> FrameReader:
        return self

    async def get_frame(self) -> Received:
        buf, pos = self._buf, self._pos
        if len(buf) - pos >= 7 and self.reader.exception() is None:
            kind, channel, size = _head(buf, pos)
            end = pos + 8 + size
            if end <= len(buf) and self.started:
                self._pos = end
                return _frame(kind, channel, buf, pos, end)
        return await self._read_frame()

    __anext__ = get_frame

    async def _read_frame(self) -> Received:
        """The next frame, reading the stream for it; aiormq's checks and errors."""
        if self._pos == len(self._buf) and self.reader.at_eof():
            del self.reader  # as aiormq's: the receiver is done
            raise StopAsyncIteration
        size = 0
        try:
            await self._fill(7)
            buf, pos = self._buf, self._pos
            if not self.started and buf.startswith(b"AMQP", pos):
                raise ProtocolSyntaxError("Unexpected AMQP protocol header")
            self.started = True
            kind, _, size = _head(buf, pos)
            await self._fill(8 + size)
        except asyncio.IncompleteReadError as exc:
            read, expected = _as_aiormq_read(len(exc.partial), size)
            raise AMQPConnectionError(
                "Server connection unexpectedly closed. "
                f"Read {read} bytes but {expected} bytes expected",
            ) from exc
        except OSError as exc:  # ConnectionError's kinds included
            raise AMQPConnectionError(f"{_os_error_text(exc)}: {exc!r}") from exc
        buf, pos = self._buf, self._pos
        end = pos + 8 + size
        self._pos = end
        return _frame(kind, _head(buf, pos)[1], buf, pos, end)

    async def _fill(self, need: int) -> None:
        """Have ``need`` bytes of the frame at ``_pos`` in ``_buf``; at the stream's end,
        ``IncompleteReadError`` with all of the frame there was (``partial``)."""
        have = len(self._buf) - self._pos
        if have >= need:
            if self.reader.exception() is not None:  # aiormq's read would raise it
                await self.reader.read(0)
            return
        if have >= 7:  # the rest of a frame whose size is known: exactly that
            try:
                more = await self.reader.readexactly(need - have)
            except asyncio.IncompleteReadError as exc:
                raise asyncio.IncompleteReadError(
                    self._buf[self._pos :] + exc.partial, need
                ) from None
            self._buf = self._buf[self._pos :] + more
            self._pos = 0
            return
        while have < need:
            more = await self.reader.read(CHUNK)
            if not more:
                raise asyncio.IncompleteReadError(self._buf[self._pos :], need)
            self._buf = self._buf[self._pos :] + more
            self._pos = 0
            have = len(self._buf)


def _frame(kind: int, channel: int, buf: bytes, pos: int, end: int) -> Received:
    """What pamqp makes of the frame in ``buf[pos:end]``: the three hot kinds decoded
    here, anything else (or anything unusual about them) by pamqp."""
    try:
        frame = _decoded(kind, buf, pos, end)
    except Exception:  # Unusual or not: pamqp says what the frame is
        frame = None
    if frame is not None:
        return end - pos, channel, frame
    try:
        return pamqp_frame.unmarshal(buf[pos:end])
    except PAMQPException as exc:  # as aiormq's
        raise InvalidFrameError(str(exc)) from exc


def _decoded(kind: int, buf: bytes, pos: int, end: int) -> Any:
    """A body, ``Basic.Deliver`` or content header frame, or None: not one of those."""
    if buf[end - 1] != FRAME_END or end - pos <= 8:
        return None
    if kind == FRAME_BODY:
        body = _new(ContentBody)
        body.value = buf[pos + 7 : end - 1]
        return body
    if kind == FRAME_METHOD and end - pos >= 12 and _u32(buf, pos + 7)[0] == DELIVER:
        return deliver(buf, pos + 11, end - 1)
    if kind == FRAME_HEADER:
        return content_header(buf, pos + 7, end - 1)
    return None


def _as_aiormq_read(have: int, size: int) -> tuple[int, int]:
    """aiormq reads a frame in three reads (1 byte, 6, payload + end): at the stream's end
    with ``have`` bytes of a frame, which one failed having read how much of how much."""
    if have < 1:
        return 0, 1
    if have < 7:
        return have - 1, 6
    return have - 7, size + 1


def _os_error_text(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "Server connection refused"
    if isinstance(exc, ConnectionResetError):
        return "Server connection reset"
    if isinstance(exc, ConnectionError):
        return "Server connection error"
    return "Server communication error"


# -- installation ----------------------------------------------------------------------
_ours: weakref.WeakSet[asyncio.StreamReader] = weakref.WeakSet()
aiormq_receiver: Any = getattr(aiormq_connection, "FrameReceiver", None)  # aiormq's own


class OwnTransport(aiormq_connection.TransportFactory):
    """aiormq's TCP or TLS transport (by the URL's scheme, as aiormq picks it), its
    stream marked to be read by a ``FrameReader``."""

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        tls = url.scheme == "amqps"
        inner = aiormq_connection.TLSTransportFactory() if tls else _tcp()
        reader, writer = await inner.create(url, **kwargs)
        _ours.add(reader)
        return reader, writer


def _tcp() -> aiormq_connection.TransportFactory:
    return aiormq_connection.TCPTransportFactory()


def make_receiver(reader: asyncio.StreamReader) -> Any:
    """What ``aiormq.connection.FrameReceiver(reader)`` gives once installed."""
    if reader in _ours:
        return FrameReader(reader)
    return aiormq_receiver(reader)


def supported() -> bool:
    """Whether aiormq creates its receiver as this expects and pamqp's frames are the
    ones ``frames_decode`` builds."""
    connect = getattr(aiormq_connection.Connection, "connect", None)
    code = getattr(inspect.unwrap(connect), "__code__", None) if callable(connect) else None
    try:
        takes_factory = (
            "transport_factory"
            in inspect.signature(aiormq_connection.Connection.__init__).parameters
        )
    except (TypeError, ValueError):
        return False
    return (
        inspect.isclass(aiormq_receiver)
        and code is not None
        and "FrameReceiver" in code.co_names
        and takes_factory
        and all(
            hasattr(aiormq_connection, name)
            for name in ("TransportFactory", "TCPTransportFactory", "TLSTransportFactory")
        )
        and _pamqp_as_expected()
    )


def _pamqp_as_expected() -> bool:
    properties = spec.Basic.Properties
    return (
        list(spec.Basic.Deliver.__slots__)
        == ["consumer_tag", "delivery_tag", "redelivered", "exchange", "routing_key"]
        and list(properties.__slots__) == list(properties.flags)
        and [properties.flags[name] for name in properties.__slots__]
        == [1 << bit for bit in range(15, 1, -1)]
        and hasattr(ContentHeader(), "class_id")
        and hasattr(ContentBody(b""), "value")
        and reads_as_pamqp()
    )


def install() -> bool:
    """Let ``OwnTransport``'s connections be read by ``FrameReader`` (idempotent);
    False, and nothing changed, with an aiormq or pamqp this does not fit."""
    if getattr(aiormq_connection, "FrameReceiver", None) is make_receiver:
        return True
    if not supported():
        return False
    setattr(aiormq_connection, "FrameReceiver", make_receiver)  # noqa: B010 - a type
    return True


class OwnFramesConnection(RobustConnection):
    """A robust connection whose every underlying aiormq connection (the first, and each
    one a reconnect opens) is read by a ``FrameReader`` (aiormq's receiver if
    ``install()`` cannot)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if install():  # aio-pika hands self.kwargs to aiormq.connect at each connect
            self.kwargs["transport_factory"] = OwnTransport()
