"""The wire format: taskiq's message JSON, encoded with orjson.

The shape is taskiq's own (``TaskiqMessage``), so raw taskiq producers and workers
interoperate. Encoding refuses what is not JSON (nothing is pickled) and anything over
``MAX_PAYLOAD_BYTES`` before it is sent; decoding checks the shape once and builds the
message without a second validation pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from taskiq.abc.formatter import TaskiqFormatter
from taskiq.message import BrokerMessage, TaskiqMessage

from asyncjobs.errors import PayloadTooLargeError, SerializationError

_OPTIONS = orjson.OPT_NON_STR_KEYS
_REQUIRED = (
    ("task_id", str),
    ("task_name", str),
    ("labels", dict),
    ("args", list),
    ("kwargs", dict),
)


class MessageDecodeError(ValueError):
    """A received body is not a valid task message (it is dead-lettered, not dropped)."""


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__qualname__} is not JSON serializable")


def _culprit(message: TaskiqMessage, error: TypeError) -> str:
    """Which argument (or label) orjson refused, by position or name, and its type."""
    named = [(f"argument {i + 1}", v) for i, v in enumerate(message.args)]
    named += [(f"argument {k!r}", v) for k, v in message.kwargs.items()]
    named += [(f"label {k!r}", v) for k, v in message.labels.items()]
    for name, value in named:
        try:
            orjson.dumps(value, default=_default, option=_OPTIONS)
        except TypeError:
            return f"{name} (a {type(value).__qualname__})"
    return f"the message ({error})"


class JsonFormatter(TaskiqFormatter):
    def __init__(self, max_payload_bytes: int) -> None:
        self.max_payload_bytes = max_payload_bytes

    def dumps(self, message: TaskiqMessage) -> BrokerMessage:
        payload = {
            "task_id": message.task_id,
            "task_name": message.task_name,
            "labels": message.labels,
            "labels_types": message.labels_types,
            "args": message.args,
            "kwargs": message.kwargs,
        }
        try:
            body = orjson.dumps(payload, default=_default, option=_OPTIONS)
        except TypeError as exc:
            raise SerializationError(
                f"task {message.task_name}: {_culprit(message, exc)} is not JSON-serializable; "
                "pass what JSON can carry (an id, a dict, an ISO date string)"
            ) from None
        if len(body) > self.max_payload_bytes:
            raise PayloadTooLargeError(
                f"task {message.task_name}: message is {len(body)} bytes, over "
                f"MAX_PAYLOAD_BYTES={self.max_payload_bytes}; pass a reference (a primary key, "
                "a storage path) instead of the data, or raise the limit"
            )
        return BrokerMessage(
            task_id=message.task_id,
            task_name=message.task_name,
            message=body,
            labels=message.labels,
        )

    def loads(self, message: bytes) -> TaskiqMessage:
        try:
            data = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            raise MessageDecodeError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise MessageDecodeError("not a JSON object")
        for field, kind in _REQUIRED:
            if not isinstance(data.get(field), kind):
                raise MessageDecodeError(f"field {field!r} is missing or not a {kind.__name__}")
        labels_types = data.get("labels_types")
        if labels_types is not None and not isinstance(labels_types, dict):
            raise MessageDecodeError("field 'labels_types' is not an object")
        msg = constructed(
            {
                "task_id": data["task_id"],
                "task_name": data["task_name"],
                "labels": data["labels"],
                "labels_types": labels_types,
                "args": data["args"],
                "kwargs": data["kwargs"],
            }
        )
        try:
            msg.parse_labels()
        except (ValueError, TypeError) as exc:
            raise MessageDecodeError(f"bad labels: {exc}") from None
        return msg


M = TypeVar("M", bound=BaseModel)


def plain_constructor(model: type[M]) -> Callable[[dict[str, Any]], M]:
    """``model.model_construct(**values)`` for values of every field, already of the right
    types, without pydantic's generic walk over the fields: for a decoded message it was
    the dearest step of decoding in a worker (~10 us of ~15), and a task's result was
    validated field by field again. For a model with private attributes or extras
    (another taskiq version) it is pydantic's own ``model_construct``;
    tests/asyncjobs/test_codec.py compares the two."""
    if model.__private_attributes__ or model.model_config.get("extra"):
        return lambda values: model.model_construct(**values)
    fields = frozenset(model.model_fields)
    new, set_attribute = model.__new__, object.__setattr__

    def construct(values: dict[str, Any]) -> M:
        instance = new(model)
        set_attribute(instance, "__dict__", values)
        set_attribute(instance, "__pydantic_fields_set__", set(fields))
        set_attribute(instance, "__pydantic_extra__", None)
        set_attribute(instance, "__pydantic_private__", None)
        return instance

    return construct


constructed = plain_constructor(TaskiqMessage)
