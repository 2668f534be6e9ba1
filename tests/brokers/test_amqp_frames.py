"""The frames ``asyncjobs.brokers.rabbitmq.frames`` packs are byte for byte those aio-pika
and pamqp write for the same publish (``Message`` -> ``Basic.Properties`` -> pamqp)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from aio_pika import DeliveryMode, Message
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from asyncjobs.brokers.rabbitmq.frames import content_frames, field_table, publish_method

TIMESTAMP = 1_767_225_600  # 2026-01-01, whole seconds
ID = "0f8fad5bd9cb469fa16570867728950e"


def by_pamqp(channel: int, body: bytes, headers: dict[str, Any], max_body: int) -> bytes:
    message = Message(
        body,
        headers=headers,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=ID,
        timestamp=float(TIMESTAMP),
    )
    frames: list[Any] = [ContentHeader(0, len(body), message.properties)]
    frames += [ContentBody(body[i : i + max_body]) for i in range(0, len(body), max_body)]
    return b"".join(pamqp_frame.marshal(f, channel) for f in frames)


HEADERS: list[dict[str, Any]] = [
    {"task_id": "0f8f", "task_name": "shop.tasks:send", "x-asyncjobs-deliveries": 0},
    {"task_id": "", "task_name": "ünïcødé ✓", "x-asyncjobs-deliveries": 999_999_999},
    {"x-asyncjobs-suspect": 1, "reason": "max_deliveries", "b": -129, "c": 40_000},
    {"i": 70_000, "j": -40_000, "k": 2**31, "l": -(2**40), "m": 127, "n": -128, "o": 32_768},
    {"flag": True, "ratio": 0.5, "none": None, "nested": {"a": 1}, "list": [1, "x"]},
    {"k" * 200: "a key pamqp truncates", "short": "s"},
    {},
]


@pytest.mark.parametrize("headers", HEADERS)
@pytest.mark.parametrize(("body", "max_body"), [(b'{"args":[1]}', 131_064), (b"x" * 25, 10)])
def test_content_frames_are_pamqps(headers: dict[str, Any], body: bytes, max_body: int) -> None:
    ours = content_frames(7, body, headers, ID, TIMESTAMP, max_body)
    assert ours == by_pamqp(7, body, headers, max_body)


def test_an_empty_body_has_no_body_frame() -> None:
    ours = content_frames(1, b"", {"a": "b"}, ID, TIMESTAMP, 100)
    assert ours == by_pamqp(1, b"", {"a": "b"}, 100)


def test_a_timestamp_is_read_back_in_whole_seconds() -> None:
    ours = content_frames(1, b"x", {}, "id", TIMESTAMP, 100)
    _, _, header = pamqp_frame.unmarshal(ours)
    assert isinstance(header, ContentHeader)
    moment = header.properties.timestamp
    assert moment is not None
    assert moment.replace(tzinfo=datetime.UTC).timestamp() == TIMESTAMP
    assert header.properties.delivery_mode == 2


def test_field_table_rejects_what_pamqp_rejects() -> None:
    with pytest.raises(TypeError):
        field_table({"a": object()})


def test_publish_method_is_pamqps() -> None:
    method = spec.Basic.Publish(exchange="ex", routing_key="q.default", mandatory=True)
    assert publish_method(3, "ex", "q.default") == pamqp_frame.marshal(method, 3)
