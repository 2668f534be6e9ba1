"""Feeding frames to aiormq's ``FrameReceiver`` and to ``frames_in.FrameReader`` alike
(``tests/brokers/test_amqp_frames_in.py``), and frames made by hand."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import itertools
import random
import re
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from pamqp import frame as pamqp_frame

from asyncjobs.brokers.rabbitmq import frames_in
from asyncjobs.brokers.rabbitmq.frames_in import FrameReader

FrameReceiver = frames_in.aiormq_receiver  # aiormq's own, installed or not


class Stream(asyncio.StreamReader):
    """A stream that says when its reader waits for more (so each chunk is read, as far
    as it goes, before the next is fed)."""

    def __init__(self) -> None:
        super().__init__()
        self.hungry = asyncio.Event()

    async def _wait_for_data(self, func_name: str) -> None:
        self.hungry.set()
        await super()._wait_for_data(func_name)


def shape(value: Any) -> Any:
    """A value as types and reprs all the way down: equal shapes, equal pamqp objects
    (``True`` is not ``1``, ``Decimal('1.50')`` not ``Decimal('1.5')``)."""
    if isinstance(value, dict):
        return ("dict", [(k, shape(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [shape(v) for v in value])
    if value is None or isinstance(value, SCALARS):
        return (type(value).__name__, repr(value))
    slots = [name for kind in type(value).__mro__ for name in getattr(kind, "__slots__", ())]
    fields = [(name, shape(getattr(value, name, "<unset>"))) for name in slots]
    return (type(value).__name__, fields, shape(getattr(value, "__dict__", {})))


SCALARS = (str, bytes, bytearray, int, float, decimal.Decimal, datetime.datetime)


async def drain(kind: type[Any], chunks: Sequence[bytes], eof_first: bool = False) -> list[Any]:
    """What a receiver of ``kind`` yields for ``chunks``, then how it stops."""
    stream = Stream()
    receiver = kind(stream)
    if eof_first:
        for chunk in chunks:
            stream.feed_data(chunk)
        stream.feed_eof()
    out: list[Any] = []

    async def read() -> None:
        try:
            async for weight, channel, frame in receiver:
                out.append((weight, channel, shape(frame)))
            out.append("end")
        except Exception as exc:  # what it raised, and from what
            cause = type(exc.__cause__).__name__
            out.append((type(exc).__name__, unplaced(str(exc)), unplaced(repr(exc.args)), cause))

    reading = asyncio.ensure_future(read())
    if not eof_first:
        for chunk in [*(c for c in chunks if c), None]:  # an empty one would wake no one
            stream.hungry.clear()
            if chunk is None:
                stream.feed_eof()
            else:
                stream.feed_data(chunk)
            hungry = asyncio.ensure_future(stream.hungry.wait())
            await asyncio.wait({hungry, reading}, return_when=asyncio.FIRST_COMPLETED)
            hungry.cancel()
    await reading
    return out


def unplaced(text: str) -> str:
    """``text`` without object addresses (pamqp's messages have a frame's repr)."""
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def same(chunks: Sequence[bytes], eof_first: bool = False) -> list[Any]:
    """Both receivers' output for ``chunks``; asserts they are equal."""
    theirs = asyncio.run(drain(FrameReceiver, chunks, eof_first))
    ours = asyncio.run(drain(FrameReader, chunks, eof_first))
    assert ours == theirs
    return ours


def chunkings(data: bytes, seed: int, count: int = 4) -> Iterable[list[bytes]]:
    """``data`` whole, byte by byte for short data, and in ``count`` random chunkings."""
    yield [data]
    if len(data) <= 400:
        yield [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(seed)
    for _ in range(count):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 40))))
        yield [data[a:b] for a, b in itertools.pairwise([0, *cuts, len(data)])]


def marshal(*frames: Any, channel: int = 1) -> bytes:
    return b"".join(pamqp_frame.marshal(f, channel) for f in frames)


def raw(kind: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + end


def raw_header(flags: int, properties: bytes, body_size: int = 3) -> bytes:
    return raw(2, 1, struct.pack(">HHQH", 60, 0, body_size, flags) + properties)


def table(entries: bytes) -> bytes:
    return struct.pack(">I", len(entries)) + entries


def entry(key: bytes, kind: bytes, value: bytes) -> bytes:
    return bytes((len(key),)) + key + kind + value
