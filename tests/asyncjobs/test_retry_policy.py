"""The retry policy's logic: backoff bounds, what is retried, how it is configured."""

from __future__ import annotations

import random
from datetime import timedelta

import orjson
import pytest

from asyncjobs import Backoff, Reject, RetryPolicy, current_attempt, task
from asyncjobs.brokers.dead_letters import Reason
from asyncjobs.brokers.envelope import (
    ATTEMPT as ATTEMPT_LABEL,
)
from asyncjobs.brokers.envelope import (
    HISTORY as HISTORY_LABEL,
)
from asyncjobs.brokers.envelope import (
    MAX_ATTEMPT_NUMBER,
    MAX_HISTORY,
    attempt_of,
    history_of,
)
from asyncjobs.config import load_config
from asyncjobs.errors import ConfigurationError
from asyncjobs.retries import history_with, policy_for, running_attempt


def test_backoff_is_exponential_with_a_cap() -> None:
    backoff = Backoff(base_s=1, factor=2, max_s=10, jitter=0)
    assert [backoff.ceiling_s(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff.ceiling_s(10_000) == 10  # no float overflow for absurd attempt numbers
    assert backoff.delay_s(3) == 4  # no jitter: the ceiling itself


def test_full_jitter_spreads_over_zero_to_the_ceiling() -> None:
    backoff = Backoff(base_s=1, factor=3, max_s=100)  # jitter=1.0, the default
    assert backoff.bounds_s(3) == (0, 9)
    rng = random.Random(7)
    delays = [backoff.delay_s(3, rng) for _ in range(2000)]
    assert 0 <= min(delays) < 0.5 and 8.5 < max(delays) <= 9
    half = Backoff(base_s=2, factor=2, max_s=100, jitter=0.5)
    assert half.bounds_s(2) == (2, 4)
    assert all(2 <= half.delay_s(2, rng) <= 4 for _ in range(500))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"base_s": 0}, "base"),
        ({"factor": 0.5}, "factor"),
        ({"base_s": 10, "max_s": 5}, "max"),
        ({"jitter": 1.5}, "jitter"),
        ({"max_s": float("inf")}, "finite"),
        # A retry parked on the broker for 30 years: refused like RETRY_BACKOFF's MAX.
        ({"base_s": 1, "max_s": 1e9}, "7 days"),
        ({"base_s": 8 * 86_400, "max_s": 8 * 86_400}, "7 days"),
    ],
)
def test_bad_backoff_is_a_clear_error(kwargs: dict[str, float], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        Backoff(**kwargs)


def test_policy_retries_until_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, backoff=Backoff(base_s=1, jitter=0))
    first, second, third = (policy.decide(RuntimeError("x"), n) for n in (1, 2, 3))
    assert (first.give_up, first.delay_s) == (None, 1)
    assert (second.give_up, second.delay_s) == (None, 2)
    assert third.give_up is Reason.MAX_ATTEMPTS
    assert "retrying in 1.00 s" in first.describe() and "max_attempts" in third.describe()


def test_policy_never_retries_reject_or_errors_it_is_not_for() -> None:
    policy = RetryPolicy(max_attempts=5, retry_on=(LookupError,), no_retry_on=(KeyError,))
    assert policy.decide(Reject("no"), 1).give_up is Reason.REJECTED
    assert policy.decide(KeyError("k"), 1).give_up is Reason.NOT_RETRYABLE
    assert policy.decide(ValueError("v"), 1).give_up is Reason.NOT_RETRYABLE
    assert policy.decide(IndexError("i"), 1).give_up is None
    assert RetryPolicy(retry_on=(Reject,)).decide(Reject("no"), 1).give_up is Reason.REJECTED


