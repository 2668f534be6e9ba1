from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from asyncjobs.codec import JsonFormatter, MessageDecodeError, constructed, plain_constructor
from asyncjobs.errors import PayloadTooLargeError, SerializationError


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    w: int


def message(*args: object, **kwargs: object) -> TaskiqMessage:
    return TaskiqMessage(
        task_id="id1",
        task_name="m:f",
        labels={"queue_name": "default"},
        args=list(args),
        kwargs=kwargs,
    )


def test_round_trip_keeps_taskiqs_shape() -> None:
    codec = JsonFormatter(1024 * 1024)
    when = datetime(2026, 1, 2, tzinfo=UTC)
    body = codec.dumps(message(1, "a", Point(x=1, y=2), Box(3), when=when)).message
    decoded = codec.loads(body)
    assert decoded.task_id == "id1" and decoded.task_name == "m:f"
    assert decoded.args == [1, "a", {"x": 1, "y": 2}, {"w": 3}]
    assert decoded.kwargs == {"when": "2026-01-02T00:00:00+00:00"}
    # taskiq's own model accepts our bytes, so raw taskiq workers interoperate.
    assert TaskiqMessage.model_validate_json(body).args[0] == 1


def test_oversized_payload_is_refused_before_sending() -> None:
    codec = JsonFormatter(2048)
    with pytest.raises(PayloadTooLargeError, match="MAX_PAYLOAD_BYTES=2048"):
        codec.dumps(message("x" * 5000))


def test_non_json_arguments_are_refused_not_pickled() -> None:
    with pytest.raises(SerializationError, match="JSON-serializable"):
        JsonFormatter(1 << 20).dumps(message(object()))


@pytest.mark.parametrize(
    "body",
    [
        b"\x80\x04\x95pickle",
        b"[1, 2]",
        b'{"task_id": "x"}',
        b'{"task_id": 1, "task_name": "t", "labels": {}, "args": [], "kwargs": {}}',
        b'{"task_id": "1", "task_name": "t", "labels": {}, "args": {}, "kwargs": {}}',
    ],
)
def test_bad_bodies_raise_a_decode_error(body: bytes) -> None:
    with pytest.raises(MessageDecodeError):
        JsonFormatter(1 << 20).loads(body)


def test_a_decoded_message_is_what_pydantic_would_construct() -> None:
    # codec.constructed skips pydantic's model_construct (a worker's dearest decoding
    # step); it must give the very same model, including what pydantic tracks beside it.
    values = {
        "task_id": "abc",
        "task_name": "shop:send",
        "labels": {"timeout": 30, "queue": "default"},
        "labels_types": None,
        "args": [1, "two"],
        "kwargs": {"three": 3.0},
    }
    ours, theirs = constructed(dict(values)), TaskiqMessage.model_construct(**values)
    assert ours == theirs
    assert ours.model_dump() == theirs.model_dump()
    assert ours.model_dump_json() == theirs.model_dump_json()
    assert ours.model_fields_set == theirs.model_fields_set
    assert ours.__pydantic_extra__ == theirs.__pydantic_extra__
    assert ours.__pydantic_private__ == theirs.__pydantic_private__
    ours.args = [2]  # assignment still goes through pydantic, on this message only
    assert ours.args == [2] and theirs.args == [1, "two"]
    assert constructed(dict(values)).model_fields_set is not ours.model_fields_set


def test_a_succeeded_result_is_what_pydantic_would_validate() -> None:
    # The worker builds a success's TaskiqResult with plain_constructor (no validation:
    # taskiq's validator only converts errors); it must equal the validated one.
    values = {
        "is_err": False,
        "log": None,
        "return_value": {"total": 3, "items": [1, 2]},
        "execution_time": 0.01,
        "labels": {"queue": "default"},
        "error": None,
    }
    ours, theirs = plain_constructor(TaskiqResult)(dict(values)), TaskiqResult(**values)
    assert ours == theirs
    assert ours.model_dump(mode="json") == theirs.model_dump(mode="json")
    assert ours.model_fields_set == theirs.model_fields_set
    assert not ours.is_err and ours.error is None and ours.return_value == values["return_value"]
