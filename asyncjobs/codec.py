"""The wire format: taskiq's message JSON, encoded with orjson.

The shape is taskiq's own (``TaskiqMessage``), so raw taskiq producers and workers
interoperate. Encoding refuses what is not JSON (nothing is pickled) and anything over
``MAX_PAYLOAD_BYTES`` before it is sent; decoding checks the shape once and builds the
message without a second validation pass. A send builds its message as taskiq's kicker
does, without validating values that are of their fields' types already (below).
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from taskiq.abc.broker import default_id_generator
from taskiq.abc.formatter import TaskiqFormatter
from taskiq.labels import LabelType
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


_FIELD_COUNT = len(TaskiqMessage.model_fields)


def _fields(message: TaskiqMessage) -> dict[str, Any]:
    """The message's fields by name, in taskiq's order. A ``TaskiqMessage``'s own
    ``__dict__`` is exactly that once it holds every field (pydantic keeps extras and
    private attributes apart, and it has neither): encoded as it is, without a copy."""
    fields = message.__dict__
    if type(message) is TaskiqMessage and len(fields) == _FIELD_COUNT:
        return fields
    return {
        "task_id": message.task_id,
        "task_name": message.task_name,
        "labels": message.labels,
        "labels_types": message.labels_types,
        "args": message.args,
        "kwargs": message.kwargs,
    }


class JsonFormatter(TaskiqFormatter):
    def __init__(self, max_payload_bytes: int) -> None:
        self.max_payload_bytes = max_payload_bytes

    def dumps(self, message: TaskiqMessage) -> BrokerMessage:
        payload = _fields(message)
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
        return broker_message(message.task_id, message.task_name, body, message.labels)

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
_broker_message = plain_constructor(BrokerMessage)


def broker_message(task_id: Any, task_name: Any, body: bytes, labels: Any) -> BrokerMessage:
    """``BrokerMessage(...)``: without validation when every value is of its field's
    type already (a validated message's always are), else validated (and refused)."""
    if type(task_id) is str and type(task_name) is str and _str_keyed(labels):
        # pydantic copies the dict: so does this (a transport may add labels to its own).
        labels = dict(labels)
        values = {"task_id": task_id, "task_name": task_name, "message": body, "labels": labels}
        return _broker_message(values)
    return BrokerMessage(task_id=task_id, task_name=task_name, message=body, labels=labels)


def _str_keyed(labels: Any) -> bool:
    return type(labels) is dict and (not labels or all(type(k) is str for k in labels))


# -- the message a send builds -------------------------------------------------------
# As taskiq's ``AsyncKicker._prepare_message`` builds it, for less CPU per send.
# Taskiq validates every field of a ``TaskiqMessage`` it has just made from values of the
# right types, asks ``is_dataclass``/``isinstance(BaseModel)`` of every argument, looks a
# label's type up by name in an enum, and makes a task id through ``uuid.UUID``. Here the
# same values come out (tests/asyncjobs/test_send_path.py compares them with taskiq's):
# an argument of a builtin JSON type is taken as it is (it can be neither a model nor a
# dataclass), anything else goes through taskiq's ``_prepare_arg``; the message is built
# without validation only when every value is already of its field's type, and by
# pydantic otherwise (which then raises what it always raised).

# Exactly these types (not subclasses) are neither a pydantic model nor a dataclass.
_PLAIN = frozenset({str, int, float, bool, type(None), list, dict, tuple})
# taskiq's ``prepare_label``: the label type of a value of exactly this type.
_LABEL_TYPES: dict[type, int] = {
    int: LabelType.INT.value,
    str: LabelType.STR.value,
    float: LabelType.FLOAT.value,
    bool: LabelType.BOOL.value,
}
_BYTES, _ANY = LabelType.BYTES.value, LabelType.ANY.value
_LOCAL_ONLY = "types_of_exceptions"  # read from the local task, never sent (taskiq)


def task_id_from(generator: Callable[[], str]) -> str:
    """A new task id from the broker's generator: taskiq's default one is
    ``uuid4().hex``, made here from the same 16 random bytes without ``uuid.UUID``."""
    if generator is not default_id_generator:
        return generator()
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def prepared_args(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], prepare: Callable[[Any], Any]
) -> tuple[list[Any], dict[str, Any]]:
    """``args`` and ``kwargs`` with models and dataclasses made plain by ``prepare``
    (taskiq's ``_prepare_arg``); the rest as they are."""
    plain = _PLAIN
    listed = [a if type(a) in plain else prepare(a) for a in args]
    named = {k: v if type(v) in plain else prepare(v) for k, v in kwargs.items()}
    return listed, named


def wire_labels(labels: Mapping[Any, Any]) -> tuple[dict[Any, str], dict[Any, int]]:
    """The labels as sent and their types, as taskiq's ``prepare_label`` makes them."""
    values: dict[Any, str] = {}
    types: dict[Any, int] = {}
    for name, value in labels.items():
        if name == _LOCAL_ONLY:
            continue
        kind = _LABEL_TYPES.get(type(value))
        if kind is not None:
            values[name], types[name] = str(value), kind
        elif type(value) is bytes:
            values[name], types[name] = base64.b64encode(value).decode(), _BYTES
        else:
            values[name], types[name] = str(value), _ANY
    return values, types


def build_message(
    task_id: Any,
    task_name: Any,
    labels: dict[Any, str],
    labels_types: dict[Any, int],
    args: list[Any],
    kwargs: dict[str, Any],
) -> TaskiqMessage:
    """``TaskiqMessage(...)`` of these values: without validation when it could change
    nothing (string ids, string label names), else validated by pydantic."""
    names_ok = not labels or all(type(k) is str for k in labels)
    if type(task_id) is str and type(task_name) is str and names_ok:
        return constructed(
            {
                "task_id": task_id,
                "task_name": task_name,
                "labels": labels,
                "labels_types": labels_types,
                "args": args,
                "kwargs": kwargs,
            }
        )
    return TaskiqMessage(
        task_id=task_id,
        task_name=task_name,
        labels=labels,
        labels_types=labels_types,
        args=args,
        kwargs=kwargs,
    )
