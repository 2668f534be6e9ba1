"""``asyncjobs dlq show|replay`` and ``DeadLetters`` take the task id too (what ``kiq()``
returned and the worker logged), on Redis and RabbitMQ: a letter id works as before; a
task id names every letter of that task (show: all, replay: the newest); an id that names
nothing fails clearly and changes nothing; the lookup reads a bounded number of letters."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson
import pytest

from asyncjobs import current_broker
from asyncjobs.brokers.dead_letters import DeadLetter
from asyncjobs.config import AsyncJobsConfig
from asyncjobs.dead_letters import DeadLetters
from asyncjobs.errors import DeadLetterNotFoundError
from tests.support.helpers import django_env, wait_until
from tests.support.worker_harness import Worker
from tests.testapp import tasks

ROOT = Path(__file__).resolve().parents[2]
TASK_ID = "order-4711-receipt"  # as an application may choose it (kicker().with_task_id)


# The ``asyncjobs`` console script's entry point, run with this checkout's code.
SCRIPT = "import sys; from asyncjobs.django.cli import main; sys.exit(main())"


def cli(config: AsyncJobsConfig, *argv: str) -> subprocess.CompletedProcess[str]:
    """``asyncjobs ...`` (with the Django settings) in a process of its own, as an
    operator runs it next to the workers."""
    env = django_env(config)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def run_cli(config: AsyncJobsConfig, *argv: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, config, *argv)


async def letters_of(worker: Worker, count: int) -> list[DeadLetter]:
    letters = await worker.dead()
    return letters if len(letters) == count else []


async def two_letters_of_one_task(
    start_any_worker: Callable[..., object],
) -> tuple[DeadLetter, DeadLetter, DeadLetter]:
    """A ``rejects`` letter of another task, then two of ``TASK_ID`` (the same id sent
    twice: a copy of one message, as a duplicate delivery leaves), tagged ``a`` then
    ``b``; the worker stopped. (Told apart by content: a RabbitMQ dead-letter queue read
    while letters arrive need not list them in the order they came.)"""
    worker: Worker = await start_any_worker()  # type: ignore[misc]
    await tasks.rejects.kiq("other")
    await wait_until(lambda: letters_of(worker, 1), timeout=20, what="the first letter")
    for count, label in ((2, "a"), (3, "b")):
        await tasks.rejects.kicker().with_task_id(TASK_ID).kiq(label)
        await wait_until(partial(letters_of, worker, count), timeout=20, what=label)
    await worker.stop()
    by_tag = {tag(letter): letter for letter in await worker.dead()}
    return by_tag["other"], by_tag["a"], by_tag["b"]


def tag(letter: DeadLetter) -> str:
    return str(orjson.loads(letter.body)["args"][0])


async def test_the_python_api_takes_a_letter_id_or_a_task_id(
    start_any_worker: Callable[..., object],
) -> None:
    other, first, second = await two_letters_of_one_task(start_any_worker)
    letters = DeadLetters.of(current_broker())

    found = await letters.lookup(TASK_ID)
    assert found.by_task_id and [tag(x) for x in found.letters] == ["a", "b"]
    assert found.newest.id == second.id and (await letters.find(TASK_ID)).id == second.id
    by_id = await letters.lookup(first.id)
    assert not by_id.by_task_id and by_id.letters == (first,)
    assert (await letters.find(other.task_id)).id == other.id  # the id kiq() returned

    with pytest.raises(DeadLetterNotFoundError, match="no dead letter has the id or task id"):
        await letters.replay("no-such-id")
    with pytest.raises(DeadLetterNotFoundError):
        await letters.lookup("")  # undecodable letters have task id "": not all of them

    replayed = await letters.replay(TASK_ID)  # the newest only
    assert replayed.id == second.id
    left = await letters.list()
    assert sorted(x.id for x in left) == sorted([other.id, first.id])


async def test_the_lookup_reads_at_most_scan_letters_per_queue(
    start_any_worker: Callable[..., object],
) -> None:
    _, first, second = await two_letters_of_one_task(start_any_worker)
    letters = DeadLetters.of(current_broker())
    with pytest.raises(DeadLetterNotFoundError) as raised:
        await letters.lookup("no-such-id", "default", scan=2)
    assert str(raised.value) == (
        "no dead letter has the id or task id 'no-such-id' among the oldest 2 of each "
        "queue (there are 3 in default)"
    )
    with pytest.raises(DeadLetterNotFoundError) as raised:
        await letters.lookup("no-such-id", scan=3)  # every letter read: nothing to add
    assert str(raised.value) == "no dead letter has the id or task id 'no-such-id'"
    assert (await letters.lookup(TASK_ID, scan=3)).letters == (first, second)
    bounded = await letters.lookup(TASK_ID, scan=2)  # two of the three read
    assert 1 <= len(bounded.letters) <= 2
    assert {x.id for x in bounded.letters} <= {first.id, second.id}


async def test_cli_show_and_replay_take_a_task_id(
    start_any_worker: Callable[..., object], configured_any: AsyncJobsConfig
) -> None:
    other, first, second = await two_letters_of_one_task(start_any_worker)

    shown = await run_cli(configured_any, "dlq", "show", TASK_ID, "--json")
    assert shown.returncode == 0, shown.stderr
    assert [item["id"] for item in orjson.loads(shown.stdout)] == [first.id, second.id]
    shown = await run_cli(configured_any, "dlq", "show", TASK_ID)
    assert shown.stdout.startswith(f"2 dead letters of task {TASK_ID}, oldest first\n")
    by_letter_id = orjson.loads(
        (await run_cli(configured_any, "dlq", "show", other.id, "--json")).stdout
    )
    assert by_letter_id["id"] == other.id  # one object, as before

    missing = await run_cli(configured_any, "dlq", "replay", "no-such-id")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == "asyncjobs: no dead letter has the id or task id 'no-such-id'\n"
    assert (await run_cli(configured_any, "dlq", "show", "no-such-id")).returncode == 1
    letters = DeadLetters.of(current_broker())
    assert len(await letters.list()) == 3  # nothing changed

    replayed = await run_cli(configured_any, "dlq", "replay", TASK_ID, "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert orjson.loads(replayed.stdout) == {
        "replayed": 1,
        "id": second.id,
        "queue": "default",
        "task_id": TASK_ID,
        "left": [first.id],
    }
    replayed = await run_cli(configured_any, "dlq", "replay", TASK_ID)
    assert replayed.stdout == f"replayed {first.id} (task {TASK_ID}) to queue default\n"
    assert [x.id for x in await letters.list()] == [other.id]

    worker: Worker = await start_any_worker()  # type: ignore[misc]
    # The replayed messages run again (and are rejected again: two new letters of the task).
    again = await wait_until(lambda: letters_of(worker, 3), timeout=20, what="replays ran")
    assert sorted(tag(x) for x in again if x.task_id == TASK_ID) == ["a", "b"]