def test_policy_for_uses_the_tasks_options_and_the_project_defaults() -> None:
    own = Backoff(base_s=5, max_s=5)
    default = Backoff(base_s=1)

    @task(retry_on=OSError, no_retry_on=[TimeoutError], backoff=own)
    async def fetch() -> None: ...

    policy = policy_for(fetch, 4, default)
    assert policy == RetryPolicy(4, own, (OSError,), (TimeoutError,))
    assert policy_for(None, 2, default) == RetryPolicy(2, default, (Exception,), ())


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"retry_on": ["nope"]}, "exception classes"),
        ({"retry_on": ()}, "retry_on is empty"),
        ({"no_retry_on": [int]}, "exception classes"),
        ({"backoff": 3}, "asyncjobs.Backoff"),
    ],
)
def test_bad_task_retry_options_fail_at_import(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        task(**kwargs)  # type: ignore[call-overload]


def test_history_keeps_the_last_failures_with_type_message_and_attempt() -> None:
    labels: dict[str, object] = {}
    for attempt in range(1, MAX_HISTORY + 3):
        labels[HISTORY_LABEL] = list(
            history_with(history_of(labels), ValueError(f"bad {attempt}"), attempt)
        )
    history = labels[HISTORY_LABEL]
    assert isinstance(history, list) and len(history) == MAX_HISTORY
    assert history[-1]["attempt"] == MAX_HISTORY + 2
    assert history[-1]["error_type"] == "ValueError"
    assert history[-1]["error_message"] == f"bad {MAX_HISTORY + 2}"
    assert history_with(history_of({HISTORY_LABEL: "garbage"}), None, 1)[0]["error_type"] == ""


def test_a_history_from_labels_keeps_only_well_formed_bounded_entries() -> None:
    """A sender writes the label: what goes into the dead letter must stay encodable."""
    earlier = [
        {"attempt": 10**30, "error_type": "E" * 999, "error_message": "m" * 9999, "at": 1.0},
        {"attempt": 2, "at": float("inf")},  # not a time
        {"attempt": "3", "at": 1.0},  # not a number
        {"attempt": True, "at": 1.0},
        {"attempt": 4, "at": 10**400},
        "not an entry",
        {"attempt": 5, "error_type": ["x"], "at": 2},
    ]
    history = history_with(history_of({HISTORY_LABEL: earlier}), ValueError("now"), 6)
    assert [entry["attempt"] for entry in history] == [MAX_ATTEMPT_NUMBER, 5, 6]
    first = history[0]
    assert (len(first["error_type"]), len(first["error_message"])) == (200, 500)
    assert history[1]["error_type"] == "['x']" and history[1]["at"] == 2.0
    orjson.dumps(history)  # encodable, whatever the label held


def test_the_attempt_comes_from_the_label_and_is_visible_to_the_task() -> None:
    assert attempt_of({}) == 1 and attempt_of({ATTEMPT_LABEL: "3"}) == 3
    assert attempt_of({ATTEMPT_LABEL: "x"}) == 1 and attempt_of({ATTEMPT_LABEL: 0}) == 1
    assert attempt_of({ATTEMPT_LABEL: 10**30}) == MAX_ATTEMPT_NUMBER  # a sender's label
    assert attempt_of({ATTEMPT_LABEL: 1e30}) == MAX_ATTEMPT_NUMBER
    assert attempt_of({ATTEMPT_LABEL: float("nan")}) == 1
    assert attempt_of({ATTEMPT_LABEL: float("inf")}) == 1
    assert current_attempt() == 0  # outside a task
    with running_attempt(4):
        assert current_attempt() == 4
    assert current_attempt() == 0


def test_retry_backoff_setting_is_validated_and_overridable_from_the_environment() -> None:
    config = load_config(
        {"BROKER_URL": "redis://h/0", "RETRY_BACKOFF": {"BASE": timedelta(seconds=2), "MAX": 60}},
        environ={},
    )
    assert config.retry_backoff.backoff() == Backoff(base_s=2, factor=2, max_s=60, jitter=1)
    from_env = load_config(
        {"BROKER_URL": "redis://h/0"},
        environ={"ASYNCJOBS_RETRY_BACKOFF": '{"base": 0.5, "jitter": 0}'},
    )
    assert from_env.retry_backoff.backoff() == Backoff(base_s=0.5, max_s=300, jitter=0)
    for bad, words in (
        ({"BASE": 10, "MAX": 5}, "RETRY_BACKOFF"),
        ({"JITTER": 2}, "RETRY_BACKOFF .*: JITTER: Input should be less"),
        ({"BASIS": 1}, "BASIS: Extra inputs"),
    ):
        with pytest.raises(ConfigurationError, match=words):
            load_config({"BROKER_URL": "redis://h/0", "RETRY_BACKOFF": bad}, environ={})
