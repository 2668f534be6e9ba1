from __future__ import annotations

from datetime import timedelta

import pytest
from taskiq.brokers.shared_broker import AsyncSharedBroker

from asyncjobs import TaskOptions, task
from asyncjobs.app import check_tasks
from asyncjobs.brokers.envelope import QUEUE as QUEUE_LABEL
from asyncjobs.config import load_config
from asyncjobs.errors import ConfigurationError, NotConfiguredError
from asyncjobs.tasks import JobTask, registered_tasks
from tests.support.helpers import configured_app


@task
async def bare(x: int) -> int:
    return x


@task(queue="other", max_attempts=5, timeout=timedelta(seconds=30), task_name="tests.named")
def configured_sync(x: int) -> int:
    return x


def test_bare_and_configured_decorators_register_typed_tasks() -> None:
    assert isinstance(bare, JobTask)
    assert bare.task_name == f"{__name__}:bare"
    assert bare.options == TaskOptions()
    assert configured_sync.task_name == "tests.named"
    assert configured_sync.options == TaskOptions("other", 5, 30.0, "tests.named")
    assert configured_sync.labels == {QUEUE_LABEL: "other", "max_attempts": 5, "timeout": 30.0}
    assert {"tests.named", f"{__name__}:bare"} <= set(registered_tasks())
    # The function itself still works when called directly.
    assert configured_sync(3) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"queue": "no spaces"}, "queue"),
    ],
)
def test_bad_task_options_fail_at_import(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):

        @task(**kwargs)  # type: ignore[call-overload]
        async def broken() -> None: ...


async def test_kicker_labels_do_not_leak_into_the_task() -> None:
    """Regression: taskiq's shared task hands its own label dict to the kicker."""
    async with configured_app(load_config({"BROKER_URL": "memory://"}, environ={})):
        kicker = bare.kicker().with_labels(delay=5)
    assert kicker.labels["delay"] == 5
    assert "delay" not in bare.labels


def test_taskiq_shared_task_kicker_mutates_labels() -> None:
    """Documents the upstream weak spot the test above guards against."""
    shared = AsyncSharedBroker()

    @shared.task
    async def upstream() -> None: ...

    upstream.kicker().with_labels(delay=5)
    assert upstream.labels.get("delay") == 5


def test_tasks_on_unconfigured_queues_fail_at_start() -> None:
    config = load_config({"BROKER_URL": "redis://h/0", "QUEUES": ["default"]}, environ={})
    with pytest.raises(ConfigurationError, match=r"tests\.named \(queue='other'\)"):
        check_tasks(config)


async def test_kiq_without_configuration_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from asyncjobs import app

    monkeypatch.setattr(app, "_current", None)
    with pytest.raises(NotConfiguredError, match="INSTALLED_APPS"):
        await bare.kiq(1)
