"""The send path builds, encodes and sends what taskiq's own kicker would: the same
message (built without pydantic's validation when its values are of the right types),
the same bytes, the same middlewares in the same order."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError
from taskiq.abc.broker import default_id_generator
from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.kicker import AsyncKicker
from taskiq.message import BrokerMessage, TaskiqMessage

from asyncjobs import Hooks, configured
from asyncjobs.app import App
from asyncjobs.brokers.memory.server import discard_server
from asyncjobs.codec import JsonFormatter, broker_message, build_message, task_id_from
from asyncjobs.kicker import JobKicker
from tests.testapp.tasks import add


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Span:
    start: int
    end: int


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Broker:
    """What a kicker asks of its broker while building a message."""

    id_generator = staticmethod(default_id_generator)


def kickers(
    labels: dict[Any, Any], task_id: Any
) -> tuple[AsyncKicker[Any, Any], JobKicker[Any, Any]]:
    taskiqs = AsyncKicker[Any, Any]("tests:t", Broker(), dict(labels))  # type: ignore[arg-type]
    ours = JobKicker[Any, Any]("tests:t", Broker(), dict(labels), app=None)  # type: ignore[arg-type]
    return taskiqs.with_task_id(task_id), ours.with_task_id(task_id)  # type: ignore[return-value]


def same_model(ours: BaseModel, pydantics: BaseModel) -> None:
    assert type(ours) is type(pydantics)
    assert ours.__dict__ == pydantics.__dict__
    assert list(ours.__dict__) == list(pydantics.__dict__)
    assert ours.__pydantic_fields_set__ == pydantics.__pydantic_fields_set__
    assert ours.__pydantic_extra__ == pydantics.__pydantic_extra__
    assert ours.__pydantic_private__ == pydantics.__pydantic_private__
    assert ours.model_dump() == pydantics.model_dump()


ARGUMENTS = [
    ((), {}),
    (("k", 1, 2.5, True, None), {}),
    (([1, "a"], {"n": [1]}, (1, 2)), {"key": "v", "n": 3}),
    ((Point(x=1, y=2), Span(1, 2)), {"p": Point(x=3, y=4), "s": Span(3, 4)}),
    ((Colour.RED, Level.HIGH, b"raw"), {"when": uuid.UUID(int=7)}),
]
LABELS = [
    {},
    {"queue": "default", "max_attempts": 3, "timeout": 1.5, "flag": False},
    {"blob": b"\x00\xff", "none": None, "colour": Colour.RED, "level": Level.HIGH},
    {"types_of_exceptions": (ValueError,), "delay": 2},  # local only: never sent
]


@pytest.mark.parametrize(("args", "kwargs"), ARGUMENTS)
@pytest.mark.parametrize("labels", LABELS)
def test_a_message_is_what_taskiqs_kicker_builds(
    args: tuple[Any, ...], kwargs: dict[str, Any], labels: dict[str, Any]
) -> None:
    taskiqs, ours = kickers(labels, "id-1")
    same_model(ours._prepare_message(*args, **kwargs), taskiqs._prepare_message(*args, **kwargs))


def test_a_class_argument_is_refused_as_taskiq_refuses_it() -> None:
    taskiqs, ours = kickers({}, "id-1")
    with pytest.raises(ValueError, match="Cannot serialize types") as theirs:
        taskiqs._prepare_message(Span)
    with pytest.raises(ValueError, match="Cannot serialize types") as raised:
        ours._prepare_message(Span)
    assert str(raised.value) == str(theirs.value)


@pytest.mark.parametrize(
    ("labels", "task_id"),
    [({}, 123), ({}, uuid.UUID(int=1)), ({1: "x"}, "id-1"), ({}, Colour.RED)],
)
def test_values_of_other_types_are_left_to_pydantic(labels: dict[Any, Any], task_id: Any) -> None:
    """A non-string id or label name: pydantic decides, as it always did (it refuses
    all of these but the str enum, which it turns into a str)."""
    taskiqs, ours = kickers(labels, task_id)
    expected, got = outcome(taskiqs, "a"), outcome(ours, "a")
    if isinstance(expected, BaseModel):
        assert isinstance(got, BaseModel)
        same_model(got, expected)
    else:
        assert got == expected


def outcome(kicker: AsyncKicker[Any, Any], *args: Any) -> BaseModel | list[Any]:
    """The message ``kicker`` builds, or pydantic's errors."""
    try:
        return kicker._prepare_message(*args)
    except ValidationError as exc:
        return list(exc.errors())


