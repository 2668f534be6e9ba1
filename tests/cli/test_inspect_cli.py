"""``asyncjobs inspect`` and ``health_problems``.

The CLI runs its own event loop (``asyncio.run``), so async tests call it in a thread;
the messages it inspects are sent with a broker of their own, shut down before.
"""

from __future__ import annotations

import asyncio
import io
import uuid

import orjson
import pytest
from taskiq.message import BrokerMessage

from asyncjobs.brokers.factory import build_broker
from asyncjobs.brokers.inspection import QueueStats
from asyncjobs.cli import run
from asyncjobs.cli.inspect import age, table
from asyncjobs.config import AsyncJobsConfig, load_config
from asyncjobs.inspection import health_problems
from tests.support.helpers import wait_until


def stats(queue: str = "default", **figures: object) -> QueueStats:
    values: dict[str, object] = {
        "queue": queue,
        "transport": "redis",
        "waiting": 0,
        "in_flight": 0,
        "scheduled": 0,
        "dead_letters": 0,
        "oldest_waiting_age_s": None,
        "consumers": 1,
        "backlog": 0,
    }
    return QueueStats(**(values | figures))  # type: ignore[arg-type]


def config(**limits: object) -> AsyncJobsConfig:
    return load_config({"BROKER_URL": "redis://127.0.0.1:6379/0", **limits}, environ={})


def test_health_problems_name_each_figure_over_its_limit() -> None:
    busy = stats(waiting=7, in_flight=3, backlog=10, oldest_waiting_age_s=61.0, dead_letters=1)
    limits = config(HEALTH_MAX_BACKLOG=9, HEALTH_MAX_WAIT=60, HEALTH_MAX_DEAD_LETTERS=0)
    assert health_problems([busy, stats("other")], limits) == [
        "queue 'default': backlog 10 > HEALTH_MAX_BACKLOG 9",
        "queue 'default': the oldest waiting message waited 61.0 s > HEALTH_MAX_WAIT 60 s",
        "queue 'default': 1 dead letters > HEALTH_MAX_DEAD_LETTERS 0",
    ]
    # At the limit is fine; no limit set is no limit; an unknown age is no problem.
    at_limit = config(HEALTH_MAX_BACKLOG=10, HEALTH_MAX_WAIT=61, HEALTH_MAX_DEAD_LETTERS=1)
    assert health_problems([busy], at_limit) == []
    assert health_problems([busy], config()) == []
    rabbit = stats(transport="rabbitmq", waiting=5, in_flight=None, oldest_waiting_age_s=None)
    assert health_problems([rabbit], config(HEALTH_MAX_WAIT=1)) == []


def test_table_shows_unknown_figures_as_question_marks() -> None:
    rabbit = stats(
        transport="rabbitmq", waiting=3, in_flight=None, scheduled=None, backlog=3, notes=("n",)
    )
    text = table([stats(waiting=2, backlog=2, oldest_waiting_age_s=75.0), rabbit], ["p"])
    header, redis_row, rabbit_row, *rest = text.splitlines()
    assert header.split() == [
        "QUEUE",
        "TRANSPORT",
        "WAITING",
        "IN_FLIGHT",
        "SCHEDULED",
        "DEAD",
        "OLDEST",
        "CONSUMERS",
        "BACKLOG",
    ]
    assert redis_row.split() == ["default", "redis", "2", "0", "0", "0", "1m", "1", "2"]
    assert rabbit_row.split() == ["default", "rabbitmq", "3", "?", "?", "0", "?", "1", "3"]
    assert rest == ["note: n", "problem: p"]
    assert (age(None, 0), age(3.21, 1), age(7200, 1), age(90000, 1)) == ("-", "3.2s", "2h", "1d")


async def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = await asyncio.to_thread(run, list(argv), out)
    return status, out.getvalue()


async def send(config: AsyncJobsConfig, queue: str, n: int) -> None:
    # A broker of this test's own: the CLI's is the configured one, on its own loop.
    broker = build_broker(config.broker_url, config.transport_options())
    try:
        for i in range(n):
            message = BrokerMessage(
                task_id=uuid.uuid4().hex,
                task_name="t",
                message=f"m{i}".encode(),
                labels={"queue_name": queue},
            )
            await broker.kick(message)
    finally:
        await broker.shutdown()


async def test_inspect_json_and_table(configured_any: AsyncJobsConfig) -> None:
    await send(configured_any, "other", 2)

    async def two_waiting() -> dict[str, object] | None:
        status, text = await cli("inspect", "--json")
        assert status == 0
        document = orjson.loads(text)
        return document if document["queues"][1]["waiting"] == 2 else None

    document = await wait_until(two_waiting, timeout=30, what="2 messages waiting in 'other'")
    default, other = document["queues"]  # type: ignore[misc]
    assert document["problems"] == []
    assert (default["queue"], other["queue"]) == ("default", "other")
    assert (default["waiting"], default["backlog"], other["backlog"]) == (0, 0, 2)
    rabbit = configured_any.transport.name == "rabbitmq"
    assert other["transport"] == configured_any.transport.name
    # RabbitMQ without AMQP_MANAGEMENT_URL: unknown figures are null, with a note.
    assert (other["in_flight"], other["scheduled"]) == ((None, None) if rabbit else (0, 0))
    assert bool(other["notes"]) is rabbit
    if not rabbit:
        assert other["oldest_waiting_age_s"] >= 0

    status, text = await cli("inspect", "--queue", "other")
    assert status == 0
    header, row, *notes = text.splitlines()
    assert header.startswith("QUEUE") and row.split()[:3] == ["other", other["transport"], "2"]
    assert ("?" in row.split()) is rabbit
    assert any("AMQP_MANAGEMENT_URL" in note for note in notes) is rabbit


async def test_inspect_an_unknown_queue_fails(
    configured: AsyncJobsConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    status, text = await cli("inspect", "--queue", "nope")
    assert (status, text) == (1, "")
    assert "queue 'nope' is not configured" in capsys.readouterr().err