def test_a_new_task_id_is_a_uuid4_unless_the_broker_makes_its_own() -> None:
    ids = {task_id_from(default_id_generator) for _ in range(1000)}
    assert len(ids) == 1000
    for task_id in ids:
        parsed = uuid.UUID(hex=task_id)
        assert (parsed.hex, parsed.version, parsed.variant) == (task_id, 4, uuid.RFC_4122)
    assert task_id_from(lambda: "mine") == "mine"
    _, ours = kickers({}, None)
    assert uuid.UUID(hex=ours._prepare_message().task_id).version == 4


def test_build_message_without_validation_equals_pydantics() -> None:
    values: dict[str, Any] = {
        "task_id": "i",
        "task_name": "n",
        "labels": {"a": "1"},
        "labels_types": {"a": 2},
        "args": [1],
        "kwargs": {"k": [2]},
    }
    same_model(build_message(**values), TaskiqMessage(**values))


@pytest.mark.parametrize("labels", LABELS[:3])
def test_the_encoded_message_is_what_the_validated_one_encodes_to(labels: dict[str, Any]) -> None:
    formatter = JsonFormatter(1 << 20)
    _, ours = kickers(labels, "id-1")
    message = ours._prepare_message("k", 1, Point(x=1, y=2), n={"a": [1]})
    validated = TaskiqMessage.model_validate(message.model_dump())
    sent, expected = formatter.dumps(message), formatter.dumps(validated)
    assert sent.message == expected.message == orjson.dumps(validated.model_dump())
    same_model(formatter.loads(sent.message), formatter.loads(expected.message))
    reference = BrokerMessage(
        task_id="id-1", task_name="tests:t", message=sent.message, labels=message.labels
    )
    same_model(sent, reference)
    assert sent.labels is not message.labels  # a copy, as pydantic makes


def test_what_pydantic_would_refuse_is_still_refused_when_encoding() -> None:
    with pytest.raises(ValidationError):
        broker_message(1, "n", b"{}", {})
    with pytest.raises(ValidationError):
        broker_message("i", "n", b"{}", {1: "x"})
    partial = TaskiqMessage.model_construct(task_id="i", task_name="n", labels={}, args=[])
    with pytest.raises(AttributeError):  # no kwargs: never encoded without them
        JsonFormatter(1 << 20).dumps(partial)


# -- a send, end to end (memory broker) -------------------------------------------


class Recording(TaskiqMiddleware):
    """A plain taskiq middleware: sync or async, it may replace the message."""

    def __init__(self, name: str, seen: list[str], is_async: bool) -> None:
        super().__init__()
        self.name, self.seen, self.is_async = name, seen, is_async

    def pre_send(self, message: TaskiqMessage) -> Any:
        self.seen.append(f"pre {self.name}")
        changed = message.model_copy(update={"labels": {**message.labels, self.name: "1"}})
        return self._maybe_async(changed)

    def post_send(self, message: TaskiqMessage) -> Any:
        self.seen.append(f"post {self.name} {sorted(message.labels)}")
        return self._maybe_async(None)

    def _maybe_async(self, value: Any) -> Any:
        if not self.is_async:
            return value

        async def later() -> Any:
            return value

        return later()


class SendHooks(Hooks):
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def on_send(self, message: TaskiqMessage) -> None:
        self.seen.append("on_send")
        message.labels["hooked"] = "yes"

    async def on_sent(self, message: TaskiqMessage) -> None:
        self.seen.append("on_sent")


@pytest.fixture
async def app(prefix: str) -> AsyncIterator[App]:
    settings = {"BROKER_URL": "memory://sendpath", "KEY_PREFIX": prefix}
    try:
        async with configured(settings) as app:
            yield app
    finally:
        discard_server("memory://sendpath", prefix)


async def test_middlewares_and_hooks_run_around_a_send_in_taskiqs_order(app: App) -> None:
    seen: list[str] = []
    app.add_hooks(SendHooks(seen))
    app.broker.add_middlewares(Recording("m1", seen, False), Recording("m2", seen, True))
    handle = await add.kicker().with_task_id("fixed-id").with_labels(extra=5).kiq(1, 2)
    assert handle.task_id == "fixed-id"
    labels = ["extra", "hooked", "m1", "m2"]
    assert seen == [
        "on_send",
        "pre m1",
        "pre m2",
        f"post m2 {labels}",
        f"post m1 {labels}",
        "on_sent",
    ]
    [delivery] = await app.broker.fetch(1, 1.0)
    message = app.broker.formatter.loads(delivery.data)
    assert (message.task_id, message.args, message.kwargs) == ("fixed-id", [1, 2], {})
    assert {k: message.labels[k] for k in labels} == {
        "extra": 5,
        "hooked": "yes",
        "m1": "1",
        "m2": "1",
    }
    await delivery.ack()
